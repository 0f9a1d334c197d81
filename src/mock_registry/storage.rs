//! Reading: downloads (`GET`/`HEAD /artifactory/{repo}/{path}`, streamed from disk), storage
//! info (`/artifactory/api/storage/...`, with `?properties`) and checksum search.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Extension;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::Shared;
use super::auth::Caller;
use super::clock::{artifactory_timestamp, from_unix_millis};
use super::error::ApiError;
use super::paths::{ItemPath, base_url, download_url, parse_item_path, storage_url};
use super::store::{ArtifactRecord, ChecksumKind};

/// Anonymous callers may read only when the configuration allows it.
pub(super) fn check_read_access(shared: &Shared, caller: &Caller) -> Result<(), ApiError> {
    if shared.anonymous_read {
        Ok(())
    } else {
        caller.require_user().map(|_| ())
    }
}

/// The item named by the request path after `prefix`; `api/...` paths that reach here are
/// unknown API endpoints.
pub(super) fn item_after(uri: &Uri, prefix: &str) -> Result<ItemPath, ApiError> {
    let raw = uri.path().strip_prefix(prefix).unwrap_or_default();
    let item = parse_item_path(raw)?;
    if item.repo == "api" {
        return Err(ApiError::not_found("Not Found"));
    }
    Ok(item)
}

fn timestamp(millis: i64) -> String {
    from_unix_millis(millis)
        .map(artifactory_timestamp)
        .unwrap_or_default()
}

fn header_value(text: &str) -> Result<HeaderValue, ApiError> {
    HeaderValue::from_str(text).map_err(|error| ApiError::internal("Invalid header value", &error))
}

/// `GET`/`HEAD /artifactory/{repo}/{path}`
pub(super) async fn download(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    method: Method,
    uri: Uri,
) -> Result<Response, ApiError> {
    check_read_access(&shared, &caller)?;
    let item = item_after(&uri, "/artifactory/")?;
    let record = shared
        .store
        .record(&item.repo, &item.path)
        .filter(|_| !item.path.is_empty() && !item.trailing_slash)
        .ok_or_else(|| ApiError::not_found("File not found."))?;
    file_response(&shared, &record, &method).await
}

/// Streams a stored file from disk with its checksum headers (no body for `HEAD`).
pub(super) async fn file_response(
    shared: &Shared,
    record: &ArtifactRecord,
    method: &Method,
) -> Result<Response, ApiError> {
    let body = if *method == Method::HEAD {
        Body::empty()
    } else {
        let file = tokio::fs::File::open(shared.store.blob_path(&record.sha256))
            .await
            .map_err(|error| ApiError::internal("Cannot open the stored blob", &error))?;
        Body::from_stream(tokio_util::io::ReaderStream::new(file))
    };
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, header_value(&record.mime_type)?);
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(record.size));
    headers.insert("x-checksum-sha1", header_value(&record.sha1)?);
    headers.insert("x-checksum-sha256", header_value(&record.sha256)?);
    headers.insert("x-checksum-md5", header_value(&record.md5)?);
    Ok(response)
}

fn file_info(base: &str, item: &ItemPath, record: &ArtifactRecord) -> Value {
    json!({
        "repo": item.repo,
        "path": format!("/{}", item.path),
        "created": timestamp(record.created_millis),
        "createdBy": record.created_by,
        "lastModified": timestamp(record.modified_millis),
        "modifiedBy": record.created_by,
        "lastUpdated": timestamp(record.modified_millis),
        "downloadUri": download_url(base, &item.repo, &item.path),
        "mimeType": record.mime_type,
        "size": record.size.to_string(),
        "checksums": { "sha1": record.sha1, "md5": record.md5, "sha256": record.sha256 },
        "originalChecksums": record.original_checksums,
        "uri": storage_url(base, &item.repo, &item.path),
    })
}

fn folder_info(
    shared: &Shared,
    base: &str,
    item: &ItemPath,
    children: Vec<(String, bool)>,
) -> Value {
    // The mock keeps no folder records: a folder is as old as its oldest file and was last
    // changed with its newest one (an empty configured repository: now).
    let prefix = if item.path.is_empty() {
        String::new()
    } else {
        format!("{}/", item.path)
    };
    let records = shared.store.records_in(&item.repo);
    let under = records.iter().filter(|(path, _)| path.starts_with(&prefix));
    let oldest = under
        .clone()
        .min_by_key(|(_, record)| record.created_millis);
    let newest = under.map(|(_, record)| record.modified_millis).max();
    let now = artifactory_timestamp(shared.clock.now());
    let created = oldest.map_or(now.clone(), |(_, record)| timestamp(record.created_millis));
    let created_by = oldest.map(|(_, record)| record.created_by.clone());
    let modified = newest.map_or(now, timestamp);
    let children: Vec<Value> = children
        .into_iter()
        .map(|(name, folder)| json!({ "uri": format!("/{name}"), "folder": folder }))
        .collect();
    json!({
        "repo": item.repo,
        "path": format!("/{}", item.path),
        "created": created,
        "createdBy": created_by,
        "lastModified": modified,
        "modifiedBy": created_by,
        "lastUpdated": modified,
        "children": children,
        "uri": storage_url(base, &item.repo, &item.path),
    })
}

/// `?properties` or `?properties=a,b`: `Some(filter)` (empty = all) when asked for properties.
fn properties_query(uri: &Uri) -> Option<Vec<String>> {
    let query = uri.query()?;
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == "properties")
        .map(|(_, names)| {
            names
                .split(',')
                .filter(|name| !name.is_empty())
                .map(str::to_string)
                .collect()
        })
}

/// `GET /artifactory/api/storage/{repo}/{path}[?properties]`
pub(super) async fn storage_info(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_read_access(&shared, &caller)?;
    let item = item_after(&uri, "/artifactory/api/storage/")?;
    let base = base_url(&headers, &uri);
    let record = shared.store.record(&item.repo, &item.path);
    if let Some(wanted) = properties_query(&uri) {
        let properties: BTreeMap<String, Vec<String>> = record
            .map(|record| record.properties)
            .unwrap_or_default()
            .into_iter()
            .filter(|(key, _)| wanted.is_empty() || wanted.contains(key))
            .collect();
        if properties.is_empty() {
            return Err(ApiError::not_found("No properties could be found."));
        }
        let body =
            json!({ "properties": properties, "uri": storage_url(&base, &item.repo, &item.path) });
        return Ok(axum::Json(body).into_response());
    }
    let body = match record {
        Some(record) if !item.path.is_empty() => file_info(&base, &item, &record),
        _ => {
            let children = shared
                .store
                .children(&item.repo, &item.path)
                .ok_or_else(|| ApiError::not_found("Unable to find item"))?;
            folder_info(&shared, &base, &item, children)
        }
    };
    Ok(axum::Json(body).into_response())
}

/// `GET /artifactory/api/search/checksum?sha256=...` (or `sha1=`, `md5=`)
pub(super) async fn checksum_search(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_read_access(&shared, &caller)?;
    let query = uri.query().unwrap_or_default();
    let (kind, value) = url::form_urlencoded::parse(query.as_bytes())
        .find_map(|(key, value)| {
            let kind = match key.as_ref() {
                "sha256" => ChecksumKind::Sha256,
                "sha1" => ChecksumKind::Sha1,
                "md5" => ChecksumKind::Md5,
                _ => return None,
            };
            Some((kind, value.into_owned()))
        })
        .ok_or_else(|| {
            ApiError::bad_request("A sha256, sha1 or md5 query parameter is required")
        })?;
    let base = base_url(&headers, &uri);
    let results: Vec<Value> = shared
        .store
        .find_by_checksum(kind, &value)
        .into_iter()
        .map(|(repo, path)| json!({ "uri": storage_url(&base, &repo, &path) }))
        .collect();
    Ok(axum::Json(json!({ "results": results })).into_response())
}
