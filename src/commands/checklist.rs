//! The checklist `check` prints: one line per check with ✔, ✘, ! (warning) or – (skipped),
//! and under every ✘ the fix.

use std::fmt::Write as _;

/// How one check ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Pass(String),
    Fail {
        problem: String,
        fix: String,
    },
    /// Not fatal: worth knowing, does not make the command fail.
    Warn {
        problem: String,
        note: String,
    },
    Skip(String),
}

/// One line of the checklist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
}

/// The checks made so far, in order.
#[derive(Debug, Default)]
pub struct Checklist {
    pub checks: Vec<Check>,
}

impl Checklist {
    pub fn pass(&mut self, name: &'static str, detail: impl Into<String>) {
        self.push(name, Status::Pass(detail.into()));
    }

    pub fn fail(&mut self, name: &'static str, problem: impl Into<String>, fix: impl Into<String>) {
        self.push(
            name,
            Status::Fail {
                problem: problem.into(),
                fix: fix.into(),
            },
        );
    }

    pub fn warn(
        &mut self,
        name: &'static str,
        problem: impl Into<String>,
        note: impl Into<String>,
    ) {
        self.push(
            name,
            Status::Warn {
                problem: problem.into(),
                note: note.into(),
            },
        );
    }

    pub fn skip(&mut self, name: &'static str, why: impl Into<String>) {
        self.push(name, Status::Skip(why.into()));
    }

    fn push(&mut self, name: &'static str, status: Status) {
        self.checks.push(Check { name, status });
    }

    pub fn failed(&self) -> usize {
        self.checks
            .iter()
            .filter(|check| matches!(check.status, Status::Fail { .. }))
            .count()
    }

    /// The checklist as text, with a closing line.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for check in &self.checks {
            let _ = match &check.status {
                Status::Pass(detail) => writeln!(out, "✔ {}: {detail}", check.name),
                Status::Fail { problem, fix } => {
                    writeln!(out, "✘ {}: {problem}\n    fix: {fix}", check.name)
                }
                Status::Warn { problem, note } => {
                    writeln!(out, "! {}: {problem}\n    note: {note}", check.name)
                }
                Status::Skip(why) => writeln!(out, "– {}: skipped ({why})", check.name),
            };
        }
        let failed = self.failed();
        let _ = if failed == 0 {
            writeln!(out, "\nAll checks passed.")
        } else {
            writeln!(
                out,
                "\n{failed} check{} failed; apply the fixes above and run check again.",
                if failed == 1 { "" } else { "s" }
            )
        };
        out
    }
}
