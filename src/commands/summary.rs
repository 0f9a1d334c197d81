//! What `publish` prints: the plan as a table (`--dry-run`) and the final summary, as text or
//! as JFrog CLI's JSON shape `{"status","totals":{"success","failure"},"files":[...]}`.

use std::fmt::Write as _;

use serde::Serialize;

use crate::publish::PublishPlan;
use crate::publish::receipt::human_bytes;
use crate::registry::{DeployOutcome, RegistryClient};

/// One file of the final summary.
#[derive(Debug, Clone, Serialize)]
pub struct SummaryFile {
    pub source: String,
    pub target: String,
    pub sha256: String,
    #[serde(skip)]
    pub size: u64,
    #[serde(skip)]
    pub outcome: Option<DeployOutcome>,
}

#[derive(Debug, Serialize)]
struct Totals {
    success: usize,
    failure: usize,
}

/// JFrog CLI's upload summary.
#[derive(Debug, Serialize)]
struct JsonSummary<'a> {
    status: &'static str,
    totals: Totals,
    files: &'a [SummaryFile],
}

/// The summary as JSON: `failure` counts the planned files that did not land.
pub fn json(files: &[SummaryFile], planned: usize) -> String {
    let failure = planned.saturating_sub(files.len());
    render_json(
        if failure == 0 { "success" } else { "failure" },
        files,
        failure,
    )
}

/// The plan in the summary's shape, with status `dry-run` (the totals count planned files).
pub fn dry_run_json(files: &[SummaryFile]) -> String {
    render_json("dry-run", files, 0)
}

fn render_json(status: &'static str, files: &[SummaryFile], failure: usize) -> String {
    let summary = JsonSummary {
        status,
        totals: Totals {
            success: files.len(),
            failure,
        },
        files,
    };
    // Serialising plain strings and numbers cannot fail.
    serde_json::to_string_pretty(&summary).unwrap_or_default()
}

/// The summary as text.
pub fn text(files: &[SummaryFile], planned: usize, location: &str) -> String {
    let bytes: u64 = files.iter().map(|file| file.size).sum();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} {} of {planned} file{} ({}) to {location}",
        if files.len() == planned {
            "Published"
        } else {
            "Failed after publishing"
        },
        files.len(),
        if planned == 1 { "" } else { "s" },
        human_bytes(bytes),
    );
    for file in files {
        let how = match file.outcome {
            Some(DeployOutcome::Uploaded) => "uploaded",
            Some(DeployOutcome::ChecksumDeployed) => "checksum deploy",
            Some(DeployOutcome::AlreadyPublished) => "already there",
            None => "",
        };
        let _ = writeln!(out, "  {how:<16} {} → {}", file.source, file.target);
    }
    out
}

/// The plan as a table: source → format → target URL, size, sha256, properties.
pub fn plan_table(plan: &PublishPlan, client: &RegistryClient, format: &str) -> String {
    let headers = [
        "SOURCE",
        "FORMAT",
        "TARGET URL",
        "SIZE",
        "SHA256",
        "PROPERTIES",
    ];
    let rows: Vec<[String; 6]> = plan
        .items
        .iter()
        .map(|item| {
            let properties: Vec<String> = item
                .properties
                .iter()
                .map(|(key, values)| format!("{key}={}", values.join(",")))
                .collect();
            [
                item.source.relative_path.clone(),
                format.to_owned(),
                client.artifact_url(&plan.repo_key, &item.target_path),
                item.source.size.to_string(),
                item.source.checksums.sha256.clone(),
                properties.join(";"),
            ]
        })
        .collect();
    let mut widths = headers.map(|header| header.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let mut text = String::new();
        for (index, cell) in cells.iter().enumerate() {
            if index + 1 == cells.len() {
                text.push_str(cell);
            } else if index == 3 {
                // Sizes read best right-aligned.
                let _ = write!(text, "{cell:>width$}  ", width = widths[index]);
            } else {
                let _ = write!(text, "{cell:<width$}  ", width = widths[index]);
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&headers);
    for row in &rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        line(&cells);
    }
    let _ = writeln!(
        out,
        "{} file{}, {} — dry run: nothing was contacted or published",
        plan.items.len(),
        if plan.items.len() == 1 { "" } else { "s" },
        human_bytes(plan.total_bytes())
    );
    out
}
