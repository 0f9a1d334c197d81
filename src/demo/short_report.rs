//! The plain `demo` summary: one aligned block per job (its result as the console would
//! summarise it) and the published files as one table, short enough for one screen. The
//! properties, the full receipt and every output variable are in `--verbose` and the UIs.

use std::fmt::Write;

use super::LocalEnvironment;
use super::scenario::{DEMO_REPOSITORIES, DemoOutcome};
use crate::mock_registry::StoredArtifact;
use crate::publish::receipt::human_bytes;
use crate::sandbox::{JobResult, StoredObject};

/// Most lines of a failure message shown; the rest is in the pipeline view.
const MAX_MESSAGE_LINES: usize = 5;
/// Characters of the sha256 shown in the table (enough to compare by eye).
const SHA256_SHOWN: usize = 12;
/// Where a job block's detail lines start.
const INDENT: &str = "       ";

/// The header printed before the worker starts.
pub fn start_line() -> &'static str {
    "pipeline-publisher demo: 4 jobs through the real worker, on local CodePipeline, S3 and \
     Artifactory stand-ins\n"
}

/// The summary as printed: lines joined, ending in a newline.
pub type Screen = String;

/// One line of the summary.
type Line = String;

/// The summary after the worker has ended the jobs.
pub fn render(environment: &LocalEnvironment, outcome: &DemoOutcome) -> anyhow::Result<Screen> {
    let mut out = String::new();
    let statuses: Vec<String> = outcome
        .jobs
        .iter()
        .map(|(_, record)| match record.results.first() {
            Some(JobResult::Success { .. }) => "Succeeded".to_owned(),
            Some(JobResult::Failure { .. }) => "Failed".to_owned(),
            None => record.status.as_str().to_owned(),
        })
        .collect();
    let pipeline_width = width(outcome.jobs.iter().map(|(job, _)| job.pipeline_name));
    let status_width = width(statuses.iter().map(String::as_str));
    for ((job, record), status) in outcome.jobs.iter().zip(&statuses) {
        line(
            &mut out,
            format_args!(
                "{}  {:<pipeline_width$}  {:<status_width$}  {}",
                job.label, job.pipeline_name, status, job.description
            ),
        );
        match record.results.first() {
            // The worker's summary is `;`-separated facts: one per line reads at a glance.
            Some(JobResult::Success { summary, .. }) => {
                for fact in summary.as_deref().unwrap_or("").split("; ") {
                    line(&mut out, format_args!("{INDENT}{fact}"));
                }
            }
            Some(JobResult::Failure {
                failure_type,
                message,
                ..
            }) => {
                let lines: Vec<&str> = message.lines().collect();
                let first = lines.first().copied().unwrap_or("");
                let first = first.strip_prefix("error: ").unwrap_or(first);
                line(&mut out, format_args!("{INDENT}{failure_type}: {first}"));
                for text in lines.iter().skip(1).take(MAX_MESSAGE_LINES - 1) {
                    line(&mut out, format_args!("{INDENT}{text}"));
                }
                if lines.len() > MAX_MESSAGE_LINES {
                    line(
                        &mut out,
                        format_args!(
                            "{INDENT}… {} more lines (--verbose)",
                            lines.len() - MAX_MESSAGE_LINES
                        ),
                    );
                }
            }
            None => line(&mut out, format_args!("{INDENT}no result was reported")),
        }
        if job.writes_receipt {
            line(
                &mut out,
                format_args!("{INDENT}{}", receipt_fact(outcome.receipt.as_ref())?),
            );
        }
    }
    out.push('\n');
    let artifacts: Vec<StoredArtifact> = DEMO_REPOSITORIES
        .iter()
        .flat_map(|repo| environment.registry.registry.artifacts(repo))
        .collect();
    let tokens = environment.registry.registry.tokens();
    line(
        &mut out,
        format_args!(
            "Published files ({}/artifactory/) with {} short-lived registry tokens, {} revoked",
            environment.registry.base_url,
            tokens.len(),
            tokens.iter().filter(|token| token.revoked).count()
        ),
    );
    files_table(&mut out, &artifacts);
    Ok(out)
}

/// The files as an aligned table: repository, path, size, start of the sha256.
fn files_table(out: &mut String, artifacts: &[StoredArtifact]) {
    let sizes: Vec<String> = artifacts
        .iter()
        .map(|artifact| human_bytes(artifact.size))
        .collect();
    let repo_width =
        width(std::iter::once("REPOSITORY").chain(artifacts.iter().map(|a| a.repo.as_str())));
    let path_width =
        width(std::iter::once("PATH").chain(artifacts.iter().map(|a| a.path.as_str())));
    let size_width = width(std::iter::once("SIZE").chain(sizes.iter().map(String::as_str)));
    line(
        out,
        format_args!(
            "  {:<repo_width$}  {:<path_width$}  {:>size_width$}  SHA256",
            "REPOSITORY", "PATH", "SIZE"
        ),
    );
    for (artifact, size) in artifacts.iter().zip(&sizes) {
        let sha256: String = artifact.sha256.chars().take(SHA256_SHOWN).collect();
        line(
            out,
            format_args!(
                "  {:<repo_width$}  {:<path_width$}  {size:>size_width$}  {sha256}…",
                artifact.repo, artifact.path
            ),
        );
    }
}

/// One line on the camera-agent job's output artifact.
fn receipt_fact(object: Option<&StoredObject>) -> anyhow::Result<Line> {
    let Some(object) = object else {
        return Ok("no publish-receipt.json was written to the output artifact".to_owned());
    };
    let receipt = read_receipt(object)?;
    let files = receipt["files"].as_array().map_or(0, Vec::len);
    Ok(format!(
        "publish-receipt.json ({files} files) in the output artifact, encrypted with {}",
        object.sse.as_deref().unwrap_or("nothing")
    ))
}

/// `publish-receipt.json` from the output artifact's zip.
pub fn read_receipt(object: &StoredObject) -> anyhow::Result<serde_json::Value> {
    let mut zip = zip::ZipArchive::new(std::fs::File::open(&object.content_path)?)?;
    Ok(serde_json::from_reader(
        zip.by_name(crate::publish::output::RECEIPT_FILE)?,
    )?)
}

fn width<'a>(values: impl Iterator<Item = &'a str>) -> usize {
    values.map(|value| value.chars().count()).max().unwrap_or(0)
}

fn line(out: &mut String, arguments: std::fmt::Arguments<'_>) {
    // Writing to a String cannot fail.
    let _ = out.write_fmt(arguments);
    out.push('\n');
}
