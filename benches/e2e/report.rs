//! The results table: one row per measure, ours beside its baseline, the ratio, the target.

use std::fmt::Write as _;

/// One line of the results table.
pub struct Row {
    pub scenario: String,
    pub measure: String,
    pub ours: String,
    pub baseline: String,
    /// baseline / ours for times (higher is better), or whatever the scenario states.
    pub ratio: String,
    pub target: String,
    pub verdict: Verdict,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Met,
    Missed,
    /// No target for this line, or it cannot be judged yet.
    Info,
}

impl Verdict {
    pub fn from(met: bool) -> Self {
        if met { Self::Met } else { Self::Missed }
    }
    fn as_str(self) -> &'static str {
        match self {
            Self::Met => "met",
            Self::Missed => "MISSED",
            Self::Info => "",
        }
    }
}

pub struct Report {
    pub rows: Vec<Row>,
    pub notes: Vec<String>,
}

impl Report {
    #[allow(clippy::too_many_arguments)]
    pub fn row(
        &mut self,
        scenario: &str,
        measure: &str,
        ours: String,
        baseline: String,
        ratio: String,
        target: &str,
        verdict: Verdict,
    ) {
        let row = Row {
            scenario: scenario.to_owned(),
            measure: measure.to_owned(),
            ours,
            baseline,
            ratio,
            target: target.to_owned(),
            verdict,
        };
        eprintln!(
            "  {} | {} | ours {} | baseline {} | {} | target {} {}",
            row.scenario,
            row.measure,
            row.ours,
            row.baseline,
            row.ratio,
            row.target,
            row.verdict.as_str()
        );
        self.rows.push(row);
    }

    pub fn note(&mut self, note: String) {
        eprintln!("  note: {note}");
        self.notes.push(note);
    }

    /// A Markdown table (pasted into BENCHMARKS.md) followed by the notes.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        out.push_str("| # | measure | ours | baseline | ratio | target | verdict |\n");
        out.push_str("|---|---|---|---|---|---|---|\n");
        for row in &self.rows {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} |",
                row.scenario,
                row.measure,
                row.ours,
                row.baseline,
                row.ratio,
                row.target,
                row.verdict.as_str()
            );
        }
        if !self.notes.is_empty() {
            out.push('\n');
            for note in &self.notes {
                let _ = writeln!(out, "- {note}");
            }
        }
        out
    }
}

pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}
