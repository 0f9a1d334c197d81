//! Running the rest of a download together with the reader that follows it (extraction), and
//! deciding which failure the job reports.
//!
//! The reader only ever sees bytes the download has written ([`Arrivals`]), so the bytes it
//! checks are the object's own, as when it ran after the download. When the download fails,
//! the reader is released with an error and the *download's* error is the job's (the reader's
//! is only a consequence). When the reader fails first — a zip check refused an entry, or the
//! worker's disk failed — the download is dropped (its requests cancelled) and the reader's
//! error is the job's: the same error extraction would have reported after a full download,
//! since it came from bytes that had arrived.

use std::future::Future;
use std::sync::Arc;

use super::arrivals::{AbandonOnDrop, Arrivals};
use super::download::DownloadError;

/// Why a download, or the reader following it, failed.
#[derive(Debug)]
pub enum FollowError<E> {
    Download(DownloadError),
    Reader(E),
}

/// Runs `download` (which writes the bytes `arrivals` records) and `reader` (which reads them
/// as they arrive) at once; the reader's value once both have succeeded.
pub(super) async fn follow<T, E>(
    download: impl Future<Output = Result<(), DownloadError>>,
    arrivals: Arc<Arrivals>,
    reader: impl Future<Output = Result<T, E>>,
) -> Result<T, FollowError<E>> {
    // Dropped with this future (the job cancelled): the reader is released, not left waiting.
    let guard = AbandonOnDrop(arrivals);
    let download = async {
        let result = download.await;
        match &result {
            Ok(()) => guard.0.finish(),
            Err(_) => guard.0.abandon(),
        }
        result
    };
    let (download, reader) = (std::pin::pin!(download), std::pin::pin!(reader));
    match futures::future::select(download, reader).await {
        futures::future::Either::Left((downloaded, reader)) => {
            // Released by now if the download failed; wait for it so that nothing still
            // writes into the job's directory when the job moves on.
            let read = reader.await;
            downloaded.map_err(FollowError::Download)?;
            read.map_err(FollowError::Reader)
        }
        futures::future::Either::Right((read, download)) => {
            let value = read.map_err(FollowError::Reader)?;
            // The reader needed fewer bytes than the object holds; the object is still read
            // to its end, so that a change mid-download (If-Match) is still noticed.
            download.await.map_err(FollowError::Download)?;
            Ok(value)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed() -> DownloadError {
        DownloadError::NoCredentials
    }

    #[tokio::test]
    async fn a_failed_download_is_the_error_even_when_the_reader_fails_too() {
        let arrivals = Arrivals::with(&[]);
        let reader = {
            let arrivals = arrivals.clone();
            async move {
                tokio::task::spawn_blocking(move || arrivals.ready_from(0))
                    .await
                    .unwrap()
            }
        };
        let result = follow(async { Err(failed()) }, arrivals, reader).await;
        assert!(
            matches!(
                result,
                Err(FollowError::Download(DownloadError::NoCredentials))
            ),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn a_reader_that_fails_first_stops_the_download() {
        let arrivals = Arrivals::with(&[]);
        let result: Result<(), _> = follow(std::future::pending(), arrivals.clone(), async {
            Err("refused")
        })
        .await;
        assert!(matches!(result, Err(FollowError::Reader("refused"))));
        // The download was dropped with its guard: nobody waits on it.
        assert!(arrivals.ready_from(0).is_err());
    }

    #[tokio::test]
    async fn a_reader_done_early_still_waits_for_the_download_to_end() {
        let arrivals = Arrivals::with(&[]);
        let result = follow(async { Err(failed()) }, arrivals, async { Ok::<_, ()>(1) }).await;
        assert!(
            matches!(result, Err(FollowError::Download(_))),
            "{result:?}"
        );
    }
}
