//! AWS Signature Version 4 checks: parse the `Authorization` header and recompute the
//! signature from the request's method, path, query, signed headers and payload hash.
//!
//! Chunk signatures of `STREAMING-AWS4-HMAC-SHA256-PAYLOAD` bodies are not checked; the seed
//! signature over the headers is.

use axum::http::{HeaderMap, Method, Uri};
use sha2::{Digest, Sha256};

/// The parts of `Authorization: AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Authorization {
    pub(crate) access_key_id: String,
    /// `YYYYMMDD` from the credential scope.
    pub(crate) date: String,
    pub(crate) region: String,
    pub(crate) service: String,
    pub(crate) signed_headers: Vec<String>,
    pub(crate) signature: String,
}

/// Why a request's authentication was not even checkable.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AuthorizationError {
    /// No `Authorization` header at all.
    Missing,
    /// A header that is not a well-formed SigV4 authorization.
    Malformed(String),
}

/// Parses the request's `Authorization` header.
pub(crate) fn parse(headers: &HeaderMap) -> Result<Authorization, AuthorizationError> {
    let value = headers
        .get("authorization")
        .ok_or(AuthorizationError::Missing)?
        .to_str()
        .map_err(|_| AuthorizationError::Malformed("not ASCII".to_owned()))?;
    let rest = value.strip_prefix("AWS4-HMAC-SHA256 ").ok_or_else(|| {
        AuthorizationError::Malformed("algorithm must be AWS4-HMAC-SHA256".to_owned())
    })?;
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in rest.split(',').map(str::trim) {
        match part.split_once('=') {
            Some(("Credential", value)) => credential = Some(value),
            Some(("SignedHeaders", value)) => signed_headers = Some(value),
            Some(("Signature", value)) => signature = Some(value),
            _ => {}
        }
    }
    let malformed = |what: &str| AuthorizationError::Malformed(format!("missing {what}"));
    let credential = credential.ok_or_else(|| malformed("Credential"))?;
    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, "aws4_request"] = scope.as_slice() else {
        return Err(AuthorizationError::Malformed(format!(
            "Credential '{credential}' is not KEY/DATE/REGION/SERVICE/aws4_request"
        )));
    };
    Ok(Authorization {
        access_key_id: (*access_key_id).to_owned(),
        date: (*date).to_owned(),
        region: (*region).to_owned(),
        service: (*service).to_owned(),
        signed_headers: signed_headers
            .ok_or_else(|| malformed("SignedHeaders"))?
            .split(';')
            .map(str::to_owned)
            .collect(),
        signature: signature.ok_or_else(|| malformed("Signature"))?.to_owned(),
    })
}

/// True when `authorization.signature` is what `secret` produces for this request.
/// `payload_hash` is the hex SHA-256 of the body, or the `x-amz-content-sha256` value S3 uses.
pub(crate) fn signature_matches(
    authorization: &Authorization,
    secret: &str,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    payload_hash: &str,
) -> bool {
    let Some(amz_date) = headers.get("x-amz-date").and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let canonical_request = [
        method.as_str().to_owned(),
        uri.path().to_owned(),
        canonical_query(uri.query().unwrap_or("")),
        canonical_headers(&authorization.signed_headers, headers),
        authorization.signed_headers.join(";"),
        payload_hash.to_owned(),
    ]
    .join("\n");
    let scope = format!(
        "{}/{}/{}/aws4_request",
        authorization.date, authorization.region, authorization.service
    );
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    );
    let mut key = hmac_sha256(
        format!("AWS4{secret}").as_bytes(),
        authorization.date.as_bytes(),
    );
    for part in [
        authorization.region.as_str(),
        authorization.service.as_str(),
        "aws4_request",
    ] {
        key = hmac_sha256(&key, part.as_bytes());
    }
    hex::encode(hmac_sha256(&key, string_to_sign.as_bytes())) == authorization.signature
}

/// Hex SHA-256 of `bytes`.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The query's `name=value` pairs sorted; clients send them already URI-encoded.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(&str, &str)> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
        .collect();
    pairs.sort_unstable();
    pairs
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// `name:value\n` for each signed header, values trimmed with inner spaces collapsed.
fn canonical_headers(signed_headers: &[String], headers: &HeaderMap) -> String {
    signed_headers
        .iter()
        .map(|name| {
            let values: Vec<String> = headers
                .get_all(name.as_str())
                .iter()
                .map(|value| {
                    String::from_utf8_lossy(value.as_bytes())
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .collect();
            format!("{name}:{}\n", values.join(","))
        })
        .collect()
}

/// HMAC-SHA256 (RFC 2104) over SHA-256's 64-byte block.
fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > block.len() {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(block.map(|byte| byte ^ 0x36));
    inner.update(data);
    let mut outer = Sha256::new();
    outer.update(block.map(|byte| byte ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn parses_authorization() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, \
             SignedHeaders=host;x-amz-date, Signature=abc"
                .parse()
                .unwrap(),
        );
        let parsed = parse(&headers).unwrap();
        assert_eq!(parsed.access_key_id, "AKIDEXAMPLE");
        assert_eq!(parsed.service, "iam");
        assert_eq!(parsed.signed_headers, ["host", "x-amz-date"]);
        assert_eq!(parse(&HeaderMap::new()), Err(AuthorizationError::Missing));
    }
}
