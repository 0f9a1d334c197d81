//! Reading from the npm API: `GET /artifactory/api/npm/{repo}/{name}` (the packument),
//! `GET .../{name}/-/{file}.tgz` (a tarball, streamed from disk) and the small registry
//! endpoints npm calls (`-/ping`, `-/whoami`).

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::Shared;
use super::auth::Caller;
use super::error::{ApiError, NpmError};
use super::npm_index::packument;
use super::npm_names::{NpmTarget, parse_npm_path, stored_tarball_candidates};
use super::paths::base_url;
use super::storage::{check_read_access, file_response};

/// `GET`/`HEAD /artifactory/api/npm/{repo}/...`
pub(super) async fn read(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, NpmError> {
    match parse_npm_path(uri.path())? {
        NpmTarget::Endpoint { endpoint, .. } => registry_endpoint(&caller, &endpoint),
        NpmTarget::Package { repo, name } => {
            check_read_access(&shared, &caller)?;
            let base = base_url(&headers, &uri);
            let document = shared.npm.read(|index| {
                index
                    .package(&repo, &name)
                    .map(|package| packument(&base, &repo, &name, package))
            });
            let document = document.ok_or_else(|| {
                ApiError::not_found(format!("Package '{name}' not found in repository '{repo}'"))
            })?;
            Ok(axum::Json(document).into_response())
        }
        NpmTarget::Tarball { repo, name, file } => {
            check_read_access(&shared, &caller)?;
            let record = stored_tarball_candidates(&name, &file)
                .into_iter()
                .find_map(|path| shared.store.record(&repo, &path))
                .ok_or_else(|| ApiError::not_found(format!("Tarball '{file}' not found")))?;
            Ok(file_response(&shared, &record, &method).await?)
        }
    }
}

/// `-/ping` answers `{}` and `-/whoami` the caller's name, as npm registries do.
fn registry_endpoint(caller: &Caller, endpoint: &str) -> Result<Response, NpmError> {
    match endpoint {
        "ping" | "v1/ping" => Ok(axum::Json(json!({})).into_response()),
        "whoami" => {
            let username = caller.require_user()?;
            Ok(axum::Json(json!({ "username": username })).into_response())
        }
        _ => Err(ApiError::not_found("Not Found").into()),
    }
}
