//! Uploading a large file while it is still being extracted: its bytes go to the registry as
//! they arrive from S3 (a stored entry) or from the inflater (a deflated one), instead of after
//! its last byte is hashed. For a one-file archive (a firmware image) that is the difference
//! between download-then-upload and both at once.
//!
//! Nothing unchecked becomes visible: the body's last chunk is held back until extraction has
//! placed the file (its CRC, the caps and its overlap test passed); if it never does, the body
//! ends in an error, the registry's `PUT` breaks off and creates nothing. The registry's own
//! checksums of what it stored are then compared with the ones extraction computed
//! ([`crate::registry::RegistryClient::confirm_streamed`]); a mismatch takes the file back and
//! fails it.
//!
//! A streamed deploy is an attempt, not a commitment: when the path already holds something,
//! the file would go in parts, or the `PUT` fails (a dropped connection, a 401 from a token
//! renewed meanwhile), the file is handed to the usual uploads once it is placed, and deployed
//! from disk with checksum headers and retries. It never tries a checksum deploy first (that
//! needs the checksums): an image already stored under another path is sent again.

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use futures::FutureExt;
use futures::future::Shared;
use futures::stream;
use tokio::sync::mpsc::{self, UnboundedSender};
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::artifacts::{ExtractedFile, GrowingFile};
use crate::error::inline_chain;
use crate::publish::plan::PublishItem;
use crate::publish::receipt::{Outcome, PublishedFile};
use crate::registry::{
    AccessToken, DeployOutcome, Deployed, RegistryClient, Reporter, StreamedDeploy,
};

/// Bytes read from the growing file at a time.
const CHUNK: usize = 256 * 1024;
/// Chunks read ahead of the connection.
const READ_AHEAD: usize = 4;

/// Extraction's verdict on a file: placed, or (the sender dropped) failed.
type Placed = Shared<oneshot::Receiver<ExtractedFile>>;

/// What streamed uploads share.
#[derive(Clone)]
pub(crate) struct StreamedUploads {
    pub(crate) client: RegistryClient,
    pub(crate) token: AccessToken,
    pub(crate) reporter: Arc<dyn Reporter>,
    /// Where a file goes when streaming it did not work out: the usual uploads.
    pub(crate) fallback: UnboundedSender<PublishItem>,
}

impl StreamedUploads {
    /// Starts uploading `growing` as `item` (planned from the file as declared) when it may be
    /// streamed, and returns the sender through which extraction's placed file must reach it;
    /// `None` when the file takes the usual path.
    pub(crate) async fn begin(
        &self,
        uploads: &mut JoinSet<Option<Outcome>>,
        item: PublishItem,
        growing: GrowingFile,
    ) -> Option<oneshot::Sender<ExtractedFile>> {
        let may_stream = self
            .client
            .may_stream(&self.token, request(&item, growing.declared_size))
            .await;
        match may_stream {
            Ok(true) => {}
            Ok(false) => return None,
            Err(error) => {
                warn!(path = %item.target_path, error = %inline_chain(&error), "could not ask the registry about the path; uploading once extracted");
                return None;
            }
        }
        let (sender, receiver) = oneshot::channel();
        let this = self.clone();
        uploads.spawn(async move { this.upload(item, growing, receiver.shared()).await });
        Some(sender)
    }

    /// One streamed upload, to its outcome (`None`: not published here — extraction failed,
    /// or the file went to the usual uploads).
    async fn upload(
        self,
        item: PublishItem,
        growing: GrowingFile,
        placed: Placed,
    ) -> Option<Outcome> {
        let size = growing.declared_size;
        let target = item.target_path.clone();
        info!(path = %target, bytes = size, "uploading while extracting");
        self.reporter.start(&target, size);
        let body = body(
            growing,
            placed.clone(),
            self.reporter.clone(),
            target.clone(),
        );
        let sent = self
            .client
            .deploy_streamed(&self.token, request(&item, size), body)
            .await;
        // A file that failed extraction's checks was not published (its body broke off);
        // extraction reports why.
        let file = placed.await.ok()?;
        let item = PublishItem {
            source: file,
            ..item
        };
        let upload = match sent {
            Ok(upload) => upload,
            Err(error) => {
                warn!(path = %target, error = %inline_chain(&error), "the upload while extracting failed; uploading the extracted file");
                let _ = self.fallback.send(item);
                return None;
            }
        };
        let confirmed = self
            .client
            .confirm_streamed(
                &self.token,
                request(&item, size),
                &upload,
                &item.source.checksums,
            )
            .await;
        if let Err(error) = confirmed {
            self.take_back(&item).await;
            return Some((item, Some(Err(error))));
        }
        self.reporter
            .complete(&target, size, DeployOutcome::Uploaded);
        let published = PublishedFile {
            artifact_name: item.artifact_name.clone(),
            source_path: item.source.relative_path.clone(),
            repo: item.repo.clone(),
            target_path: item.target_path.clone(),
            url: self.client.artifact_url(&item.repo, &item.target_path),
            size: item.source.size,
            checksums: item.source.checksums.clone(),
            format: item.package.format(),
            package: None,
            outcome: DeployOutcome::Uploaded,
        };
        info!(
            target = %published.url,
            format = published.format.as_str(),
            bytes = published.size,
            outcome = ?published.outcome,
            "published file"
        );
        Some((item, Some(Ok(published))))
    }

    /// Removes what a streamed upload stored when it is not what extraction checked.
    async fn take_back(&self, item: &PublishItem) {
        let stored = self
            .client
            .file_info(&self.token, &item.repo, &item.target_path)
            .await;
        let Ok(Some(stored)) = stored else { return };
        let Some(sha256) = stored.sha256 else { return };
        let deployed = Deployed {
            repo: &item.repo,
            path: &item.target_path,
            sha256: &sha256,
            properties: &item.properties,
        };
        match self.client.take_back(&self.token, deployed).await {
            Ok(removal) => {
                info!(path = %item.target_path, ?removal, "took back a mismatched upload")
            }
            Err(error) => {
                warn!(path = %item.target_path, error = %inline_chain(&error), "could not take back a mismatched upload")
            }
        }
    }
}

fn request(item: &PublishItem, size: u64) -> StreamedDeploy<'_> {
    StreamedDeploy {
        repo: &item.repo,
        path: &item.target_path,
        size,
        properties: &item.properties,
    }
}

/// The body of a streamed upload: the file's bytes as they arrive, the last chunk only once
/// extraction has placed the file with the declared size; an error otherwise.
fn body(
    growing: GrowingFile,
    placed: Placed,
    reporter: Arc<dyn Reporter>,
    target: String,
) -> reqwest::Body {
    let size = growing.declared_size;
    let (sender, chunks) = mpsc::channel(READ_AHEAD);
    // Reading waits for the bytes to arrive, which blocks. The thread ends when the body is
    // dropped (its next send fails) or at the end; a wait for bytes ends with the download or
    // with the entry's extraction, whichever way they end.
    tokio::task::spawn_blocking(move || read_growing(&growing, &sender));
    let state = BodyState {
        chunks,
        placed: Some(placed),
        sent: 0,
        done: false,
    };
    let stream = stream::unfold(state, move |mut state| {
        let (reporter, target) = (reporter.clone(), target.clone());
        async move {
            if state.done {
                return None;
            }
            let chunk = match state.chunks.recv().await {
                Some(Ok(chunk)) => chunk,
                Some(Err(error)) => return Some((Err(error), state.ended())),
                None => {
                    return Some((
                        Err(io::Error::other("the file's reader stopped")),
                        state.ended(),
                    ));
                }
            };
            state.sent += chunk.len() as u64;
            if state.sent >= size {
                state.done = true;
                let placed = state.placed.take()?.await;
                match placed {
                    Ok(file) if file.size == size => {}
                    Ok(file) => {
                        let error = io::Error::other(format!(
                            "the entry held {} bytes, not the {size} its directory declares",
                            file.size
                        ));
                        return Some((Err(error), state));
                    }
                    Err(_) => {
                        let error = io::Error::other("the entry failed extraction's checks");
                        return Some((Err(error), state));
                    }
                }
            }
            reporter.advance(&target, chunk.len() as u64);
            Some((Ok(chunk), state))
        }
    });
    reqwest::Body::wrap_stream(stream)
}

struct BodyState {
    chunks: mpsc::Receiver<io::Result<Bytes>>,
    placed: Option<Placed>,
    sent: u64,
    done: bool,
}

impl BodyState {
    fn ended(mut self) -> Self {
        self.done = true;
        self
    }
}

/// Sends the growing file's bytes in order, as they arrive, until its declared end.
fn read_growing(growing: &GrowingFile, sender: &mpsc::Sender<io::Result<Bytes>>) {
    let mut position = 0;
    while position < growing.declared_size {
        let mut buffer = vec![0; CHUNK];
        let chunk = match growing.read_at(position, &mut buffer) {
            Ok(0) => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the entry ended before its declared size",
            )),
            Ok(read) => {
                buffer.truncate(read);
                position += read as u64;
                Ok(Bytes::from(buffer))
            }
            Err(error) => Err(error),
        };
        let failed = chunk.is_err();
        if sender.blocking_send(chunk).is_err() || failed {
            return;
        }
    }
}
