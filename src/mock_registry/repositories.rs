//! `GET /artifactory/api/repositories[?type=local|remote|virtual|...][&packageType=npm]`: every
//! repository as Artifactory's Get Repositories lists it (`key`, `type`, `description`, `url`,
//! `packageType`). All of the mock's repositories are local; their package type is judged by
//! what they hold (see `catalog`).

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::Shared;
use super::auth::Caller;
use super::catalog;
use super::error::ApiError;
use super::paths::{base_url, download_url};
use super::storage::check_read_access;

/// The repository types Get Repositories filters by; only `local` ones exist here.
const REPOSITORY_TYPES: [&str; 6] = [
    "local",
    "remote",
    "virtual",
    "federated",
    "distribution",
    "releasebundles",
];

/// `generic` → `Generic`, as Artifactory spells package types in this listing.
fn display_package_type(package_type: &str) -> String {
    let mut characters = package_type.chars();
    match characters.next() {
        Some(first) => first.to_uppercase().chain(characters).collect(),
        None => String::new(),
    }
}

/// `GET /artifactory/api/repositories`
pub(super) async fn list(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_read_access(&shared, &caller)?;
    let mut wanted_type = None;
    let mut wanted_package_type = None;
    for (key, value) in url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "type" => {
                let value = value.to_ascii_lowercase();
                if !REPOSITORY_TYPES.contains(&value.as_str()) {
                    return Err(ApiError::bad_request(format!(
                        "Unknown repository type '{value}': expected one of {}",
                        REPOSITORY_TYPES.join(", ")
                    )));
                }
                wanted_type = Some(value);
            }
            "packageType" => wanted_package_type = Some(value.to_ascii_lowercase()),
            _ => {}
        }
    }
    let base = base_url(&headers, &uri);
    let packages = catalog::packages(&shared);
    let listed: Vec<Value> = catalog::repositories(&shared, &packages)
        .into_iter()
        .filter(|_| wanted_type.as_deref().is_none_or(|kind| kind == "local"))
        .filter(|repository| {
            wanted_package_type
                .as_deref()
                .is_none_or(|kind| kind == repository.package_type)
        })
        .map(|repository| {
            json!({
                "key": repository.key,
                "type": "LOCAL",
                "description": "",
                "url": download_url(&base, &repository.key, ""),
                "packageType": display_package_type(repository.package_type),
            })
        })
        .collect();
    Ok(axum::Json(Value::Array(listed)).into_response())
}
