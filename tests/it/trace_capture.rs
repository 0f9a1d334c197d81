//! What the secret-hygiene tests share: a log capture at trace level, run alone in a process of
//! its own, and the scans that say where a secret leaked without printing it.

use std::future::Future;
use std::io::Write;
use std::sync::{Arc, Mutex};

/// Every byte the subscriber writes.
#[derive(Clone, Default)]
pub struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl Write for CapturedLogs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CapturedLogs {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Runs `capture` in a child process running only the test `name` (its path in this binary),
/// with `marker` set there, and asserts that it passed.
///
/// A capture relies on a thread-local subscriber, and tracing caches per-callsite interest
/// process-wide: any other test of this binary logging at the same time (without a subscriber)
/// would turn the worker's callsites off for the capture.
pub fn run_alone<F: Future<Output = ()>>(name: &str, marker: &str, capture: impl FnOnce() -> F) {
    if std::env::var_os(marker).is_some() {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(capture());
        return;
    }
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--test-threads=1", "--nocapture"])
        .env(marker, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "the capture failed:\n{stdout}\n{stderr}"
    );
}

/// Fails naming `what` and the lines (secret masked) where any of `secrets` appears.
pub fn assert_no_secret(haystack: &str, secrets: &[String], what: &str) {
    for (index, secret) in secrets.iter().enumerate() {
        assert!(
            secret.len() >= 8,
            "secrets in these tests are long enough to search for"
        );
        let leaks: Vec<String> = haystack
            .lines()
            .filter(|line| line.contains(secret.as_str()))
            .take(3)
            .map(|line| line.replace(secret.as_str(), &format!("<SECRET #{index}>")))
            .collect();
        assert!(
            leaks.is_empty(),
            "secret #{index} leaked into {what}:\n{}",
            leaks.join("\n")
        );
    }
}

/// Fails naming `what` and what precedes any of `shapes` (the start of a signed header, of a
/// JWT), without printing what follows it.
pub fn assert_no_shape(haystack: &str, shapes: &[&str], what: &str) {
    for shape in shapes {
        let leaks: Vec<&str> = haystack
            .lines()
            .filter_map(|line| line.split(shape).next().filter(|_| line.contains(shape)))
            .take(3)
            .collect();
        assert!(
            leaks.is_empty(),
            "{shape} appears in {what} after:\n{}",
            leaks.join("\n")
        );
    }
}
