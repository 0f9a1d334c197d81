//! Progress bars on a terminal (indicatif): one overall bar with the total throughput, and
//! one bar per file of at least `min_bytes` while it uploads. Drawn on standard error, so
//! standard output keeps only the summary (and stays parseable with `--output json`).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::registry::{DeployOutcome, Reporter};

const TOTAL_TEMPLATE: &str =
    "{prefix:>9} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}";
const FILE_TEMPLATE: &str = "{prefix:>9} [{bar:30}] {binary_bytes}/{binary_total_bytes} {msg}";

struct Bars {
    total: ProgressBar,
    files: HashMap<String, (ProgressBar, u64)>,
}

/// Progress bars for one publish of `total_bytes`.
pub struct TerminalProgress {
    multi: MultiProgress,
    min_bytes: u64,
    bars: Mutex<Bars>,
}

fn style(template: &str) -> ProgressStyle {
    // The templates are constants that parse; fall back to the default style rather than fail.
    ProgressStyle::with_template(template)
        .map(|style| style.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
}

impl TerminalProgress {
    pub fn new(total_bytes: u64, min_bytes: u64) -> Self {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let total = multi.add(ProgressBar::new(total_bytes));
        total.set_style(style(TOTAL_TEMPLATE));
        total.set_prefix("total");
        Self {
            multi,
            min_bytes,
            bars: Mutex::new(Bars {
                total,
                files: HashMap::new(),
            }),
        }
    }

    /// Removes the bars (before the summary is printed).
    pub fn finish(&self) {
        let bars = self.bars.lock().unwrap_or_else(PoisonError::into_inner);
        for (bar, _) in bars.files.values() {
            bar.finish_and_clear();
        }
        bars.total.finish_and_clear();
    }
}

impl Reporter for TerminalProgress {
    fn start(&self, target: &str, size: u64) {
        let mut bars = self.bars.lock().unwrap_or_else(PoisonError::into_inner);
        let bar = if size >= self.min_bytes && size > 0 {
            let bar = self.multi.add(ProgressBar::new(size));
            bar.set_style(style(FILE_TEMPLATE));
            bar.set_prefix("upload");
            bar.set_message(target.to_owned());
            bar
        } else {
            ProgressBar::hidden()
        };
        bars.files.insert(target.to_owned(), (bar, 0));
    }

    fn advance(&self, target: &str, bytes: u64) {
        let mut bars = self.bars.lock().unwrap_or_else(PoisonError::into_inner);
        bars.total.inc(bytes);
        if let Some((bar, sent)) = bars.files.get_mut(target) {
            bar.inc(bytes);
            *sent += bytes;
        }
    }

    fn complete(&self, target: &str, size: u64, _outcome: DeployOutcome) {
        let mut bars = self.bars.lock().unwrap_or_else(PoisonError::into_inner);
        // Files the registry already had send no bytes; count them as done all the same.
        let sent = match bars.files.remove(target) {
            Some((bar, sent)) => {
                bar.finish_and_clear();
                self.multi.remove(&bar);
                sent
            }
            None => 0,
        };
        bars.total.inc(size.saturating_sub(sent));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_follow_files_and_are_removed_when_done() {
        let progress = TerminalProgress::new(30, 10);
        progress.start("big.img", 20);
        progress.advance("big.img", 20);
        progress.complete("big.img", 20, DeployOutcome::Uploaded);
        progress.start("small.txt", 10);
        progress.complete("small.txt", 10, DeployOutcome::AlreadyPublished);
        let bars = progress.bars.lock().unwrap();
        assert!(bars.files.is_empty());
        assert_eq!(bars.total.position(), 30);
        drop(bars);
        progress.finish();
    }
}
