//! Upload progress: the ways the registry client's [`Reporter`] callbacks are shown.
//!
//! The caller decides how that looks: [`TerminalProgress`] draws a bar per
//! large file on a terminal, [`LogProgress`] writes a log line every 10 % or 30 s for large
//! files, [`JobStats`] counts files and bytes for a job's summary line and the metrics.
//!
//! CodePipeline sees progress only as `executionDetails.percentComplete`, which exists only in
//! `PutJobSuccessResult` (the worker sends 100 with the final result). Reporting intermediate
//! percentages would mean ending the job with a continuation token, which makes CodePipeline
//! create a new job: not worth it for progress, so the worker does not.

mod log;
mod terminal;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub use log::LogProgress;
pub use terminal::TerminalProgress;

use crate::metrics::Metrics;
use crate::registry::{DeployOutcome, Reporter};

/// Files at least this large get a progress bar or progress log lines by default.
pub const DEFAULT_MIN_BYTES: u64 = 64 * 1024 * 1024;

/// Counts what one job published (for its summary line and the metrics) and passes every
/// callback on to `inner`.
pub struct JobStats {
    inner: Arc<dyn Reporter>,
    metrics: Option<Arc<Metrics>>,
    files: AtomicU64,
    bytes: AtomicU64,
}

impl JobStats {
    pub fn new(inner: Arc<dyn Reporter>, metrics: Option<Arc<Metrics>>) -> Self {
        Self {
            inner,
            metrics,
            files: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
        }
    }

    /// Files in the registry so far, including ones that were already there.
    pub fn files(&self) -> u64 {
        self.files.load(Ordering::Relaxed)
    }

    /// Their bytes.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

impl Reporter for JobStats {
    fn start(&self, target: &str, size: u64) {
        self.inner.start(target, size);
    }

    fn advance(&self, target: &str, bytes: u64) {
        self.inner.advance(target, bytes);
    }

    fn complete(&self, target: &str, size: u64, outcome: DeployOutcome) {
        self.files.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(size, Ordering::Relaxed);
        if outcome != DeployOutcome::AlreadyPublished
            && let Some(metrics) = &self.metrics
        {
            metrics.file_published(size);
        }
        self.inner.complete(target, size, outcome);
    }

    fn retrying(&self, target: &str, attempt: u32, reason: &str) {
        if let Some(metrics) = &self.metrics {
            metrics.registry_retry();
        }
        self.inner.retrying(target, attempt, reason);
    }
}

/// A flag value that is not a size. clap shows only this message, so the parser's reason is
/// part of it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    #[error("`{value}` is not a size ({reason}); use e.g. 64MiB, 1GiB or 1048576")]
    NotASize { value: String, reason: String },
    #[error("`{value}` is too large; use at most a few GiB")]
    TooLarge { value: String },
}

/// Parses a size such as `64MiB`, `1GiB`, `500k`, `2 GiB` or `1048576` (bytes). Units are
/// binary whether or not they say so (`500k` and `64MB` are KiB and MiB), as they always were
/// for this flag.
pub fn parse_size(value: &str) -> Result<u64, SizeError> {
    let trimmed = value.trim();
    let unit_start = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(unit_start);
    let unit = unit.trim();
    // bytesize reads `k`/`KB` as 1000; this flag has always meant 1024.
    let binary_unit = match unit.to_ascii_lowercase().as_str() {
        "k" | "kb" => "KiB",
        "m" | "mb" => "MiB",
        "g" | "gb" => "GiB",
        "t" | "tb" => "TiB",
        _ => unit,
    };
    let size: bytesize::ByteSize =
        format!("{number}{binary_unit}")
            .parse()
            .map_err(|reason| SizeError::NotASize {
                value: value.to_owned(),
                reason,
            })?;
    // bytesize saturates instead of failing on overflow.
    if size.as_u64() == u64::MAX {
        return Err(SizeError::TooLarge {
            value: value.to_owned(),
        });
    }
    Ok(size.as_u64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("64MiB"), Ok(64 * 1024 * 1024));
        assert_eq!(parse_size("1048576"), Ok(1024 * 1024));
        assert_eq!(parse_size("2 GiB"), Ok(2 * 1024 * 1024 * 1024));
        assert_eq!(parse_size("500k"), Ok(500 * 1024));
        assert_eq!(parse_size("1GiB"), Ok(1024 * 1024 * 1024));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("5 furlongs").is_err());
    }

    #[test]
    fn job_stats_count_files_and_publish_metrics_for_new_content_only() {
        let metrics = Arc::new(Metrics::new());
        let stats = JobStats::new(Arc::new(crate::registry::NoReporter), Some(metrics.clone()));
        stats.start("a", 10);
        stats.advance("a", 10);
        stats.complete("a", 10, DeployOutcome::Uploaded);
        stats.complete("b", 5, DeployOutcome::AlreadyPublished);
        assert_eq!((stats.files(), stats.bytes()), (2, 15));
        assert!(
            metrics
                .render()
                .contains("pipeline_publisher_published_bytes_total 10\n")
        );
    }
}
