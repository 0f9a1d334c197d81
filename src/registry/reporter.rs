//! What the registry client tells its caller while it publishes: the client owns this trait,
//! and whoever shows progress (a terminal, log lines, a job's counters) implements it.
//!
//! The upload path calls [`Reporter::start`] before each file, [`Reporter::advance`] as its bytes
//! stream out, and [`Reporter::complete`] when the registry has it; the retry loop calls
//! [`Reporter::retrying`] after it has logged the retry itself, so implementations count or draw
//! but do not log it again.

use crate::registry::DeployOutcome;

/// Callbacks of the upload path. `target` names the file (its path in the repository).
pub trait Reporter: Send + Sync {
    /// A file of `size` bytes is about to be published.
    fn start(&self, target: &str, size: u64);
    /// `bytes` more bytes of the file were handed to the connection.
    fn advance(&self, target: &str, bytes: u64);
    /// The registry has the file.
    fn complete(&self, target: &str, size: u64, outcome: DeployOutcome);
    /// A request for the file failed transiently and is being retried (`attempt` ≥ 2).
    fn retrying(&self, target: &str, attempt: u32, reason: &str) {
        let _ = (target, attempt, reason);
    }
}

/// Reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoReporter;

impl Reporter for NoReporter {
    fn start(&self, _target: &str, _size: u64) {}
    fn advance(&self, _target: &str, _bytes: u64) {}
    fn complete(&self, _target: &str, _size: u64, _outcome: DeployOutcome) {}
}
