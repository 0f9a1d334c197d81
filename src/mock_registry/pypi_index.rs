//! Reading from the PyPI API: the PEP 503 simple index
//! (`GET /artifactory/api/pypi/{repo}/simple/` and `.../simple/{project}/`, HTML with
//! `#sha256=` links and `data-requires-python`) and the file downloads it links to
//! (`GET /artifactory/api/pypi/{repo}/{normalized-name}/{version}/{file}`).

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, Uri, header};
use axum::response::{IntoResponse, Response};

use super::Shared;
use super::auth::Caller;
use super::error::ApiError;
use super::model::StoredArtifact;
use super::paths::{base_url, encode_path};
use super::pypi_upload::{PROPERTY_NORMALIZED_NAME, PROPERTY_REQUIRES_PYTHON};
use super::storage::{check_read_access, file_response};
use super::store::Store;

/// PEP 503 normalisation: runs of `-`, `_` and `.` become one `-`, all lower case.
pub(super) fn normalize_project_name(name: &str) -> String {
    let mut normalized = String::with_capacity(name.len());
    let mut in_separator_run = false;
    for character in name.chars() {
        if matches!(character, '-' | '_' | '.') {
            if !in_separator_run {
                normalized.push('-');
            }
            in_separator_run = true;
        } else {
            normalized.extend(character.to_lowercase());
            in_separator_run = false;
        }
    }
    normalized
}

/// A repository key taken from a path parameter: one plain segment.
pub(super) fn check_repo_key(repo: &str) -> Result<(), ApiError> {
    if repo.is_empty() || repo == "." || repo == ".." || repo.contains(['/', '\\', '\0']) {
        return Err(ApiError::bad_request(format!(
            "Invalid repository key '{repo}'"
        )));
    }
    Ok(())
}

/// Every file uploaded through the PyPI API for `project` (any spelling), sorted by path.
pub(super) fn project_files(store: &Store, repo: &str, project: &str) -> Vec<StoredArtifact> {
    let wanted = normalize_project_name(project);
    store
        .stored_artifacts(repo)
        .into_iter()
        .filter(|artifact| {
            artifact
                .properties
                .get(PROPERTY_NORMALIZED_NAME)
                .is_some_and(|names| names.contains(&wanted))
        })
        .collect()
}

/// Escapes text for HTML content and double-quoted attributes.
fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#x27;"),
            other => escaped.push(other),
        }
    }
    escaped
}

fn html_page(title: &str, links: &[String]) -> Response {
    let title = escape_html(title);
    let mut page = format!(
        "<!DOCTYPE html>\n<html>\n  <head>\n    <meta name=\"pypi:repository-version\" content=\"1.0\">\n    <title>{title}</title>\n  </head>\n  <body>\n    <h1>{title}</h1>\n"
    );
    for link in links {
        page.push_str("    ");
        page.push_str(link);
        page.push_str("<br/>\n");
    }
    page.push_str("  </body>\n</html>\n");
    let mut response = page.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

fn root_index(shared: &Shared, repo: &str) -> Response {
    let projects: BTreeSet<String> = shared
        .store
        .stored_artifacts(repo)
        .into_iter()
        .filter_map(|artifact| {
            artifact
                .properties
                .get(PROPERTY_NORMALIZED_NAME)?
                .first()
                .cloned()
        })
        .collect();
    let links: Vec<String> = projects
        .iter()
        .map(|project| {
            let project = escape_html(project);
            format!("<a href=\"{project}/\">{project}</a>")
        })
        .collect();
    html_page("Simple index", &links)
}

fn project_page(
    shared: &Shared,
    base: &str,
    repo: &str,
    project: &str,
) -> Result<Response, ApiError> {
    let files = project_files(&shared.store, repo, project);
    if files.is_empty() {
        return Err(ApiError::not_found(format!(
            "Project '{project}' not found in repository '{repo}'"
        )));
    }
    let links: Vec<String> = files
        .iter()
        .map(|artifact| {
            let file_name = artifact.path.rsplit('/').next().unwrap_or(&artifact.path);
            let url = format!(
                "{base}/artifactory/api/pypi/{}/{}#sha256={}",
                encode_path(repo),
                encode_path(&artifact.path),
                artifact.sha256
            );
            let requires = artifact
                .properties
                .get(PROPERTY_REQUIRES_PYTHON)
                .and_then(|values| values.first())
                .map(|requires| format!(" data-requires-python=\"{}\"", escape_html(requires)))
                .unwrap_or_default();
            format!(
                "<a href=\"{}\"{requires}>{}</a>",
                escape_html(&url),
                escape_html(file_name)
            )
        })
        .collect();
    Ok(html_page(
        &format!("Links for {}", normalize_project_name(project)),
        &links,
    ))
}

/// `GET`/`HEAD /artifactory/api/pypi/{repo}/{*rest}`
pub(super) async fn read(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Path((repo, rest)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_read_access(&shared, &caller)?;
    check_repo_key(&repo)?;
    let rest = rest.trim_end_matches('/');
    if rest == "simple" {
        return Ok(root_index(&shared, &repo));
    }
    if let Some(project) = rest.strip_prefix("simple/") {
        if project.is_empty() || project.contains('/') {
            return Err(ApiError::not_found("Not Found"));
        }
        return project_page(&shared, &base_url(&headers, &uri), &repo, project);
    }
    let record = shared
        .store
        .record(&repo, rest)
        .filter(|record| record.properties.contains_key(PROPERTY_NORMALIZED_NAME))
        .ok_or_else(|| ApiError::not_found("File not found."))?;
    file_response(&shared, &record, &method).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalized_per_pep_503() {
        assert_eq!(normalize_project_name("Camera_Agent"), "camera-agent");
        assert_eq!(normalize_project_name("camera.-_agent"), "camera-agent");
        assert_eq!(normalize_project_name("a--b__c..d"), "a-b-c-d");
        assert_eq!(
            normalize_project_name("camera_agent-0.1.0-py3-none-any.whl"),
            "camera-agent-0-1-0-py3-none-any-whl"
        );
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(escape_html(">=3.8 & <4"), "&gt;=3.8 &amp; &lt;4");
        assert_eq!(escape_html("a\"b'c"), "a&quot;b&#x27;c");
    }
}
