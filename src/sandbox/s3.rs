//! The S3 stand-in (path-style `GET`/`HEAD`/`PUT /{bucket}/{key}`): SigV4 authentication
//! with the credentials the sandbox issued, streamed bodies, S3's XML errors, and the call log.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use md5::Md5;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio_util::io::ReaderStream;

use super::Sandbox;
use super::aws_auth::session_token;
use super::aws_chunked::AwsChunkedDecoder;
use super::ids;
use super::model::{RecordedCall, StoredObject};
use super::objects::quoted_etag;
use super::s3_range::{ByteRange, RateCapped, S3Read};
use super::sigv4::{self, AuthorizationError};
use super::state::CredentialScope;

/// An S3 error: status plus `<Error><Code>…</Code><Message>…</Message>…</Error>`.
struct S3Error {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// Elements S3 adds for some codes (`Condition`, `RangeRequested`, `ActualObjectSize`).
    extra: Vec<(&'static str, String)>,
}

impl S3Error {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            extra: Vec::new(),
        }
    }

    fn with(mut self, element: &'static str, value: impl Into<String>) -> Self {
        self.extra.push((element, value.into()));
        self
    }

    fn into_response(self, key: &str) -> Response {
        let request_id = ids::request_id();
        let extra: String = self
            .extra
            .iter()
            .map(|(element, value)| format!("<{element}>{}</{element}>", xml_escape(value)))
            .collect();
        let key = if self.extra.is_empty() {
            format!("<Key>{}</Key>", xml_escape(key))
        } else {
            String::new()
        };
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code><Message>{}\
             </Message>{key}{extra}<RequestId>{request_id}</RequestId></Error>",
            self.code,
            xml_escape(&self.message),
        );
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/xml"),
        );
        insert(headers, "x-amz-request-id", &request_id);
        response
    }
}

/// Whether this request is one of those `fail_s3_next` asked to fail.
fn take_s3_failure(sandbox: &Sandbox) -> bool {
    let mut state = sandbox.inner.state();
    if state.s3_failures_remaining > 0 {
        state.s3_failures_remaining -= 1;
        true
    } else {
        false
    }
}

/// The axum handler for every S3 request.
pub(crate) async fn handle(State(sandbox): State<Sandbox>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let (bucket, raw_key) = parts
        .uri
        .path()
        .trim_start_matches('/')
        .split_once('/')
        .unwrap_or((parts.uri.path().trim_start_matches('/'), ""));
    let bucket = bucket.to_owned();
    let key = percent_encoding::percent_decode_str(raw_key)
        .decode_utf8()
        .map(|key| key.into_owned());
    let access_key_id = sigv4::parse(&parts.headers)
        .ok()
        .map(|authorization| authorization.access_key_id);

    let result = match key {
        Err(_) => Err(S3Error::new(
            StatusCode::BAD_REQUEST,
            "InvalidURI",
            "Key is not UTF-8",
        )),
        Ok(ref key) if bucket.is_empty() || key.is_empty() => Err(S3Error::new(
            StatusCode::NOT_IMPLEMENTED,
            "NotImplemented",
            "The sandbox implements only object GET, HEAD and PUT",
        )),
        Ok(_) if take_s3_failure(&sandbox) => Err(S3Error::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "SlowDown",
            "Please reduce your request rate.",
        )),
        Ok(ref key) => match authenticate(&sandbox, &parts) {
            Err(error) => Err(error),
            Ok(()) => match parts.method {
                Method::GET | Method::HEAD => get(&sandbox, &parts, &bucket, key),
                Method::PUT => put(&sandbox, &parts, body, &bucket, key).await,
                _ => Err(S3Error::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "MethodNotAllowed",
                    "The specified method is not allowed against this resource.",
                )),
            },
        },
    };
    let key = key.unwrap_or_else(|_| raw_key.to_owned());
    let response = match result {
        Ok(response) => response,
        Err(error) => error.into_response(&key),
    };
    if parts.method == Method::GET && response.status().is_success() {
        sandbox.count_get(&bucket, &key);
    }
    let mut state = sandbox.inner.state();
    if matches!(parts.method, Method::GET | Method::HEAD) {
        state.s3_reads.reads.push(S3Read {
            method: parts.method.to_string(),
            key: key.clone(),
            range: header_str(&parts.headers, "range").map(str::to_owned),
            if_match: header_str(&parts.headers, "if-match").map(str::to_owned),
            status: response.status().as_u16(),
        });
    }
    state.calls.push(RecordedCall::S3 {
        method: parts.method.to_string(),
        bucket,
        key,
        access_key_id,
        status: response.status().as_u16(),
    });
    response
}

/// Accepts only live job credentials with their session token and a valid signature.
fn authenticate(sandbox: &Sandbox, parts: &Parts) -> Result<(), S3Error> {
    let forbidden = |code, message: &str| S3Error::new(StatusCode::FORBIDDEN, code, message);
    let authorization = sigv4::parse(&parts.headers).map_err(|error| match error {
        AuthorizationError::Missing => forbidden("AccessDenied", "Access Denied"),
        AuthorizationError::Malformed(why) => S3Error::new(
            StatusCode::BAD_REQUEST,
            "AuthorizationHeaderMalformed",
            format!("The authorization header is malformed; {why}"),
        ),
    })?;
    let region = &sandbox.inner.config.region;
    if !sandbox.serves_region(&authorization.region) || authorization.service != "s3" {
        return Err(S3Error::new(
            StatusCode::BAD_REQUEST,
            "AuthorizationHeaderMalformed",
            format!(
                "The authorization header is malformed; the region/service '{}/{}' is wrong; \
                 expecting '{region}/s3'",
                authorization.region, authorization.service
            ),
        ));
    }
    let credential = sandbox
        .inner
        .state()
        .credentials
        .get(&authorization.access_key_id)
        .cloned()
        .ok_or_else(|| {
            forbidden(
                "InvalidAccessKeyId",
                "The AWS Access Key Id you provided does not exist in our records.",
            )
        })?;
    if session_token(&parts.headers) != credential.session_token.as_deref() {
        return Err(forbidden(
            "InvalidToken",
            "The provided token is malformed or otherwise invalid.",
        ));
    }
    let payload_hash = header_str(&parts.headers, "x-amz-content-sha256").ok_or_else(|| {
        S3Error::new(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            "Missing required header for this request: x-amz-content-sha256",
        )
    })?;
    if !sigv4::signature_matches(
        &authorization,
        &credential.secret,
        &parts.method,
        &parts.uri,
        &parts.headers,
        payload_hash,
    ) {
        return Err(forbidden(
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. \
             Check your key and signing method.",
        ));
    }
    if credential.revoked || !matches!(credential.scope, CredentialScope::Job(_)) {
        return Err(forbidden("AccessDenied", "Access Denied"));
    }
    Ok(())
}

/// GET and HEAD: the object's headers, and for GET its bytes (or the range asked for)
/// streamed from disk, held to the per-connection rate cap when one is set.
fn get(sandbox: &Sandbox, parts: &Parts, bucket: &str, key: &str) -> Result<Response, S3Error> {
    let (object, mut file) = sandbox
        .open_object(bucket, key)
        .ok_or_else(|| {
            S3Error::new(
                StatusCode::NOT_FOUND,
                "NoSuchKey",
                "The specified key does not exist.",
            )
        })?
        .map_err(internal_error)?;
    if let Some(if_match) = header_str(&parts.headers, "if-match")
        && !etag_matches(if_match, &object.etag)
    {
        return Err(S3Error::new(
            StatusCode::PRECONDITION_FAILED,
            "PreconditionFailed",
            "At least one of the pre-conditions you specified did not hold",
        )
        .with("Condition", "If-Match"));
    }
    let requested = header_str(&parts.headers, "range");
    let range = match requested.and_then(ByteRange::parse) {
        None => None,
        Some(range) => Some(range.resolve(object.size).ok_or_else(|| {
            S3Error::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "InvalidRange",
                "The requested range is not satisfiable",
            )
            .with("RangeRequested", requested.unwrap_or_default())
            .with("ActualObjectSize", object.size.to_string())
        })?),
    };
    if let Some((first, _)) = range
        && sandbox.range_fails(first)
    {
        return Err(S3Error::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "We encountered an internal error. Please try again.",
        ));
    }
    let (status, first, length) = match range {
        Some((first, last)) => (StatusCode::PARTIAL_CONTENT, first, last - first + 1),
        None => (StatusCode::OK, 0, object.size),
    };
    // A broken proxy: the range asked for is claimed, half of it is sent.
    let sent = if range.is_some() && parts.method == Method::GET && sandbox.take_short_range() {
        length / 2
    } else {
        length
    };
    if first > 0 {
        std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(first)).map_err(internal_error)?;
    }
    let reader = tokio::io::AsyncReadExt::take(tokio::fs::File::from_std(file), sent);
    let stream = ReaderStream::with_capacity(reader, 64 * 1024);
    let body = match sandbox.inner.config.s3_connection_rate {
        Some(rate) => Body::from_stream(RateCapped::new(stream, rate)),
        None => Body::from_stream(stream),
    };
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    insert(headers, "content-length", &sent.to_string());
    if let Some((first, last)) = range {
        insert(
            headers,
            "content-range",
            &format!("bytes {first}-{last}/{}", object.size),
        );
    }
    insert(
        headers,
        "content-type",
        object
            .content_type
            .as_deref()
            .unwrap_or("binary/octet-stream"),
    );
    insert(headers, "accept-ranges", "bytes");
    insert(headers, "last-modified", &last_modified(&object));
    object_headers(headers, &object);
    Ok(response)
}

/// `If-Match`: `*`, or a list of entity tags one of which is the object's (quotes optional,
/// as S3 accepts them).
fn etag_matches(if_match: &str, etag: &str) -> bool {
    let bare = etag.trim_matches('"');
    if_match.split(',').map(str::trim).any(|candidate| {
        candidate == "*" || candidate.trim_start_matches("W/").trim_matches('"') == bare
    })
}

/// PUT: streams the (possibly aws-chunked) body to a new file, then makes it visible.
async fn put(
    sandbox: &Sandbox,
    parts: &Parts,
    body: Body,
    bucket: &str,
    key: &str,
) -> Result<Response, S3Error> {
    let path = sandbox.new_object_path();
    let written = write_body(&path, &parts.headers, body).await;
    let (size, etag) = match written {
        Ok(written) => written,
        Err(error) => {
            // The partial file is ours alone; failing to remove it only leaks temp space.
            let _ = tokio::fs::remove_file(&path).await;
            return Err(error);
        }
    };
    let object = StoredObject {
        size,
        content_path: path,
        sse: header_str(&parts.headers, "x-amz-server-side-encryption").map(str::to_owned),
        kms_key_id: header_str(
            &parts.headers,
            "x-amz-server-side-encryption-aws-kms-key-id",
        )
        .map(str::to_owned),
        etag,
        content_type: header_str(&parts.headers, "content-type").map(str::to_owned),
    };
    let mut response = StatusCode::OK.into_response();
    object_headers(response.headers_mut(), &object);
    sandbox.commit_object(bucket, key, object);
    Ok(response)
}

/// Writes the decoded body to `path`; returns (size, ETag). Checks the decoded length and,
/// for a signed payload, its SHA-256.
async fn write_body(
    path: &std::path::Path,
    headers: &HeaderMap,
    body: Body,
) -> Result<(u64, String), S3Error> {
    let content_sha256 = header_str(headers, "x-amz-content-sha256").unwrap_or("");
    let chunked = header_str(headers, "content-encoding")
        .is_some_and(|v| v.contains("aws-chunked"))
        || content_sha256.starts_with("STREAMING-");
    let expected_size = if chunked {
        header_str(headers, "x-amz-decoded-content-length")
    } else {
        header_str(headers, "content-length")
    }
    .and_then(|value| value.parse::<u64>().ok());
    let signed_hash = (content_sha256.len() == 64).then_some(content_sha256);

    let file = tokio::fs::File::create(path)
        .await
        .map_err(internal_error)?;
    let mut writer = tokio::io::BufWriter::with_capacity(256 * 1024, file);
    let mut decoder = chunked.then(AwsChunkedDecoder::new);
    let (mut md5, mut sha256, mut size) = (Md5::new(), Sha256::new(), 0u64);
    let mut stream = body.into_data_stream();
    while let Some(piece) = stream.next().await {
        let piece = piece.map_err(|error| {
            S3Error::new(StatusCode::BAD_REQUEST, "IncompleteBody", error.to_string())
        })?;
        let decoded = match decoder.as_mut() {
            Some(decoder) => decoder.feed(&piece).map_err(bad_encoding)?,
            None => vec![piece],
        };
        for bytes in decoded {
            md5.update(&bytes);
            if signed_hash.is_some() {
                sha256.update(&bytes);
            }
            size += bytes.len() as u64;
            writer.write_all(&bytes).await.map_err(internal_error)?;
        }
    }
    if let Some(decoder) = decoder {
        decoder.finish().map_err(bad_encoding)?;
    }
    writer.flush().await.map_err(internal_error)?;
    if expected_size.is_some_and(|expected| expected != size) {
        return Err(S3Error::new(
            StatusCode::BAD_REQUEST,
            "IncompleteBody",
            "You did not provide the number of bytes specified by the Content-Length HTTP header",
        ));
    }
    if signed_hash.is_some_and(|hash| hash != hex::encode(sha256.finalize())) {
        return Err(S3Error::new(
            StatusCode::BAD_REQUEST,
            "XAmzContentSHA256Mismatch",
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
        ));
    }
    Ok((size, quoted_etag(md5.finalize().as_slice())))
}

/// Headers common to GET, HEAD and PUT answers.
fn object_headers(headers: &mut HeaderMap, object: &StoredObject) {
    insert(headers, "etag", &object.etag);
    insert(headers, "x-amz-request-id", &ids::request_id());
    insert(headers, "x-amz-id-2", &ids::request_id());
    if let Some(sse) = &object.sse {
        insert(headers, "x-amz-server-side-encryption", sse);
    }
    if let Some(kms_key_id) = &object.kms_key_id {
        insert(
            headers,
            "x-amz-server-side-encryption-aws-kms-key-id",
            kms_key_id,
        );
    }
}

fn last_modified(object: &StoredObject) -> String {
    let modified = std::fs::metadata(&object.content_path)
        .and_then(|metadata| metadata.modified())
        .map(time::OffsetDateTime::from)
        .unwrap_or_else(|_| time::OffsetDateTime::now_utc());
    ids::http_date(modified)
}

fn insert(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

fn bad_encoding(why: super::aws_chunked::AwsChunkedError) -> S3Error {
    S3Error::new(
        StatusCode::BAD_REQUEST,
        "InvalidRequest",
        format!("Invalid aws-chunked body: {why}"),
    )
}

fn internal_error(error: std::io::Error) -> S3Error {
    S3Error::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "InternalError",
        error.to_string(),
    )
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
