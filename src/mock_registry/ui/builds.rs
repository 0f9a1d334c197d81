//! Build pages: `/ui/builds/` (every build), `/ui/builds/{name}` (its runs) and a run's page at
//! the path the worker's `externalExecutionId` names,
//! `/ui/builds/{name}/{number}/{started millis}/published?buildRepo=artifactory-build-info`
//! (name and number percent-encoded, so a `/` or a space in a pipeline name stays in its
//! segment). A run's page shows what build info says: agent, VCS revisions, properties, and each
//! module's artifacts with checksums and links to the files.
//!
//! A run is found by name and number; the `started` segment only tells runs apart in
//! Artifactory, where a number can be published twice, and the mock replaces a republished run.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use serde_json::Value;

use super::html::{
    Crumb, build_href, build_runs_href, build_segment, display_time, download_href, external_href,
    page, respond, tree_href,
};
use super::refusal;
use crate::mock_registry::Shared;
use crate::mock_registry::auth::Caller;
use crate::mock_registry::build_info::StoredBuild;

/// One published run, as the lists show it.
#[derive(Debug, Clone)]
pub(super) struct RunSummary {
    pub(super) name: String,
    pub(super) number: String,
    /// `started` as published.
    pub(super) started: String,
    /// `started` in epoch milliseconds, the third segment of the run's URL.
    pub(super) started_millis: Option<i128>,
    pub(super) artifact_count: usize,
}

/// Parses build info's `started` (`2026-11-26T09:13:04.174+0000`; also `Z` or `+hh:mm`) into
/// epoch milliseconds, as the worker computes them for the run's URL.
pub(super) fn started_millis(text: &str) -> Option<i128> {
    let (date, rest) = text.split_once('T')?;
    let mut date_parts = date.split('-');
    let year: i32 = date_parts.next()?.parse().ok()?;
    let month: u8 = date_parts.next()?.parse().ok()?;
    let day: u8 = date_parts.next()?.parse().ok()?;
    let offset_at = rest.find(['+', '-', 'Z'])?;
    let (clock, offset) = rest.split_at(offset_at);
    let (hms, fraction) = clock.split_once('.').unwrap_or((clock, "0"));
    let mut clock_parts = hms.split(':');
    let hour: u8 = clock_parts.next()?.parse().ok()?;
    let minute: u8 = clock_parts.next()?.parse().ok()?;
    let second: u8 = clock_parts.next()?.parse().ok()?;
    let millis_text: String = fraction.chars().chain("000".chars()).take(3).collect();
    let millis: u16 = millis_text.parse().ok()?;
    let offset_minutes: i32 = if offset == "Z" {
        0
    } else {
        let sign = if offset.starts_with('-') { -1 } else { 1 };
        let digits: String = offset[1..].chars().filter(char::is_ascii_digit).collect();
        if digits.len() != 4 {
            return None;
        }
        let hours: i32 = digits[..2].parse().ok()?;
        let minutes: i32 = digits[2..].parse().ok()?;
        sign * (hours * 60 + minutes)
    };
    let date =
        time::Date::from_calendar_date(year, time::Month::try_from(month).ok()?, day).ok()?;
    let clock = time::Time::from_hms_milli(hour, minute, second, millis).ok()?;
    let local = time::PrimitiveDateTime::new(date, clock).assume_utc();
    let at = local - time::Duration::minutes(i64::from(offset_minutes));
    Some(at.unix_timestamp_nanos() / 1_000_000)
}

fn artifact_count(document: &Value) -> usize {
    document["modules"]
        .as_array()
        .map(|modules| {
            modules
                .iter()
                .map(|module| module["artifacts"].as_array().map_or(0, Vec::len))
                .sum()
        })
        .unwrap_or(0)
}

fn summary(name: &str, number: &str, run: &StoredBuild) -> RunSummary {
    RunSummary {
        name: name.to_owned(),
        number: number.to_owned(),
        started: run.started.clone(),
        started_millis: started_millis(&run.started),
        artifact_count: artifact_count(&run.build_info),
    }
}

/// Every run of every build, by name then number.
pub(super) fn all_runs(shared: &Shared) -> Vec<RunSummary> {
    shared.builds.read(|store| {
        store
            .builds
            .iter()
            .flat_map(|(name, runs)| {
                runs.iter()
                    .map(move |(number, run)| summary(name, number, run))
            })
            .collect()
    })
}

/// A JSON value as text: strings as they are, other values as JSON, nothing for null.
fn text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn runs_table(runs: &[RunSummary], with_name: bool) -> Markup {
    html! {
        table {
            thead { tr { @if with_name { th { "Build" } } th { "Number" } th { "Started" } th { "Artifacts" } } }
            tbody {
                @for run in runs {
                    tr {
                        @if with_name { td { a href=(build_runs_href(&run.name)) { (run.name) } } }
                        td { a href=(build_href(&run.name, &run.number, run.started_millis)) { (run.number) } }
                        td { (run.started) }
                        td.num { (run.artifact_count) }
                    }
                }
            }
        }
    }
}

/// `GET /ui/builds/`
pub(super) async fn builds(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
) -> Response {
    if let Some(denied) = refusal(&shared, &caller) {
        return denied;
    }
    let runs = all_runs(&shared);
    let content = html! {
        @if runs.is_empty() {
            p.empty { "No build info has been published yet." }
        } @else {
            (runs_table(&runs, true))
        }
    };
    let crumbs = [Crumb::link("Repositories", "/ui/"), Crumb::here("Builds")];
    respond(StatusCode::OK, page("Builds", &crumbs, content))
}

/// `GET /ui/builds/{name}`
pub(super) async fn runs(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Response {
    if let Some(denied) = refusal(&shared, &caller) {
        return denied;
    }
    let runs: Vec<RunSummary> = all_runs(&shared)
        .into_iter()
        .filter(|run| run.name == name)
        .collect();
    if runs.is_empty() {
        return super::html::not_found(
            "No such build",
            &format!("No build info was published for the build '{name}'."),
        );
    }
    let crumbs = [
        Crumb::link("Builds", "/ui/builds/"),
        Crumb::here(name.clone()),
    ];
    respond(
        StatusCode::OK,
        page(&name, &crumbs, runs_table(&runs, false)),
    )
}

fn artifact_rows(shared: &Shared, module: &Value) -> Markup {
    let artifacts = module["artifacts"].as_array().cloned().unwrap_or_default();
    html! {
        @if artifacts.is_empty() {
            p.empty { "No artifacts." }
        } @else {
            table.artifacts {
                thead { tr { th { "Artifact" } th { "Type" } th { "Checksums" } th { "File" } } }
                tbody {
                    @for artifact in &artifacts {
                        @let repo = artifact["originalDeploymentRepo"].as_str();
                        @let path = artifact["path"].as_str();
                        @let stored = repo.zip(path).filter(|(repo, path)| shared.store.record(repo, path).is_some());
                        tr {
                            td {
                                @if let Some((repo, path)) = stored {
                                    a href=(tree_href(repo, path)) { (text(&artifact["name"])) }
                                } @else {
                                    (text(&artifact["name"]))
                                }
                                @if let Some(path) = path { br; span.muted { code { @if let Some(repo) = repo { (repo) "/" } (path) } } }
                            }
                            td { (text(&artifact["type"])) }
                            td.digest {
                                span.label { "sha256" } (text(&artifact["sha256"])) br;
                                span.label { "sha1" } (text(&artifact["sha1"])) br;
                                span.label { "md5" } (text(&artifact["md5"]))
                            }
                            td {
                                @if let Some((repo, path)) = stored {
                                    a.file href=(download_href(repo, path)) { "Download" }
                                } @else if repo.is_some() && path.is_some() {
                                    span.muted { "not in this registry" }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn run_content(shared: &Shared, name: &str, number: &str, run: &StoredBuild) -> Markup {
    let document = &run.build_info;
    let duration = document["durationMillis"].as_u64();
    let url = document["url"].as_str();
    let vcs = document["vcs"].as_array().cloned().unwrap_or_default();
    let properties = document["properties"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let modules = document["modules"].as_array().cloned().unwrap_or_default();
    let other_runs: Vec<RunSummary> = all_runs(shared)
        .into_iter()
        .filter(|other| other.name == name && other.number != number)
        .collect();
    let api = format!(
        "/artifactory/api/build/{}/{}",
        build_segment(name),
        build_segment(number)
    );
    html! {
        table.facts {
            tbody {
                tr { th { "Build" } td { (name) } }
                tr { th { "Number" } td { (number) } }
                tr { th { "Started" } td { (run.started) } }
                @if let Some(duration) = duration {
                    tr { th { "Duration" } td { (format!("{:.1} s", duration as f64 / 1000.0)) } }
                }
                tr { th { "Published" } td { (display_time(run.published_millis)) " by " (run.published_by) } }
                tr { th { "Agent" } td { (text(&document["agent"]["name"])) " " (text(&document["agent"]["version"])) } }
                tr { th { "Build agent" } td { (text(&document["buildAgent"]["name"])) " " (text(&document["buildAgent"]["version"])) } }
                @if let Some(url) = url {
                    tr { th { "Build URL" } td {
                        @if let Some(href) = external_href(url) { a href=(href) rel="noreferrer" { (url) } } @else { code { (url) } }
                    } }
                }
                tr { th { "Build info" } td { a href=(api) { code { (api) } } } }
            }
        }
        @if !vcs.is_empty() {
            h2 { "VCS" }
            table {
                thead { tr { th { "Revision" } th { "URL" } } }
                tbody { @for entry in &vcs { tr { td.digest { (text(&entry["revision"])) } td { (text(&entry["url"])) } } } }
            }
        }
        @if !properties.is_empty() {
            h2 { "Properties" }
            table.properties {
                thead { tr { th { "Property" } th { "Value" } } }
                tbody { @for (key, value) in &properties { tr { td { code { (key) } } td { (text(value)) } } } }
            }
        }
        h2 { "Modules" }
        @if modules.is_empty() {
            p.empty { "This build has no modules." }
        }
        @for module in &modules {
            h3.module { "Module " (text(&module["id"])) }
            (artifact_rows(shared, module))
        }
        @if !other_runs.is_empty() {
            h2 { "Other runs of this build" }
            (runs_table(&other_runs, false))
        }
    }
}

/// `GET /ui/builds/{name}/{number}[/{started}[/{tab}]]`
pub(super) async fn run(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Path(segments): Path<HashMap<String, String>>,
) -> Response {
    if let Some(denied) = refusal(&shared, &caller) {
        return denied;
    }
    let name = segments.get("name").cloned().unwrap_or_default();
    let number = segments.get("number").cloned().unwrap_or_default();
    let stored = shared.builds.read(|store| {
        store
            .builds
            .get(&name)
            .and_then(|runs| runs.get(&number))
            .cloned()
    });
    let Some(run) = stored else {
        return super::html::not_found(
            "No such build run",
            &format!("No build info was published for the build '{name}' number '{number}'."),
        );
    };
    let crumbs = [
        Crumb::link("Builds", "/ui/builds/"),
        Crumb::link(name.clone(), build_runs_href(&name)),
        Crumb::here(number.clone()),
    ];
    let title = format!("{name} #{number}");
    respond(
        StatusCode::OK,
        page(&title, &crumbs, run_content(&shared, &name, &number, &run)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn started_parses_in_every_offset_form() {
        assert_eq!(
            started_millis("2026-11-26T09:13:04.174+0000"),
            Some(1_795_684_384_174)
        );
        assert_eq!(
            started_millis("2026-11-26T10:13:04.174+01:00"),
            Some(1_795_684_384_174)
        );
        assert_eq!(
            started_millis("2026-11-26T09:13:04Z"),
            Some(1_795_684_384_000)
        );
        assert_eq!(started_millis("yesterday"), None);
    }
}
