//! Generated identifiers shaped like AWS's (UUIDs, access key ids, secrets, session tokens)
//! and the HTTP date format S3 uses.

use rand::RngExt;
use rand::distr::{Alphanumeric, SampleString};

/// A random (version 4) UUID, lower-case, as CodePipeline's job and execution ids are.
pub(crate) fn uuid() -> String {
    let mut bytes: [u8; 16] = rand::rng().random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// An access key id: `prefix` (`ASIA` temporary, `AKIA` long-term) + 16 upper-case alnum.
pub(crate) fn access_key_id(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut rng = rand::rng();
    let suffix: String = (0..16)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect();
    format!("{prefix}{suffix}")
}

/// A 40-character secret access key.
pub(crate) fn secret_access_key() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), 40)
}

/// An opaque session token (real ones are a few hundred characters of base64).
pub(crate) fn session_token() -> String {
    format!(
        "IQoJb3JpZ2luX2Vj{}",
        Alphanumeric.sample_string(&mut rand::rng(), 200)
    )
}

/// A job nonce: CodePipeline's are short decimal strings (the model allows 1–50 chars).
pub(crate) fn nonce() -> String {
    rand::rng().random_range(1u32..1_000_000).to_string()
}

/// An SQS receipt handle: opaque, a new one for every receive of a message.
pub(crate) fn receipt_handle() -> String {
    format!("AQEB{}", Alphanumeric.sample_string(&mut rand::rng(), 140))
}

/// A request id for `x-amzn-RequestId` / `x-amz-request-id`.
pub(crate) fn request_id() -> String {
    let bytes: [u8; 8] = rand::rng().random();
    hex::encode_upper(bytes)
}

/// `time` formatted as an HTTP date (`Wed, 21 Oct 2015 07:28:00 GMT`), as S3 sends
/// `Last-Modified`.
pub(crate) fn http_date(time: time::OffsetDateTime) -> String {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let utc = time.to_offset(time::UtcOffset::UTC);
    // Formatting a well-formed description into a String only fails on I/O errors, which a
    // String cannot produce; fall back to the epoch form rather than panic.
    utc.format(&format)
        .unwrap_or_else(|_| "Thu, 01 Jan 1970 00:00:00 GMT".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_aws_shapes() {
        let id = uuid();
        assert_eq!(id.len(), 36);
        assert_eq!(id.as_bytes()[14], b'4');
        let key = access_key_id("ASIA");
        assert_eq!(key.len(), 20);
        assert!(
            key.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        );
        assert_eq!(secret_access_key().len(), 40);
    }

    #[test]
    fn http_date_matches_rfc_7231() {
        let time = time::macros::datetime!(2015-10-21 07:28:00 UTC);
        assert_eq!(http_date(time), "Wed, 21 Oct 2015 07:28:00 GMT");
    }
}
