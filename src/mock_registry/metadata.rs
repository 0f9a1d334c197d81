//! `PATCH /artifactory/api/metadata/{repo}/{path}[?recursiveProperties=0|1]` with
//! `{"props": {"key": "value", "other": ["a", "b"], "gone": null}}` — Update Item Properties.
//!
//! A string sets one value, an array of strings several, `null` removes the key; keys not named
//! are left alone. On a folder (or a repository root) the change applies to every file under
//! it, which is Artifactory's default (`recursiveProperties=1`). The mock keeps properties on
//! files only, so `recursiveProperties=0` on a folder is refused rather than silently dropped.
//! Answers 204.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Extension;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::Shared;
use super::auth::Caller;
use super::body::read_capped;
use super::error::ApiError;
use super::storage::item_after;

/// The largest property document accepted.
const MAX_METADATA_BYTES: usize = 1 << 20;

/// Property changes by key: `Some(values)` sets, `None` removes.
type Changes = BTreeMap<String, Option<Vec<String>>>;

fn parse_changes(bytes: &[u8]) -> Result<Changes, ApiError> {
    let document: Value = serde_json::from_slice(bytes)
        .map_err(|error| ApiError::bad_request(format!("Invalid JSON body: {error}")))?;
    let Some(props) = document.get("props").and_then(Value::as_object) else {
        return Err(ApiError::bad_request(
            "The body must be a JSON object with a \"props\" object, e.g. {\"props\": {\"key\": \"value\"}}",
        ));
    };
    let mut changes = Changes::new();
    for (key, value) in props {
        if key.is_empty() {
            return Err(ApiError::bad_request("Property keys must not be empty"));
        }
        let change = match value {
            Value::Null => None,
            Value::String(text) => Some(vec![text.clone()]),
            Value::Array(items) => Some(
                items
                    .iter()
                    .map(|item| item.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "Property '{key}': every value in the array must be a string"
                        ))
                    })?,
            ),
            other => {
                return Err(ApiError::bad_request(format!(
                    "Property '{key}': expected a string, an array of strings or null, got {other}"
                )));
            }
        };
        changes.insert(key.clone(), change);
    }
    Ok(changes)
}

fn query_flag(uri: &Uri, name: &str, default: bool) -> bool {
    url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
        .find(|(key, _)| key == name)
        .map_or(default, |(_, value)| {
            !matches!(value.as_ref(), "0" | "false")
        })
}

/// `PATCH /artifactory/api/metadata/{repo}/{path}`
pub(super) async fn update_item_properties(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    caller.require_user()?;
    let item = item_after(&uri, "/artifactory/api/metadata/")?;
    let bytes = read_capped(&headers, body, MAX_METADATA_BYTES).await?;
    let changes = parse_changes(&bytes)?;
    let recursive = query_flag(&uri, "recursiveProperties", true);
    let is_file = !item.path.is_empty() && shared.store.record(&item.repo, &item.path).is_some();
    if !is_file && !recursive {
        return Err(ApiError::bad_request(format!(
            "'{}/{}' is a folder; this registry keeps properties on files only, so use \
             recursiveProperties=1 to change the files under it",
            item.repo, item.path
        )));
    }
    let found = shared
        .store
        .change_properties(&item.repo, &item.path, &changes, recursive);
    if found == 0 {
        return Err(ApiError::not_found("Unable to find item"));
    }
    shared
        .store
        .persist()
        .await
        .map_err(|error| ApiError::internal("Cannot write the metadata file", &error))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_nulls_and_bad_shapes() {
        let changes =
            parse_changes(br#"{"props": {"a": "1", "b": ["x", "y"], "c": null}}"#).unwrap();
        assert_eq!(changes["a"], Some(vec!["1".to_owned()]));
        assert_eq!(changes["b"], Some(vec!["x".to_owned(), "y".to_owned()]));
        assert_eq!(changes["c"], None);
        for bad in [
            &br#"{"a": "1"}"#[..],
            br#"{"props": {"a": 1}}"#,
            b"not json",
        ] {
            assert_eq!(parse_changes(bad).unwrap_err().status, 400);
        }
    }
}
