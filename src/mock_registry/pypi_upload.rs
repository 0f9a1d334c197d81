//! `POST /artifactory/api/pypi/{repo}`: the legacy upload API that twine and uv use
//! (multipart/form-data, `:action=file_upload`, `protocol_version=1`, metadata fields, the file
//! in part `content`). The file is streamed to disk while hashed, checked against
//! `sha256_digest`/`md5_digest`, and stored at `{normalized-name}/{version}/{filename}` with
//! `pypi.*` properties, where the simple index finds it.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Extension;
use axum::extract::{FromRequest as _, Multipart, Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::Shared;
use super::auth::Caller;
use super::error::ApiError;
use super::paths::{Properties, base_url, download_url};
use super::pypi_index::{check_repo_key, normalize_project_name};
use super::staging::{
    CommitError, PackageFile, StagedFile, StagingWriter, commit_package_file, persist_store,
};

/// The most text (all metadata fields together) accepted besides the file.
const MAX_FIELD_BYTES: usize = 8 << 20;

/// Property names the upload sets; the simple index reads them back.
pub(super) const PROPERTY_NAME: &str = "pypi.name";
pub(super) const PROPERTY_VERSION: &str = "pypi.version";
pub(super) const PROPERTY_NORMALIZED_NAME: &str = "pypi.normalized.name";
pub(super) const PROPERTY_REQUIRES_PYTHON: &str = "pypi.requires.python";
const PROPERTY_SUMMARY: &str = "pypi.summary";

/// The form as received: text fields (repeatable) and the staged file.
#[derive(Default)]
struct UploadForm {
    fields: BTreeMap<String, Vec<String>>,
    content: Option<(String, StagedFile)>,
}

impl UploadForm {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .get(name)
            .and_then(|values| values.first())
            .map(|value| value.trim())
            .filter(|value| !value.is_empty())
    }

    fn required(&self, name: &str) -> Result<&str, ApiError> {
        self.field(name)
            .ok_or_else(|| ApiError::bad_request(format!("Missing required form field '{name}'")))
    }
}

fn malformed(error: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("Malformed multipart upload: {error}"))
}

async fn receive_form(shared: &Shared, mut multipart: Multipart) -> Result<UploadForm, ApiError> {
    let mut form = UploadForm::default();
    let mut text_bytes = 0usize;
    while let Some(mut field) = multipart.next_field().await.map_err(malformed)? {
        let name = field.name().unwrap_or_default().to_string();
        if name == "content" {
            let file_name = field
                .file_name()
                .ok_or_else(|| ApiError::bad_request("The 'content' part has no filename"))?
                .to_string();
            if form.content.is_some() {
                return Err(ApiError::bad_request(
                    "Only one 'content' file may be uploaded",
                ));
            }
            let mut writer = StagingWriter::new(shared)?;
            while let Some(chunk) = field.chunk().await.map_err(malformed)? {
                writer.write(chunk).await?;
            }
            form.content = Some((file_name, writer.finish().await?));
            continue;
        }
        let mut text = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(malformed)? {
            text_bytes += chunk.len();
            if text_bytes > MAX_FIELD_BYTES {
                return Err(ApiError::too_large(MAX_FIELD_BYTES));
            }
            text.extend_from_slice(&chunk);
        }
        let text = String::from_utf8(text)
            .map_err(|_| ApiError::bad_request(format!("Form field '{name}' is not UTF-8")))?;
        form.fields.entry(name).or_default().push(text);
    }
    Ok(form)
}

/// A file name that is one safe path segment.
fn check_file_name(file_name: &str) -> Result<(), ApiError> {
    let bad = file_name.is_empty()
        || file_name.starts_with('.')
        || file_name.contains(['/', '\\', '\0', ';'])
        || file_name.contains("..");
    if bad {
        return Err(ApiError::bad_request(format!(
            "Invalid file name '{file_name}'"
        )));
    }
    Ok(())
}

fn check_digest(label: &str, declared: Option<&str>, actual: &str) -> Result<(), ApiError> {
    match declared {
        Some(declared) if !declared.eq_ignore_ascii_case(actual) => {
            Err(ApiError::bad_request(format!(
                "The {label} supplied ({declared}) does not match the uploaded file ({actual})"
            )))
        }
        _ => Ok(()),
    }
}

fn properties(form: &UploadForm, name: &str, version: &str, normalized: &str) -> Properties {
    let mut properties = Properties::new();
    properties.insert(PROPERTY_NAME.into(), vec![name.to_string()]);
    properties.insert(PROPERTY_VERSION.into(), vec![version.to_string()]);
    properties.insert(
        PROPERTY_NORMALIZED_NAME.into(),
        vec![normalized.to_string()],
    );
    if let Some(summary) = form.field("summary") {
        properties.insert(PROPERTY_SUMMARY.into(), vec![summary.to_string()]);
    }
    if let Some(requires) = form.field("requires_python") {
        properties.insert(PROPERTY_REQUIRES_PYTHON.into(), vec![requires.to_string()]);
    }
    properties
}

/// `POST /artifactory/api/pypi/{repo}` (with or without a trailing slash)
pub(super) async fn upload(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Path(repo): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    let username = caller.require_user()?.to_string();
    check_repo_key(&repo)?;
    if !shared.store.accepts_deploys_to(&repo) {
        return Err(ApiError::not_found(format!(
            "Repository '{repo}' does not exist"
        )));
    }
    let base = base_url(request.headers(), request.uri());
    let multipart = Multipart::from_request(request, &())
        .await
        .map_err(|rejection| malformed(rejection.body_text()))?;
    let form = receive_form(&shared, multipart).await?;
    let action = form.field(":action").unwrap_or_default();
    if action != "file_upload" {
        return Err(ApiError::bad_request(format!(
            "Unsupported :action '{action}' (expected 'file_upload')"
        )));
    }
    if let Some(protocol) = form.field("protocol_version")
        && protocol != "1"
    {
        return Err(ApiError::bad_request(format!(
            "Unsupported protocol_version '{protocol}' (expected '1')"
        )));
    }
    let name = form.required("name")?.to_string();
    let version = form.required("version")?.to_string();
    if version.contains(['/', '\\']) || version.contains("..") {
        return Err(ApiError::bad_request(format!(
            "Invalid version '{version}'"
        )));
    }
    let normalized = normalize_project_name(&name);
    let properties = properties(&form, &name, &version, &normalized);
    let sha256_declared = form.field("sha256_digest").map(str::to_string);
    let md5_declared = form.field("md5_digest").map(str::to_string);
    let (file_name, staged) = form
        .content
        .ok_or_else(|| ApiError::bad_request("Missing the file part 'content'"))?;
    check_file_name(&file_name)?;
    if !normalize_project_name(&file_name).starts_with(&format!("{normalized}-")) {
        return Err(ApiError::bad_request(format!(
            "File name '{file_name}' does not start with the project name '{name}'"
        )));
    }
    check_digest(
        "sha256_digest",
        sha256_declared.as_deref(),
        &staged.digests.sha256,
    )?;
    check_digest("md5_digest", md5_declared.as_deref(), &staged.digests.md5)?;
    let path = format!("{normalized}/{version}/{file_name}");
    let existed = shared.store.record(&repo, &path).is_some();
    let file = PackageFile {
        repo: &repo,
        path: &path,
        properties,
        mime_type: if file_name.ends_with(".whl") {
            "application/zip"
        } else {
            "application/x-gzip"
        },
        username: &username,
    };
    let stored = match commit_package_file(&shared, staged, file) {
        Ok(stored) => stored,
        Err(CommitError::Conflict) => {
            return Err(ApiError::forbidden(format!(
                "Not enough permissions to delete/overwrite artifact '{repo}:{path}' (user: '{username}' needs DELETE permission)."
            )));
        }
        Err(CommitError::Api(error)) => return Err(error),
    };
    persist_store(&shared).await?;
    let url = download_url(&base, &repo, &path);
    let body = json!({
        "repo": repo,
        "path": format!("/{path}"),
        "downloadUri": url,
        "size": stored.size.to_string(),
        "checksums": { "sha1": stored.sha1, "md5": stored.md5, "sha256": stored.sha256 },
        "uri": url,
    });
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, axum::Json(body)).into_response())
}
