//! Progress as log lines: for files of at least `min_bytes`, one info line each time another
//! 10 % has been sent, or after 30 s without a line, whichever comes first. Smaller files are
//! quick and log nothing here (the publish code logs one line per file anyway).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use tracing::info;

use crate::registry::{DeployOutcome, Reporter};

/// Longest silence during a large upload.
const MAX_SILENCE: Duration = Duration::from_secs(30);

struct Upload {
    size: u64,
    sent: u64,
    /// Tenths already logged (1 = 10 %).
    logged_tenths: u64,
    last_line: Instant,
    started: Instant,
}

/// Logs upload progress of large files.
pub struct LogProgress {
    min_bytes: u64,
    uploads: Mutex<HashMap<String, Upload>>,
}

impl LogProgress {
    pub fn new(min_bytes: u64) -> Self {
        Self {
            min_bytes,
            uploads: Mutex::new(HashMap::new()),
        }
    }
}

impl Reporter for LogProgress {
    fn start(&self, target: &str, size: u64) {
        if size < self.min_bytes || size == 0 {
            return;
        }
        let now = Instant::now();
        self.uploads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                target.to_owned(),
                Upload {
                    size,
                    sent: 0,
                    logged_tenths: 0,
                    last_line: now,
                    started: now,
                },
            );
    }

    fn advance(&self, target: &str, bytes: u64) {
        let mut uploads = self.uploads.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(upload) = uploads.get_mut(target) else {
            return;
        };
        upload.sent = upload.sent.saturating_add(bytes).min(upload.size);
        let tenths = upload.sent.saturating_mul(10) / upload.size;
        let now = Instant::now();
        if tenths > upload.logged_tenths || now.duration_since(upload.last_line) >= MAX_SILENCE {
            upload.logged_tenths = tenths;
            upload.last_line = now;
            let elapsed = now.duration_since(upload.started).as_secs_f64().max(0.001);
            info!(
                target,
                percent = upload.sent.saturating_mul(100) / upload.size,
                sent_bytes = upload.sent,
                size_bytes = upload.size,
                mib_per_s = format!("{:.1}", upload.sent as f64 / elapsed / 1_048_576.0),
                "uploading"
            );
        }
    }

    fn complete(&self, target: &str, _size: u64, _outcome: DeployOutcome) {
        self.uploads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(target);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn large_files_log_every_ten_percent_and_small_files_not_at_all() {
        let capture = Capture::default();
        let writer = capture.clone();
        let subscriber = crate::telemetry::subscriber(
            crate::telemetry::LogFormat::Text,
            "info",
            move || writer.clone(),
            false,
        )
        .unwrap();
        tracing::subscriber::with_default(subscriber, || {
            let progress = LogProgress::new(1000);
            progress.start("small.txt", 999);
            progress.advance("small.txt", 999);
            progress.start("big.img", 1000);
            for _ in 0..40 {
                progress.advance("big.img", 25);
            }
            progress.complete("big.img", 1000, DeployOutcome::Uploaded);
        });
        let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = logs.lines().collect();
        assert_eq!(lines.len(), 10, "{logs}");
        assert!(lines[0].contains("percent=10") && lines[9].contains("percent=100"));
        assert!(!logs.contains("small.txt"));
    }
}
