//! Build info: `PUT /artifactory/api/build` stores a build-info document (it must name
//! `name`, `number` and `started`); `GET /artifactory/api/build`, `.../{name}` and
//! `.../{name}/{number}` read them back the way Artifactory shapes them. Kept in `builds.json`.
//! Publishing the same name and number again replaces the earlier document.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Extension;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::Shared;
use super::auth::Caller;
use super::body::read_capped;
use super::clock::to_unix_millis;
use super::error::ApiError;
use super::paths::base_url;
use super::storage::check_read_access;

/// File name of the build store inside the data directory.
pub(super) const BUILDS_FILE: &str = "builds.json";

/// The largest build-info document accepted.
const MAX_BUILD_INFO_BYTES: usize = 64 << 20;

/// Every build published, by name then number.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct BuildStore {
    pub(super) builds: BTreeMap<String, BTreeMap<String, StoredBuild>>,
}

/// One published build run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct StoredBuild {
    /// `started` as the client sent it (e.g. `2026-11-26T09:13:04.174+0000`).
    pub(super) started: String,
    /// The whole document as published.
    pub(super) build_info: Value,
    pub(super) published_millis: i64,
    pub(super) published_by: String,
}

/// A path segment for a `uri` in an answer (names may hold spaces or slashes).
fn segment(text: &str) -> String {
    utf8_percent_encode(text, NON_ALPHANUMERIC).to_string()
}

fn required_text<'a>(document: &'a Value, field: &str) -> Result<&'a str, ApiError> {
    match &document[field] {
        Value::String(text) if !text.trim().is_empty() => Ok(text),
        _ => Err(ApiError::bad_request(format!(
            "Build info is missing the required field '{field}'"
        ))),
    }
}

/// `PUT /artifactory/api/build`
pub(super) async fn publish(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let username = caller.require_user()?.to_string();
    let bytes = read_capped(&headers, body, MAX_BUILD_INFO_BYTES).await?;
    let document: Value = serde_json::from_slice(&bytes)
        .map_err(|error| ApiError::bad_request(format!("Invalid build info JSON: {error}")))?;
    if !document.is_object() {
        return Err(ApiError::bad_request("Build info must be a JSON object"));
    }
    let name = required_text(&document, "name")?.to_string();
    let number = required_text(&document, "number")?.to_string();
    let started = required_text(&document, "started")?.to_string();
    let stored = StoredBuild {
        started,
        build_info: document,
        published_millis: to_unix_millis(shared.clock.now()),
        published_by: username,
    };
    shared.builds.update(|store| {
        store.builds.entry(name).or_default().insert(number, stored);
    });
    shared.builds.persist().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /artifactory/api/build`
pub(super) async fn list(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_read_access(&shared, &caller)?;
    let base = base_url(&headers, &uri);
    let builds: Vec<Value> = shared.builds.read(|store| {
        store
            .builds
            .iter()
            .map(|(name, runs)| {
                let last_started = runs.values().map(|run| run.started.clone()).max();
                json!({ "uri": format!("/{}", segment(name)), "lastStarted": last_started })
            })
            .collect()
    });
    let body = json!({ "uri": format!("{base}/artifactory/api/build"), "builds": builds });
    Ok(axum::Json(body).into_response())
}

/// `GET /artifactory/api/build/{name}`
pub(super) async fn runs(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_read_access(&shared, &caller)?;
    let numbers: Option<Vec<Value>> = shared.builds.read(|store| {
        store.builds.get(&name).map(|runs| {
            runs.iter()
                .map(|(number, run)| {
                    json!({ "uri": format!("/{}", segment(number)), "started": run.started })
                })
                .collect()
        })
    });
    let numbers = numbers
        .ok_or_else(|| ApiError::not_found(format!("No build was found for build name: {name}")))?;
    let base = base_url(&headers, &uri);
    let body = json!({
        "uri": format!("{base}/artifactory/api/build/{}", segment(&name)),
        "buildsNumbers": numbers,
    });
    Ok(axum::Json(body).into_response())
}

/// `GET /artifactory/api/build/{name}/{number}`
pub(super) async fn build(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Path((name, number)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_read_access(&shared, &caller)?;
    let document = shared.builds.read(|store| {
        store
            .builds
            .get(&name)
            .and_then(|runs| runs.get(&number))
            .map(|run| run.build_info.clone())
    });
    let document = document.ok_or_else(|| {
        ApiError::not_found(format!(
            "No build was found for build name: {name}, build number: {number}"
        ))
    })?;
    let base = base_url(&headers, &uri);
    let body = json!({
        "uri": format!("{base}/artifactory/api/build/{}/{}", segment(&name), segment(&number)),
        "buildInfo": document,
    });
    Ok(axum::Json(body).into_response())
}
