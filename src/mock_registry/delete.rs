//! `DELETE /artifactory/{repo}/{path}`: Artifactory's Delete Item, for users with Delete
//! permission ([`super::MockRegistryConfig::deleters`]).

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::http::{StatusCode, Uri};

use super::Shared;
use super::auth::Caller;
use super::error::ApiError;
use super::paths::parse_item_path;

/// 204 when the file (or every file of the folder) was removed; 404 when nothing is there;
/// 403, with Artifactory's wording, for a user without Delete permission.
pub(super) async fn delete_item(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    uri: Uri,
) -> Result<StatusCode, ApiError> {
    let raw = uri.path().strip_prefix("/artifactory/").unwrap_or_default();
    let item = parse_item_path(raw)?;
    if item.repo == "api" {
        return Err(ApiError::not_found("Not Found"));
    }
    let username = caller.require_user()?;
    if !shared.deleters.iter().any(|name| name == username) {
        return Err(ApiError::forbidden(format!(
            "Not enough permissions to delete/overwrite artifact '{}:{}' (user: '{username}' needs DELETE permission).",
            item.repo, item.path
        )));
    }
    if shared.store.remove(&item.repo, &item.path) == 0 {
        return Err(ApiError::not_found(format!(
            "Could not locate artifact '{}:{}' (Nothing to delete).",
            item.repo, item.path
        )));
    }
    shared
        .store
        .persist()
        .await
        .map_err(|error| ApiError::internal("Cannot write the metadata file", &error))?;
    Ok(StatusCode::NO_CONTENT)
}
