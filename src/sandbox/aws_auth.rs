//! The signature checks STS, Secrets Manager and SSM share: the request must be SigV4-signed
//! with a key the sandbox issued, sign its `Host`, carry the key's session token when it has
//! one, and be no more than 15 minutes away from the sandbox's clock (AWS's window), so a
//! signed request forwarded by a third party verifies only while it is fresh.
//!
//! Each service renders a [`AuthFailure`] in its own protocol's error shape.

use axum::http::HeaderMap;
use axum::http::request::Parts;
use time::OffsetDateTime;

use super::Sandbox;
use super::sigv4::{self, Authorization};
use super::state::Credential;

/// How far `X-Amz-Date` may be from the sandbox's clock, either way (AWS: 15 minutes).
pub(crate) const SIGNATURE_WINDOW: time::Duration = time::Duration::minutes(15);

/// A request whose signature checked out.
pub(crate) struct Verified {
    /// What the key is.
    pub(crate) credential: Credential,
}

/// Why a request was refused before it reached the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AuthFailure {
    /// No `Authorization` header.
    Missing,
    /// An `Authorization` header that is not SigV4.
    Malformed(String),
    /// A key the sandbox never issued.
    UnknownKey,
    /// A temporary key without its session token, or with another one.
    BadSessionToken,
    /// A revoked (expired) temporary key.
    ExpiredToken,
    /// `X-Amz-Date` outside the window: AWS's "Signature expired" / "not yet current" text.
    Stale(String),
    /// The signature does not match (also: `Host` not signed, `X-Amz-Date` missing).
    BadSignature,
}

impl AuthFailure {
    /// The AWS error code, as STS (awsQuery) and the JSON services name it.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            Self::Missing => "MissingAuthenticationToken",
            Self::Malformed(_) => "IncompleteSignature",
            Self::UnknownKey | Self::BadSessionToken => "InvalidClientTokenId",
            Self::ExpiredToken => "ExpiredToken",
            Self::Stale(_) | Self::BadSignature => "SignatureDoesNotMatch",
        }
    }

    /// AWS's message for the code.
    pub(crate) fn message(&self) -> String {
        match self {
            Self::Missing => "Request is missing Authentication Token".to_owned(),
            Self::Malformed(why) => {
                format!("Authorization header is not a valid SigV4 header: {why}")
            }
            Self::UnknownKey | Self::BadSessionToken => {
                "The security token included in the request is invalid.".to_owned()
            }
            Self::ExpiredToken => {
                "The security token included in the request is expired".to_owned()
            }
            Self::Stale(message) => message.clone(),
            Self::BadSignature => "The request signature we calculated does not match the \
                                   signature you provided. Check your AWS Secret Access Key and \
                                   signing method. Consult the service documentation for details."
                .to_owned(),
        }
    }
}

/// Checks the request's signature against the sandbox's issued keys at `now`.
pub(crate) fn verify(
    sandbox: &Sandbox,
    parts: &Parts,
    body: &[u8],
    now: OffsetDateTime,
) -> Result<Verified, AuthFailure> {
    let authorization = sigv4::parse(&parts.headers).map_err(|error| match error {
        sigv4::AuthorizationError::Missing => AuthFailure::Missing,
        sigv4::AuthorizationError::Malformed(why) => AuthFailure::Malformed(why),
    })?;
    let credential = issued_key(sandbox, &authorization, &parts.headers)?;
    check_freshness(&authorization, parts, now)?;
    if !authorization
        .signed_headers
        .iter()
        .any(|name| name == "host")
    {
        return Err(AuthFailure::BadSignature);
    }
    // A request signed for another host (sts.amazonaws.com, say) and sent here with that
    // `Host` would verify; the real STS would never see it, so neither does the sandbox.
    if let Some(expected) = sandbox.endpoint_authority() {
        let host = parts
            .headers
            .get(axum::http::header::HOST)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("");
        if !same_port(host, &expected) {
            return Err(AuthFailure::BadSignature);
        }
    }
    // These services sign the body itself, never `UNSIGNED-PAYLOAD`.
    if !body_signed_by(&authorization, &credential, parts, body) {
        return Err(AuthFailure::BadSignature);
    }
    Ok(Verified { credential })
}

/// The key a request is signed with, when the sandbox issued it, the request carries its
/// session token (and no token for a key without one), and it is not revoked. The job API,
/// SQS and `AssumeRole` check only this and [`body_signed_by`]; [`verify`] adds the clock
/// window and the signed `Host`.
pub(crate) fn issued_key(
    sandbox: &Sandbox,
    authorization: &Authorization,
    headers: &HeaderMap,
) -> Result<Credential, AuthFailure> {
    let credential = sandbox
        .inner
        .state()
        .credentials
        .get(&authorization.access_key_id)
        .cloned()
        .ok_or(AuthFailure::UnknownKey)?;
    if session_token(headers) != credential.session_token.as_deref() {
        return Err(AuthFailure::BadSessionToken);
    }
    if credential.revoked {
        return Err(AuthFailure::ExpiredToken);
    }
    Ok(credential)
}

/// The `X-Amz-Security-Token` header, if sent.
pub(crate) fn session_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("x-amz-security-token")
        .and_then(|value| value.to_str().ok())
}

/// Whether the request's signature, over its body as sent, is `credential`'s.
pub(crate) fn body_signed_by(
    authorization: &Authorization,
    credential: &Credential,
    parts: &Parts,
    body: &[u8],
) -> bool {
    sigv4::signature_matches(
        authorization,
        &credential.secret,
        &parts.method,
        &parts.uri,
        &parts.headers,
        &sigv4::sha256_hex(body),
    )
}

/// True when `host` names the sandbox's port (any loopback spelling of its address).
fn same_port(host: &str, expected: &str) -> bool {
    let port = |authority: &str| authority.rsplit_once(':').map(|(_, port)| port.to_owned());
    port(host).is_some() && port(host) == port(expected)
}

/// `X-Amz-Date` must parse, agree with the credential scope's date, and lie in the window.
fn check_freshness(
    authorization: &Authorization,
    parts: &Parts,
    now: OffsetDateTime,
) -> Result<(), AuthFailure> {
    let amz_date = parts
        .headers
        .get("x-amz-date")
        .and_then(|value| value.to_str().ok())
        .ok_or(AuthFailure::BadSignature)?;
    let signed_at = parse_amz_date(amz_date).ok_or(AuthFailure::BadSignature)?;
    if !amz_date.starts_with(&authorization.date) {
        return Err(AuthFailure::BadSignature);
    }
    if signed_at < now - SIGNATURE_WINDOW {
        return Err(AuthFailure::Stale(format!(
            "Signature expired: {amz_date} is now earlier than {} ({} - 15 min.)",
            amz_date_of(now - SIGNATURE_WINDOW),
            amz_date_of(now)
        )));
    }
    if signed_at > now + SIGNATURE_WINDOW {
        return Err(AuthFailure::Stale(format!(
            "Signature not yet current: {amz_date} is still later than {} ({} + 15 min.)",
            amz_date_of(now + SIGNATURE_WINDOW),
            amz_date_of(now)
        )));
    }
    Ok(())
}

/// `YYYYMMDDTHHMMSSZ` → a UTC time.
pub(crate) fn parse_amz_date(value: &str) -> Option<OffsetDateTime> {
    let bytes = value.as_bytes();
    if bytes.len() != 16 || bytes[8] != b'T' || bytes[15] != b'Z' {
        return None;
    }
    let number = |range: std::ops::Range<usize>| value.get(range)?.parse::<u32>().ok();
    let month = time::Month::try_from(u8::try_from(number(4..6)?).ok()?).ok()?;
    let date = time::Date::from_calendar_date(
        i32::try_from(number(0..4)?).ok()?,
        month,
        u8::try_from(number(6..8)?).ok()?,
    )
    .ok()?;
    let clock = time::Time::from_hms(
        u8::try_from(number(9..11)?).ok()?,
        u8::try_from(number(11..13)?).ok()?,
        u8::try_from(number(13..15)?).ok()?,
    )
    .ok()?;
    Some(date.with_time(clock).assume_utc())
}

/// A UTC time as `YYYYMMDDTHHMMSSZ`.
pub(crate) fn amz_date_of(time: OffsetDateTime) -> String {
    let time = time.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        time.year(),
        u8::from(time.month()),
        time.day(),
        time.hour(),
        time.minute(),
        time.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amz_dates_round_trip() {
        let parsed = parse_amz_date("20261202T031500Z").unwrap();
        assert_eq!(amz_date_of(parsed), "20261202T031500Z");
        assert!(parse_amz_date("2026-12-02T03:15:00Z").is_none());
        assert!(parse_amz_date("20261302T031500Z").is_none());
    }
}
