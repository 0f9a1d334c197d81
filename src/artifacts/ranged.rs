//! Parallel ranged download: an artifact larger than one part is read with concurrent
//! `Range` GETs, each written in place into a preallocated file and retried on its own.
//!
//! One S3 connection moves roughly 80–100 MB/s; several ranges at once are how fast clients
//! reach the bucket's real throughput. The first range (bytes `0..part`) also learns the
//! object's size and ETag; every later range carries `If-Match: <ETag>`, so an object replaced
//! mid-download fails the job (412) instead of mixing two versions. A range answered with
//! another span or length than asked is a typed failure too; a range that fails transiently
//! (connection, timeout, 5xx, a body cut short) is retried under [`crate::retry::S3_RANGE`],
//! with fresh job credentials for each attempt. The SDK's own retries are off for these calls,
//! so one layer retries.
//!
//! Memory: each range streams through one buffer of [`WRITE_BUFFER`] bytes, so a download
//! holds at most `concurrency` of them whatever the object's size.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::get_object::{GetObjectError, GetObjectOutput};
use futures::{StreamExt, TryStreamExt};
use tracing::{debug, warn};

use super::arrivals::Arrivals;
use super::download::{ArtifactStore, DownloadError, is_access_denied};
use crate::pipeline::job::{Artifact, ArtifactCredentials};
use crate::retry::S3_RANGE;

/// Ranges of one artifact fetched at once by default.
pub const DEFAULT_DOWNLOAD_CONCURRENCY: u16 = 8;
/// Bytes per ranged GET by default (AWS suggests 8–16 MB).
pub const DEFAULT_DOWNLOAD_PART_SIZE: u64 = 16 * 1024 * 1024;
/// Bytes a range gathers before one positioned write.
pub const WRITE_BUFFER: usize = 256 * 1024;

/// How artifacts are downloaded; both are `worker` flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DownloadSettings {
    /// Ranges fetched at once (1: one after the other, as a single GET would).
    pub concurrency: usize,
    /// Bytes per range.
    pub part_size: u64,
}

impl Default for DownloadSettings {
    fn default() -> Self {
        Self {
            concurrency: usize::from(DEFAULT_DOWNLOAD_CONCURRENCY),
            part_size: DEFAULT_DOWNLOAD_PART_SIZE,
        }
    }
}

/// Where a download gets the job's credentials for each request (renewed when they near
/// expiry by whoever implements it).
pub trait CredentialSource: Send + Sync {
    fn current(&self) -> Pin<Box<dyn Future<Output = Option<ArtifactCredentials>> + Send + '_>>;
}

/// Fixed credentials, for callers that have no way of renewing them.
impl CredentialSource for Option<ArtifactCredentials> {
    fn current(&self) -> Pin<Box<dyn Future<Output = Option<ArtifactCredentials>> + Send + '_>> {
        Box::pin(std::future::ready(self.clone()))
    }
}

/// An inclusive byte span of the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    first: u64,
    last: u64,
}

impl Span {
    fn len(self) -> u64 {
        self.last - self.first + 1
    }

    fn header(self) -> String {
        format!("bytes={}-{}", self.first, self.last)
    }
}

/// How one attempt at a range ended, when it did not succeed.
enum Failure {
    /// Worth another attempt.
    Transient(Box<dyn std::error::Error + Send + Sync>),
    /// The job fails with this.
    Fatal(DownloadError),
}

/// What the first range told about the object.
enum Probe {
    /// A 206: the object's size and ETag, and the first range's body still to be read.
    Ranged {
        total: u64,
        etag: Option<String>,
        span: Span,
        output: Box<GetObjectOutput>,
    },
    /// A 200 (the store ignored the range): the whole object in one body.
    Whole(Box<GetObjectOutput>),
    /// 416 on bytes 0-: an empty object.
    Empty,
}

pub(super) struct Download<'a> {
    store: &'a ArtifactStore,
    artifact: &'a Artifact,
    credentials: &'a dyn CredentialSource,
    region: Option<&'a str>,
    destination: &'a Path,
    file: Arc<std::fs::File>,
    /// The client for the credentials last used, keyed by access key id.
    client: Mutex<Option<(String, aws_sdk_s3::Client)>>,
    /// Spans of the object written to files of their own instead of `file`.
    routes: Mutex<Arc<Vec<Route>>>,
    /// Where each written span is reported, once a reader follows the download.
    arrivals: Mutex<Option<Arc<Arrivals>>>,
}

/// Bytes `start..end` of the object go to `file` at `offset - start`, not into the archive.
#[derive(Debug, Clone)]
pub(super) struct Route {
    pub(super) start: u64,
    pub(super) end: u64,
    pub(super) file: Arc<std::fs::File>,
}

impl ArtifactStore {
    /// Downloads `artifact` to `destination` with ranged GETs (see the module docs) and returns
    /// its size in bytes.
    pub async fn download_ranged(
        &self,
        artifact: &Artifact,
        credentials: &dyn CredentialSource,
        region: Option<&str>,
        destination: &Path,
        settings: DownloadSettings,
    ) -> Result<u64, DownloadError> {
        let file = std::fs::File::create(destination).map_err(|source| DownloadError::Write {
            path: destination.to_owned(),
            source,
        })?;
        let download = Download::new(self, artifact, credentials, region, destination, file);
        download.run(settings).await
    }
}

impl<'a> Download<'a> {
    pub(super) fn new(
        store: &'a ArtifactStore,
        artifact: &'a Artifact,
        credentials: &'a dyn CredentialSource,
        region: Option<&'a str>,
        destination: &'a Path,
        file: std::fs::File,
    ) -> Self {
        Download {
            store,
            artifact,
            credentials,
            region,
            destination,
            file: Arc::new(file),
            client: Mutex::new(None),
            routes: Mutex::new(Arc::new(Vec::new())),
            arrivals: Mutex::new(None),
        }
    }

    pub(super) fn set_routes(&self, routes: Vec<Route>) {
        *self.routes.lock().unwrap_or_else(PoisonError::into_inner) = Arc::new(routes);
    }

    /// From now on every span written is reported to `arrivals` (after the write, so a reader
    /// that is told a byte has arrived finds it where the routes put it).
    pub(super) fn report_to(&self, arrivals: Arc<Arrivals>) {
        *self.arrivals.lock().unwrap_or_else(PoisonError::into_inner) = Some(arrivals);
    }

    /// Fetches `spans` (of an object of `total` bytes with `etag`), `concurrency` at a time.
    pub(super) async fn fetch_spans(
        &self,
        spans: Vec<(u64, u64)>,
        total: u64,
        etag: Option<&str>,
        concurrency: usize,
    ) -> Result<(), DownloadError> {
        futures::stream::iter(spans)
            .map(|(first, last)| self.fetch_range(Span { first, last }, total, etag))
            .buffer_unordered(concurrency.max(1))
            .try_collect::<Vec<()>>()
            .await
            .map(|_| ())
    }

    /// The last `tail` bytes (all of a smaller object): the object's size, its ETag and
    /// where the bytes read start. The file is sized to the object first.
    pub(super) async fn read_tail(&self, tail: u64) -> Result<TailRead, DownloadError> {
        match self.probe(ProbeRange::Suffix(tail.max(1))).await? {
            Probe::Empty => Ok(TailRead {
                total: 0,
                etag: None,
                start: 0,
            }),
            Probe::Whole(output) => {
                let length = output.content_length().and_then(|n| u64::try_from(n).ok());
                let total = self.whole(*output, length).await?;
                Ok(TailRead {
                    total,
                    etag: None,
                    start: 0,
                })
            }
            Probe::Ranged {
                total,
                etag,
                span,
                output,
            } => {
                self.file
                    .set_len(total)
                    .map_err(|source| self.write_error(source))?;
                match self.write_body(*output, span.first, Some(span.len())).await {
                    Ok(_) => {}
                    Err(Failure::Fatal(error)) => return Err(error),
                    Err(Failure::Transient(source)) => {
                        self.retry_range(span, total, etag.as_deref(), 1, Instant::now(), source)
                            .await?;
                    }
                }
                Ok(TailRead {
                    total,
                    etag,
                    start: span.first,
                })
            }
        }
    }

    async fn whole(
        &self,
        output: GetObjectOutput,
        length: Option<u64>,
    ) -> Result<u64, DownloadError> {
        match self.write_body(output, 0, length).await {
            Ok(size) => Ok(size),
            Err(Failure::Fatal(error)) => Err(error),
            Err(Failure::Transient(source)) => Err(DownloadError::Failed {
                bucket: self.artifact.bucket.clone(),
                key: self.artifact.key.clone(),
                source,
            }),
        }
    }

    async fn run(&self, settings: DownloadSettings) -> Result<u64, DownloadError> {
        let part = settings.part_size.max(1);
        let concurrency = settings.concurrency.max(1);
        let first = Span {
            first: 0,
            last: part - 1,
        };
        let (total, etag, span, output) = match self.probe(ProbeRange::Prefix(first)).await? {
            Probe::Empty => return Ok(0),
            Probe::Whole(output) => {
                let length = output.content_length().and_then(|n| u64::try_from(n).ok());
                return self.whole(*output, length).await;
            }
            Probe::Ranged {
                total,
                etag,
                span,
                output,
            } => (total, etag, span, output),
        };
        self.file
            .set_len(total)
            .map_err(|source| self.write_error(source))?;
        debug!(
            artifact = %self.artifact.name,
            bytes = total,
            ranges = total.div_ceil(part),
            concurrency,
            "downloading in ranges"
        );
        let etag = etag.as_deref();
        let first_range = async {
            match self.write_body(*output, span.first, Some(span.len())).await {
                Ok(_) => Ok(()),
                Err(Failure::Fatal(error)) => Err(error),
                Err(Failure::Transient(source)) => {
                    self.retry_range(span, total, etag, 1, Instant::now(), source)
                        .await
                }
            }
        };
        let rest = (1..total.div_ceil(part)).map(|index| Span {
            first: index * part,
            last: ((index + 1) * part).min(total) - 1,
        });
        let others = futures::stream::iter(rest)
            .map(|span| self.fetch_range(span, total, etag))
            .buffer_unordered(concurrency.saturating_sub(1).max(1))
            .try_collect::<Vec<()>>();
        if concurrency == 1 {
            first_range.await?;
            others.await?;
        } else {
            futures::try_join!(first_range, others)?;
        }
        Ok(total)
    }

    /// The first range, retried: learns the size and ETag.
    async fn probe(&self, range: ProbeRange) -> Result<Probe, DownloadError> {
        let started = Instant::now();
        let mut attempt = 1;
        let span = match range {
            ProbeRange::Prefix(span) => span,
            ProbeRange::Suffix(length) => Span {
                first: 0,
                last: length - 1,
            },
        };
        loop {
            let failure = match self.request_header(range.header(), None).await {
                Ok(output) => match output.content_range() {
                    None => return Ok(Probe::Whole(Box::new(output))),
                    Some(content_range) => match parse_content_range(content_range) {
                        Some((first, last, total)) if range.answered_by(first, last, total) => {
                            let span = Span { first, last };
                            match self.check_length(&output, span) {
                                Ok(()) => {
                                    return Ok(Probe::Ranged {
                                        total,
                                        etag: output.e_tag().map(str::to_owned),
                                        span,
                                        output: Box::new(output),
                                    });
                                }
                                Err(error) => return Err(error),
                            }
                        }
                        _ => return Err(self.bad_content_range(span, content_range)),
                    },
                },
                Err(error) if is_invalid_range(&error) => return Ok(Probe::Empty),
                Err(error) => self.classify(error, span, None),
            };
            match failure {
                Failure::Fatal(error) => return Err(error),
                Failure::Transient(source) => {
                    self.pause(span, attempt, started, &*source)
                        .await
                        .map_err(|attempts| self.range_failed(span, attempts, source))?;
                    attempt += 1;
                }
            }
        }
    }

    /// One later range, with `If-Match`, retried on its own.
    async fn fetch_range(
        &self,
        span: Span,
        total: u64,
        etag: Option<&str>,
    ) -> Result<(), DownloadError> {
        match self.attempt_range(span, total, etag).await {
            Ok(()) => Ok(()),
            Err(Failure::Fatal(error)) => Err(error),
            Err(Failure::Transient(source)) => {
                self.retry_range(span, total, etag, 1, Instant::now(), source)
                    .await
            }
        }
    }

    /// Attempts after the first of `span`, until one succeeds or the budget is spent.
    async fn retry_range(
        &self,
        span: Span,
        total: u64,
        etag: Option<&str>,
        mut attempt: u32,
        started: Instant,
        mut source: Box<dyn std::error::Error + Send + Sync>,
    ) -> Result<(), DownloadError> {
        loop {
            if let Err(attempts) = self.pause(span, attempt, started, &*source).await {
                return Err(self.range_failed(span, attempts, source));
            }
            attempt += 1;
            match self.attempt_range(span, total, etag).await {
                Ok(()) => return Ok(()),
                Err(Failure::Fatal(error)) => return Err(error),
                Err(Failure::Transient(error)) => source = error,
            }
        }
    }

    /// Waits before the next attempt, or says (with the attempts made) that the budget is spent.
    async fn pause(
        &self,
        span: Span,
        attempt: u32,
        started: Instant,
        error: &(dyn std::error::Error + Send + Sync + 'static),
    ) -> Result<(), u32> {
        if !S3_RANGE.allows_another(attempt, started.elapsed()) {
            return Err(attempt);
        }
        let mut backoff = S3_RANGE.errors.backoff();
        let mut delay = backoff.next_delay();
        for _ in 1..attempt {
            delay = backoff.next_delay();
        }
        warn!(
            artifact = %self.artifact.name,
            range = %span.header(),
            attempt,
            error = %crate::error::inline_chain(error),
            "retrying a range of the artifact download"
        );
        tokio::time::sleep(delay).await;
        Ok(())
    }

    async fn attempt_range(
        &self,
        span: Span,
        total: u64,
        etag: Option<&str>,
    ) -> Result<(), Failure> {
        let output = self
            .request(span, etag)
            .await
            .map_err(|error| self.classify(error, span, etag))?;
        let matches = output
            .content_range()
            .and_then(parse_content_range)
            .is_some_and(|(first, last, size)| {
                first == span.first && last == span.last && size == total
            });
        if !matches {
            return Err(Failure::Fatal(self.bad_content_range(
                span,
                output.content_range().unwrap_or("(none)"),
            )));
        }
        // Without If-Match (no ETag came with the first range) a change shows in the ETag.
        if let (Some(expected), Some(actual)) = (etag, output.e_tag())
            && expected != actual
        {
            return Err(Failure::Fatal(self.changed(span, expected)));
        }
        self.check_length(&output, span).map_err(Failure::Fatal)?;
        self.write_body(output, span.first, Some(span.len()))
            .await
            .map(|_| ())
    }

    async fn request(
        &self,
        span: Span,
        etag: Option<&str>,
    ) -> Result<GetObjectOutput, SdkError<GetObjectError, aws_sdk_s3::config::http::HttpResponse>>
    {
        self.request_header(span.header(), etag).await
    }

    async fn request_header(
        &self,
        range: String,
        etag: Option<&str>,
    ) -> Result<GetObjectOutput, SdkError<GetObjectError, aws_sdk_s3::config::http::HttpResponse>>
    {
        let client = match self.client().await {
            Some(client) => client,
            None => {
                return Err(SdkError::construction_failure(DownloadError::NoCredentials));
            }
        };
        client
            .get_object()
            .bucket(&self.artifact.bucket)
            .key(&self.artifact.key)
            .range(range)
            .set_if_match(etag.map(str::to_owned))
            .customize()
            .config_override(
                aws_sdk_s3::config::Config::builder().retry_config(RetryConfig::disabled()),
            )
            .send()
            .await
    }

    /// A client for the job's current credentials (renewed by the source when they get old).
    async fn client(&self) -> Option<aws_sdk_s3::Client> {
        let credentials = self.credentials.current().await?;
        let mut cached = self.client.lock().unwrap_or_else(PoisonError::into_inner);
        match &*cached {
            Some((key, client)) if *key == credentials.access_key_id => Some(client.clone()),
            _ => {
                let client = self.store.client(&credentials, self.region);
                *cached = Some((credentials.access_key_id.clone(), client.clone()));
                Some(client)
            }
        }
    }

    fn check_length(&self, output: &GetObjectOutput, span: Span) -> Result<(), DownloadError> {
        match output.content_length().and_then(|n| u64::try_from(n).ok()) {
            Some(length) if length != span.len() => Err(self.wrong_length(span, length)),
            _ => Ok(()),
        }
    }

    /// Streams a body into the file at `offset`; returns the bytes written. More or fewer
    /// bytes than `expected` is fatal; a body cut off by the connection is transient.
    async fn write_body(
        &self,
        output: GetObjectOutput,
        offset: u64,
        expected: Option<u64>,
    ) -> Result<u64, Failure> {
        let span = Span {
            first: offset,
            last: offset + expected.unwrap_or(1).max(1) - 1,
        };
        let mut body = output.body;
        let mut buffer = Vec::with_capacity(WRITE_BUFFER);
        let mut written = 0u64;
        let mut received = 0u64;
        loop {
            let chunk = body
                .try_next()
                .await
                .map_err(|error| Failure::Transient(Box::new(error)))?;
            let end = chunk.is_none();
            if let Some(chunk) = &chunk {
                received += chunk.len() as u64;
                if expected.is_some_and(|expected| received > expected) {
                    return Err(Failure::Fatal(self.wrong_length(span, received)));
                }
                let mut rest = &chunk[..];
                while !rest.is_empty() {
                    let take = rest.len().min(WRITE_BUFFER - buffer.len());
                    buffer.extend_from_slice(&rest[..take]);
                    rest = &rest[take..];
                    if buffer.len() == WRITE_BUFFER {
                        buffer = self.write_at(buffer, offset + written).await?;
                        written += WRITE_BUFFER as u64;
                    }
                }
            }
            if end {
                if !buffer.is_empty() {
                    let length = buffer.len() as u64;
                    self.write_at(buffer, offset + written).await?;
                    written += length;
                }
                break;
            }
        }
        if expected.is_some_and(|expected| written != expected) {
            return Err(Failure::Fatal(self.wrong_length(span, written)));
        }
        Ok(written)
    }

    /// One positioned write on a blocking thread; gives the buffer back, emptied.
    async fn write_at(&self, buffer: Vec<u8>, offset: u64) -> Result<Vec<u8>, Failure> {
        let file = self.file.clone();
        let routes = self
            .routes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let length = buffer.len() as u64;
        let result = tokio::task::spawn_blocking(move || {
            let written = write_routed(&file, &routes, &buffer, offset);
            (written, buffer)
        })
        .await;
        match result {
            Ok((Ok(()), mut buffer)) => {
                let arrivals = self
                    .arrivals
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                if let Some(arrivals) = arrivals {
                    arrivals.arrived(offset, offset + length);
                }
                buffer.clear();
                Ok(buffer)
            }
            Ok((Err(source), _)) => Err(Failure::Fatal(self.write_error(source))),
            Err(join) => Err(Failure::Fatal(
                self.write_error(std::io::Error::other(join)),
            )),
        }
    }

    fn classify(
        &self,
        error: SdkError<GetObjectError, aws_sdk_s3::config::http::HttpResponse>,
        span: Span,
        etag: Option<&str>,
    ) -> Failure {
        let bucket = self.artifact.bucket.clone();
        let key = self.artifact.key.clone();
        let status = error
            .raw_response()
            .map(|response| response.status().as_u16());
        match &error {
            SdkError::ServiceError(context) => {
                let code = context.err().code().unwrap_or("");
                if code == "PreconditionFailed" || status == Some(412) {
                    return Failure::Fatal(self.changed(span, etag.unwrap_or("")));
                }
                match code {
                    "NoSuchKey" | "NoSuchBucket" | "NotFound" => {
                        return Failure::Fatal(DownloadError::NotFound { bucket, key });
                    }
                    code if is_access_denied(code) => {
                        return Failure::Fatal(DownloadError::AccessDenied {
                            bucket,
                            key,
                            code: code.to_owned(),
                            message: context.err().message().unwrap_or("").to_owned(),
                        });
                    }
                    _ => {}
                }
                if status.is_some_and(|status| status >= 500 || status == 429 || status == 408) {
                    Failure::Transient(Box::new(error))
                } else {
                    Failure::Fatal(DownloadError::Failed {
                        bucket,
                        key,
                        source: Box::new(error),
                    })
                }
            }
            SdkError::ConstructionFailure(_) => {
                let no_credentials = std::error::Error::source(&error)
                    .is_some_and(|source| source.is::<DownloadError>());
                if no_credentials {
                    Failure::Fatal(DownloadError::NoCredentials)
                } else {
                    Failure::Fatal(DownloadError::Failed {
                        bucket,
                        key,
                        source: Box::new(error),
                    })
                }
            }
            _ => Failure::Transient(Box::new(error)),
        }
    }

    fn changed(&self, span: Span, etag: &str) -> DownloadError {
        DownloadError::Changed {
            object: self.object(),
            range: span.header(),
            etag: etag.to_owned(),
        }
    }

    fn wrong_length(&self, span: Span, received: u64) -> DownloadError {
        DownloadError::WrongLength {
            object: self.object(),
            range: span.header(),
            expected: span.len(),
            received,
        }
    }

    fn bad_content_range(&self, span: Span, content_range: &str) -> DownloadError {
        DownloadError::BadContentRange {
            object: self.object(),
            range: span.header(),
            content_range: content_range.to_owned(),
        }
    }

    fn range_failed(
        &self,
        span: Span,
        attempts: u32,
        source: Box<dyn std::error::Error + Send + Sync>,
    ) -> DownloadError {
        DownloadError::RangeFailed {
            object: self.object(),
            range: span.header(),
            attempts,
            source,
        }
    }

    fn object(&self) -> String {
        format!("s3://{}/{}", self.artifact.bucket, self.artifact.key)
    }

    fn write_error(&self, source: std::io::Error) -> DownloadError {
        DownloadError::Write {
            path: self.destination.to_owned(),
            source,
        }
    }
}

/// What the first request of a download asks for.
#[derive(Debug, Clone, Copy)]
enum ProbeRange {
    /// The object's first bytes.
    Prefix(Span),
    /// The object's last `n` bytes (`bytes=-n`).
    Suffix(u64),
}

impl ProbeRange {
    fn header(self) -> String {
        match self {
            ProbeRange::Prefix(span) => span.header(),
            ProbeRange::Suffix(length) => format!("bytes=-{length}"),
        }
    }

    /// Whether `Content-Range: bytes first-last/total` is the answer to this request.
    fn answered_by(self, first: u64, last: u64, total: u64) -> bool {
        match self {
            ProbeRange::Prefix(span) => first == 0 && last == span.last.min(total - 1),
            ProbeRange::Suffix(length) => {
                last == total - 1 && first == total.saturating_sub(length)
            }
        }
    }
}

/// What reading an object's tail learnt.
#[derive(Debug, Clone)]
pub(super) struct TailRead {
    pub(super) total: u64,
    pub(super) etag: Option<String>,
    /// Where the bytes read start (0: the whole object was read).
    pub(super) start: u64,
}

/// Writes `buffer` (the object's bytes from `offset`) to the archive, except the parts that
/// fall in a route, which go to the route's own file.
fn write_routed(
    archive: &std::fs::File,
    routes: &[Route],
    buffer: &[u8],
    offset: u64,
) -> std::io::Result<()> {
    let end = offset + buffer.len() as u64;
    let mut position = offset;
    while position < end {
        let slice = |from: u64, to: u64| &buffer[(from - offset) as usize..(to - offset) as usize];
        match routes
            .iter()
            .filter(|route| route.end > position && route.start < end)
            .min_by_key(|route| route.start)
        {
            Some(route) if route.start <= position => {
                let to = route.end.min(end);
                write_all_at(&route.file, slice(position, to), position - route.start)?;
                position = to;
            }
            Some(route) => {
                write_all_at(archive, slice(position, route.start), position)?;
                position = route.start;
            }
            None => {
                write_all_at(archive, slice(position, end), position)?;
                position = end;
            }
        }
    }
    Ok(())
}

/// `bytes first-last/total` → (first, last, total).
fn parse_content_range(value: &str) -> Option<(u64, u64, u64)> {
    let (span, total) = value.trim().strip_prefix("bytes ")?.split_once('/')?;
    let (first, last) = span.split_once('-')?;
    let (first, last, total) = (
        first.trim().parse().ok()?,
        last.trim().parse().ok()?,
        total.trim().parse().ok()?,
    );
    (first <= last && last < total).then_some((first, last, total))
}

fn is_invalid_range(
    error: &SdkError<GetObjectError, aws_sdk_s3::config::http::HttpResponse>,
) -> bool {
    error.raw_response().map(|r| r.status().as_u16()) == Some(416)
        || error.as_service_error().and_then(|e| e.code()) == Some("InvalidRange")
}

#[cfg(unix)]
fn write_all_at(file: &std::fs::File, buffer: &[u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, buffer, offset)
}

#[cfg(not(unix))]
fn write_all_at(file: &std::fs::File, buffer: &[u8], offset: u64) -> std::io::Result<()> {
    use std::io::{Seek, SeekFrom, Write};
    let mut file = file.try_clone()?;
    file.seek(SeekFrom::Start(offset))?;
    file.write_all(buffer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges_parse_and_nonsense_does_not() {
        assert_eq!(parse_content_range("bytes 0-15/100"), Some((0, 15, 100)));
        for bad in [
            "bytes 5-4/100",
            "bytes 0-100/100",
            "bytes */100",
            "0-1/2",
            "bytes 0-1",
        ] {
            assert_eq!(parse_content_range(bad), None, "{bad}");
        }
    }
}
