//! Artifactory's multipart upload API (7.82.2+, on cloud storage), as jfrog-client-go drives it:
//! `GET /artifactory/api/v1/uploads/config`, `POST …/create?repoKey=&repoPath=&partSizeMB=` →
//! `{"token"}`, then with `Authorization: Bearer <upload token>`: `POST …/urlPart?partNumber=N`
//! → `{"url"}`, `POST …/complete?sha1=` → 202, `POST …/status` → `{"status", "progress",
//! "checksumToken", "error"}`, `POST …/abort` → 204. The artifact itself is created by a checksum
//! deploy carrying `X-Checksum-Deploy-Token` (see `deploy`).
//!
//! Part URLs play the cloud store's pre-signed URLs, on the mock itself:
//! `PUT /artifactory/api/v1/uploads/part/{upload}/{part}?expires=<unix>&signature=<hex>`, the
//! signature an HMAC-SHA256 of the path and the expiry under a key only the mock knows; an
//! expired or tampered URL answers 403 with a cloud store's XML error. Parts are written in
//! place into one staging file and hashed in order as they arrive; `complete` finishes in the
//! background (QUEUED → PROCESSING → FINISHED), checks the whole file's sha1 and stores the
//! blob, but no repository path holds it until the checksum deploy: an upload that is aborted
//! or fails leaves nothing published.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::Extension;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use serde_json::json;
use sha2::Sha256;
use tempfile::TempPath;
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _, AsyncWriteExt as _};

use super::Shared;
use super::auth::Caller;
use super::error::ApiError;
use super::paths::base_url;
use super::staging::FileDigests;
use super::store::lock;
use crate::checksum::ChecksumStream;

/// The path prefix of the API.
pub(super) const PREFIX: &str = "/artifactory/api/v1/uploads/";

/// What `GET …/uploads/config` says, and whether the API is really there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MultipartMode {
    /// `{"supported": false}`, as on a file-system or NFS filestore (the default).
    #[default]
    Unsupported,
    /// `{"supported": true}` and the whole API.
    Supported,
    /// `{"supported": true}`, then 404 on `create` (a proxy or an edge node that does not
    /// forward the API).
    ClaimsSupportButMissing,
}

/// Faults the tests switch on.
#[derive(Debug, Default)]
struct Faults {
    /// Every PUT of this part (1-based) answers 400.
    reject_part: Option<u32>,
    /// Assembly ends in `NON_RETRYABLE_ERROR`.
    non_retryable: bool,
}

/// Where an upload is, as `status` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Parts,
    Queued,
    Processing,
    Finished,
    NonRetryableError,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Parts => "PARTS",
            Phase::Queued => "QUEUED",
            Phase::Processing => "PROCESSING",
            Phase::Finished => "FINISHED",
            Phase::NonRetryableError => "NON_RETRYABLE_ERROR",
        }
    }
}

/// One multipart upload. Parts are written in place into one staging file (part N at
/// `(N - 1) × part size`), as a cloud store lays them out, and hashed in order as soon as the
/// parts before them are in, so `complete` has little left to do.
struct Upload {
    id: String,
    repo: String,
    path: String,
    part_size: u64,
    /// The assembled file; `None` once handed to the blob store.
    file: Option<TempPath>,
    /// Sizes of the parts received, by part number.
    parts: BTreeMap<u32, u64>,
    /// The running hash over parts `1..next`; one hasher at a time.
    hash: Arc<tokio::sync::Mutex<HashFrontier>>,
    phase: Phase,
    progress: u32,
    error: Option<String>,
    checksum_token: Option<String>,
}

impl std::fmt::Debug for Upload {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Upload")
            .field("id", &self.id)
            .field("path", &self.path)
            .field("parts", &self.parts.len())
            .field("phase", &self.phase)
            .finish_non_exhaustive()
    }
}

/// How far the hash has read into an upload's file.
struct HashFrontier {
    hasher: Option<ChecksumStream>,
    /// The next part to hash.
    next: u32,
    /// Where it starts.
    offset: u64,
}

/// An assembled file waiting for its checksum deploy.
#[derive(Debug, Clone)]
struct Assembled {
    repo: String,
    path: String,
    digests: FileDigests,
}

/// The multipart state of one mock registry.
#[derive(Debug)]
pub(super) struct MultipartState {
    mode: Mutex<MultipartMode>,
    faults: Mutex<Faults>,
    /// The next this many part URLs handed out are already expired.
    expire_next_urls: AtomicU32,
    /// How long a part URL is valid.
    url_lifetime: Duration,
    /// Signs part URLs; never leaves the mock.
    key: [u8; 32],
    /// By upload token.
    uploads: Mutex<HashMap<String, Upload>>,
    /// By checksum token.
    assembled: Mutex<HashMap<String, Assembled>>,
    /// Upload ids, in the order they were aborted.
    aborted: Mutex<Vec<String>>,
}

impl MultipartState {
    pub(super) fn new(mode: MultipartMode, url_lifetime: Duration) -> Self {
        Self {
            mode: Mutex::new(mode),
            faults: Mutex::new(Faults::default()),
            expire_next_urls: AtomicU32::new(0),
            url_lifetime,
            key: rand::random(),
            uploads: Mutex::new(HashMap::new()),
            assembled: Mutex::new(HashMap::new()),
            aborted: Mutex::new(Vec::new()),
        }
    }

    pub(super) fn set_mode(&self, mode: MultipartMode) {
        *lock(&self.mode) = mode;
    }

    pub(super) fn reject_part(&self, part: Option<u32>) {
        lock(&self.faults).reject_part = part;
    }

    pub(super) fn fail_assembly(&self, fail: bool) {
        lock(&self.faults).non_retryable = fail;
    }

    pub(super) fn expire_next_part_urls(&self, count: u32) {
        self.expire_next_urls.store(count, Ordering::Relaxed);
    }

    /// Uploads created and neither finished into an artifact nor aborted.
    pub(super) fn open_uploads(&self) -> usize {
        lock(&self.uploads).len()
    }

    pub(super) fn aborted(&self) -> Vec<String> {
        lock(&self.aborted).clone()
    }

    /// Whether `path` is one whose bearer credential is an upload token, checked here and not
    /// by the front door.
    pub(super) fn uses_upload_token(path: &str) -> bool {
        path.strip_prefix(PREFIX)
            .is_some_and(|rest| matches!(rest, "urlPart" | "complete" | "status" | "abort"))
    }

    fn sign(&self, path: &str, expires: i64) -> String {
        // The key is 32 bytes; HMAC takes a key of any length, so this cannot fail.
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key");
        mac.update(path.as_bytes());
        mac.update(b"\n");
        mac.update(expires.to_string().as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    fn verify(&self, path: &str, expires: i64, signature: &str) -> bool {
        let Ok(given) = hex::decode(signature) else {
            return false;
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key");
        mac.update(path.as_bytes());
        mac.update(b"\n");
        mac.update(expires.to_string().as_bytes());
        mac.verify_slice(&given).is_ok()
    }

    /// The assembled file a checksum token stands for, if it was made for `repo`/`path`; the
    /// token is spent by a successful deploy ([`MultipartState::spend`]).
    pub(super) fn redeem(
        &self,
        token: &str,
        repo: &str,
        path: &str,
    ) -> Result<FileDigests, ApiError> {
        let assembled = lock(&self.assembled);
        let found = assembled.get(token).ok_or_else(|| {
            ApiError::bad_request("Checksum deploy token is unknown or was already used")
        })?;
        if found.repo != repo || found.path != path {
            return Err(ApiError::bad_request(format!(
                "Checksum deploy token was issued for '{}:{}', not '{repo}:{path}'",
                found.repo, found.path
            )));
        }
        Ok(found.digests.clone())
    }

    /// Forgets a checksum token and its upload once the artifact exists.
    pub(super) fn spend(&self, token: &str) {
        lock(&self.assembled).remove(token);
        lock(&self.uploads).retain(|_, upload| upload.checksum_token.as_deref() != Some(token));
    }
}

/// A cloud store's error, as S3 answers a pre-signed URL.
fn storage_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/xml")],
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>"
        ),
    )
        .into_response()
}

/// The upload token of a request (`Authorization: Bearer …`).
fn upload_token(headers: &HeaderMap) -> Result<String, ApiError> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().to_owned())
        .filter(|token| !token.is_empty())
        .ok_or_else(|| ApiError::unauthorized("A multipart upload token is required"))
}

fn unknown_upload() -> ApiError {
    ApiError::unauthorized("The multipart upload token is unknown, expired or aborted")
}

/// `GET /artifactory/api/v1/uploads/config`
pub(super) async fn config(State(shared): State<Arc<Shared>>) -> Response {
    let supported = *lock(&shared.multipart.mode) != MultipartMode::Unsupported;
    axum::Json(json!({ "supported": supported })).into_response()
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct CreateQuery {
    repo_key: String,
    repo_path: String,
    #[serde(rename = "partSizeMB")]
    part_size_mb: u64,
}

/// `POST /artifactory/api/v1/uploads/create?repoKey=&repoPath=&partSizeMB=`
pub(super) async fn create(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Query(query): Query<CreateQuery>,
) -> Result<Response, ApiError> {
    match *lock(&shared.multipart.mode) {
        MultipartMode::Supported => {}
        MultipartMode::Unsupported => {
            return Err(ApiError::bad_request(
                "Multipart upload is not supported by the storage of this Artifactory",
            ));
        }
        MultipartMode::ClaimsSupportButMissing => return Err(ApiError::not_found("Not Found")),
    }
    caller.require_user()?;
    if !shared.store.accepts_deploys_to(&query.repo_key) {
        return Err(ApiError::not_found(format!(
            "Repository '{}' does not exist",
            query.repo_key
        )));
    }
    let path = query.repo_path.trim_start_matches('/').to_owned();
    if path.is_empty() || query.part_size_mb == 0 {
        return Err(ApiError::bad_request(
            "repoPath and partSizeMB are required",
        ));
    }
    let token = format!("mpu.{}", hex::encode(rand::random::<[u8; 24]>()));
    let (_, file) = shared
        .store
        .staging_file()
        .map_err(|error| ApiError::internal("Cannot create a staging file", &error))?;
    let upload = Upload {
        id: hex::encode(rand::random::<[u8; 8]>()),
        repo: query.repo_key,
        path,
        part_size: query.part_size_mb * 1024 * 1024,
        file: Some(file),
        parts: BTreeMap::new(),
        hash: Arc::new(tokio::sync::Mutex::new(HashFrontier {
            hasher: Some(ChecksumStream::new()),
            next: 1,
            offset: 0,
        })),
        phase: Phase::Parts,
        progress: 0,
        error: None,
        checksum_token: None,
    };
    lock(&shared.multipart.uploads).insert(token.clone(), upload);
    Ok(axum::Json(json!({ "token": token })).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct UrlPartQuery {
    part_number: u32,
}

/// `POST /artifactory/api/v1/uploads/urlPart?partNumber=N` (1-based)
pub(super) async fn url_part(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    uri: Uri,
    Query(query): Query<UrlPartQuery>,
) -> Result<Response, ApiError> {
    let token = upload_token(&headers)?;
    let id = {
        let uploads = lock(&shared.multipart.uploads);
        let upload = uploads.get(&token).ok_or_else(unknown_upload)?;
        if upload.phase != Phase::Parts {
            return Err(ApiError::bad_request(
                "The upload is no longer accepting parts",
            ));
        }
        upload.id.clone()
    };
    if query.part_number == 0 || query.part_number > 10_000 {
        return Err(ApiError::bad_request(
            "partNumber must be between 1 and 10000",
        ));
    }
    let state = &shared.multipart;
    let now = shared.clock.now().unix_timestamp();
    let expired = state
        .expire_next_urls
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
            left.checked_sub(1)
        })
        .is_ok();
    let expires = if expired {
        now - 1
    } else {
        now + i64::try_from(state.url_lifetime.as_secs()).unwrap_or(i64::MAX / 2)
    };
    let path = format!("{PREFIX}part/{id}/{}", query.part_number);
    let signature = state.sign(&path, expires);
    let url = format!(
        "{}{path}?expires={expires}&signature={signature}",
        base_url(&headers, &uri)
    );
    Ok(axum::Json(json!({ "url": url })).into_response())
}

#[derive(Debug, Deserialize)]
pub(super) struct SignedQuery {
    expires: Option<i64>,
    signature: Option<String>,
}

/// `PUT /artifactory/api/v1/uploads/part/{upload}/{part}?expires=&signature=`: the "cloud store".
pub(super) async fn put_part(
    State(shared): State<Arc<Shared>>,
    Path((id, part)): Path<(String, u32)>,
    uri: Uri,
    Query(signed): Query<SignedQuery>,
    body: Body,
) -> Response {
    let state = &shared.multipart;
    let (Some(expires), Some(signature)) = (signed.expires, signed.signature) else {
        return storage_error(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            "Request is not signed",
        );
    };
    if !state.verify(uri.path(), expires, &signature) {
        return storage_error(
            StatusCode::FORBIDDEN,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided",
        );
    }
    if shared.clock.now().unix_timestamp() > expires {
        return storage_error(StatusCode::FORBIDDEN, "AccessDenied", "Request has expired");
    }
    if lock(&state.faults).reject_part == Some(part) {
        // Read the part first, as a store that checks what it received does: an answer sent
        // before the body is read can reach the client as a reset connection instead.
        let _ = axum::body::to_bytes(body, usize::MAX).await;
        return storage_error(
            StatusCode::BAD_REQUEST,
            "InvalidPart",
            &format!("Part {part} was rejected by the storage"),
        );
    }
    let no_such_upload = || {
        storage_error(
            StatusCode::NOT_FOUND,
            "NoSuchUpload",
            "The upload does not exist",
        )
    };
    let (part_size, file) = {
        let uploads = lock(&state.uploads);
        match uploads.values().find(|upload| upload.id == id) {
            Some(Upload {
                phase: Phase::Parts,
                part_size,
                file: Some(file),
                ..
            }) => (*part_size, file.to_path_buf()),
            _ => return no_such_upload(),
        }
    };
    let offset = u64::from(part - 1) * part_size;
    let size = match receive_part(&file, offset, body, part_size).await {
        Ok(size) => size,
        Err(response) => return response,
    };
    let (token, hash) = {
        let mut uploads = lock(&state.uploads);
        match uploads.iter_mut().find(|(_, upload)| upload.id == id) {
            Some((token, upload)) if upload.phase == Phase::Parts => {
                upload.parts.insert(part, size);
                (token.clone(), upload.hash.clone())
            }
            _ => return no_such_upload(),
        }
    };
    tokio::spawn(async move {
        if let Err(error) = advance_hash(shared, token, hash, file).await {
            // The upload's sha1 then never completes and `complete` is refused; say why here.
            tracing::warn!(%error, "mock registry: cannot hash a multipart upload");
        }
    });
    StatusCode::OK.into_response()
}

/// Why the mock could not hash the parts it stored.
#[derive(Debug, thiserror::Error)]
enum PartHashError {
    #[error("cannot read the stored parts")]
    Unreadable(#[source] std::io::Error),
    #[error("part {0} is shorter than announced")]
    Short(u32),
}

/// Hashes every part that follows the frontier without a gap.
async fn advance_hash(
    shared: Arc<Shared>,
    token: String,
    hash: Arc<tokio::sync::Mutex<HashFrontier>>,
    file: std::path::PathBuf,
) -> Result<(), PartHashError> {
    let mut frontier = hash.lock().await;
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let next_size = {
            let uploads = lock(&shared.multipart.uploads);
            let Some(upload) = uploads.get(&token) else {
                return Ok(());
            };
            match upload.parts.get(&frontier.next) {
                Some(size) => *size,
                None => return Ok(()),
            }
        };
        let unreadable = PartHashError::Unreadable;
        let mut reader = tokio::fs::File::open(&file).await.map_err(unreadable)?;
        reader
            .seek(std::io::SeekFrom::Start(frontier.offset))
            .await
            .map_err(unreadable)?;
        let mut left = next_size;
        while left > 0 {
            let want = usize::try_from(left.min(buffer.len() as u64)).unwrap_or(buffer.len());
            let read = reader.read(&mut buffer[..want]).await.map_err(unreadable)?;
            if read == 0 {
                return Err(PartHashError::Short(frontier.next));
            }
            if let Some(hasher) = frontier.hasher.as_mut() {
                hasher
                    .update(bytes::Bytes::copy_from_slice(&buffer[..read]))
                    .await;
            }
            left -= read as u64;
        }
        frontier.next += 1;
        frontier.offset += next_size;
    }
}

/// Writes a part's bytes into the upload's file at `offset`, as they come.
async fn receive_part(
    file: &std::path::Path,
    offset: u64,
    body: Body,
    part_size: u64,
) -> Result<u64, Response> {
    let internal = |error: std::io::Error| {
        tracing::warn!(%error, "mock registry: cannot write a multipart part");
        storage_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "Cannot store the part",
        )
    };
    let mut handle = tokio::fs::OpenOptions::new()
        .write(true)
        .open(file)
        .await
        .map_err(internal)?;
    handle
        .seek(std::io::SeekFrom::Start(offset))
        .await
        .map_err(internal)?;
    let mut writer = tokio::io::BufWriter::with_capacity(1 << 20, handle);
    let mut stream = body.into_data_stream();
    let mut size = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| {
            storage_error(
                StatusCode::BAD_REQUEST,
                "IncompleteBody",
                "The body was cut short",
            )
        })?;
        size += chunk.len() as u64;
        if size > part_size {
            return Err(storage_error(
                StatusCode::BAD_REQUEST,
                "EntityTooLarge",
                "The part is larger than the upload's part size",
            ));
        }
        writer.write_all(&chunk).await.map_err(internal)?;
    }
    writer.flush().await.map_err(internal)?;
    Ok(size)
}

#[derive(Debug, Deserialize)]
pub(super) struct CompleteQuery {
    sha1: String,
}

/// `POST /artifactory/api/v1/uploads/complete?sha1=`: 202, then assembly in the background.
pub(super) async fn complete(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(query): Query<CompleteQuery>,
) -> Result<Response, ApiError> {
    let token = upload_token(&headers)?;
    let (hash, file) = {
        let mut uploads = lock(&shared.multipart.uploads);
        let upload = uploads.get_mut(&token).ok_or_else(unknown_upload)?;
        if upload.phase != Phase::Parts {
            return Err(ApiError::bad_request("The upload was already completed"));
        }
        let numbers: Vec<u32> = upload.parts.keys().copied().collect();
        let contiguous = numbers.iter().copied().eq(1..=numbers.len() as u32);
        let last = numbers.last().copied();
        let sizes_fit = upload
            .parts
            .iter()
            .all(|(number, size)| Some(*number) == last || *size == upload.part_size);
        if numbers.is_empty() || !contiguous || !sizes_fit {
            return Err(ApiError::bad_request(
                "The uploaded parts are missing or of the wrong size",
            ));
        }
        let Some(file) = upload.file.as_ref().map(|file| file.to_path_buf()) else {
            return Err(ApiError::bad_request("The upload was already completed"));
        };
        upload.phase = Phase::Queued;
        (upload.hash.clone(), file)
    };
    tokio::spawn(assemble(
        shared.clone(),
        token,
        hash,
        file,
        query.sha1.to_ascii_lowercase(),
    ));
    Ok(StatusCode::ACCEPTED.into_response())
}

/// Hashes what is left of the parts, checks the sha1, stores the blob and hands out a checksum
/// token.
async fn assemble(
    shared: Arc<Shared>,
    token: String,
    hash: Arc<tokio::sync::Mutex<HashFrontier>>,
    file: std::path::PathBuf,
    sha1: String,
) {
    let state = &shared.multipart;
    // An aborted upload is gone: whatever the assembly finds later is dropped.
    let set = |phase: Phase, progress: u32, error: Option<String>| {
        if let Some(upload) = lock(&state.uploads).get_mut(&token) {
            upload.phase = phase;
            upload.progress = progress;
            upload.error = error;
        }
    };
    set(Phase::Processing, 50, None);
    if let Err(error) = advance_hash(shared.clone(), token.clone(), hash.clone(), file).await {
        set(
            Phase::NonRetryableError,
            0,
            Some(crate::error::inline_chain(&error)),
        );
        return;
    }
    let Some(hasher) = hash.lock().await.hasher.take() else {
        set(
            Phase::NonRetryableError,
            0,
            Some("The parts were already assembled".to_owned()),
        );
        return;
    };
    let checksums = hasher.finish().await;
    if lock(&state.faults).non_retryable {
        set(
            Phase::NonRetryableError,
            0,
            Some("Failed to merge the parts in the storage (fault injected)".to_owned()),
        );
        return;
    }
    if checksums.sha1 != sha1 {
        set(
            Phase::NonRetryableError,
            0,
            Some(format!(
                "Checksum mismatch: the parts have sha1 {}, the client announced {sha1}",
                checksums.sha1
            )),
        );
        return;
    }
    let (file, size) = {
        let mut uploads = lock(&state.uploads);
        let Some(upload) = uploads.get_mut(&token) else {
            return;
        };
        (upload.file.take(), upload.parts.values().sum::<u64>())
    };
    let Some(file) = file else {
        return;
    };
    if let Err(error) = shared.store.commit_blob(file, &checksums.sha256) {
        set(
            Phase::NonRetryableError,
            0,
            Some(format!("Cannot store the blob: {error}")),
        );
        return;
    }
    let checksum_token = format!("mpc.{}", hex::encode(rand::random::<[u8; 24]>()));
    let mut uploads = lock(&state.uploads);
    let Some(upload) = uploads.get_mut(&token) else {
        return;
    };
    upload.phase = Phase::Finished;
    upload.progress = 100;
    upload.checksum_token = Some(checksum_token.clone());
    lock(&state.assembled).insert(
        checksum_token,
        Assembled {
            repo: upload.repo.clone(),
            path: upload.path.clone(),
            digests: FileDigests {
                size,
                sha1: checksums.sha1,
                sha256: checksums.sha256,
                md5: checksums.md5,
            },
        },
    );
}

/// `POST /artifactory/api/v1/uploads/status`
pub(super) async fn status(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let token = upload_token(&headers)?;
    let uploads = lock(&shared.multipart.uploads);
    let upload = uploads.get(&token).ok_or_else(unknown_upload)?;
    let mut body = json!({ "status": upload.phase.name(), "progress": upload.progress });
    if let Some(checksum_token) = &upload.checksum_token {
        body["checksumToken"] = json!(checksum_token);
    }
    if let Some(error) = &upload.error {
        body["error"] = json!(error);
    }
    Ok(axum::Json(body).into_response())
}

/// `POST /artifactory/api/v1/uploads/abort`: 204; the parts are deleted.
pub(super) async fn abort(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let token = upload_token(&headers)?;
    let upload = lock(&shared.multipart.uploads)
        .remove(&token)
        .ok_or_else(unknown_upload)?;
    if let Some(checksum_token) = &upload.checksum_token {
        lock(&shared.multipart.assembled).remove(checksum_token);
    }
    lock(&shared.multipart.aborted).push(upload.id);
    Ok(StatusCode::NO_CONTENT.into_response())
}
