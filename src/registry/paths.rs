//! Encoding of repository paths and matrix-parameter properties in deploy URLs.
//!
//! Artifactory reads properties from `;key=value` matrix parameters in the path, with `,`
//! separating several values of one key. Everything that is not an unreserved character is
//! percent-encoded, so a value containing `;`, `=`, `,` or `/` cannot change the meaning of
//! the URL.

use std::collections::BTreeMap;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// RFC 3986 unreserved characters stay as they are; everything else is encoded.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Encodes one path segment (or a matrix key or value).
pub fn encode_segment(segment: &str) -> String {
    utf8_percent_encode(segment, UNRESERVED).to_string()
}

/// Encodes a `/`-separated relative path segment by segment.
pub fn encode_path(path: &str) -> String {
    path.split('/')
        .filter(|segment| !segment.is_empty())
        .map(encode_segment)
        .collect::<Vec<_>>()
        .join("/")
}

/// `;key=v1,v2;key2=v` for the given properties (empty when there are none).
pub fn matrix_params(properties: &BTreeMap<String, Vec<String>>) -> String {
    let mut params = String::new();
    for (key, values) in properties {
        params.push(';');
        params.push_str(&encode_segment(key));
        params.push('=');
        let encoded: Vec<String> = values.iter().map(|value| encode_segment(value)).collect();
        params.push_str(&encoded.join(","));
    }
    params
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_characters_cannot_break_out_of_their_place() {
        assert_eq!(
            encode_path("fw/nest box/a;b=c.img"),
            "fw/nest%20box/a%3Bb%3Dc.img"
        );
        let mut properties = BTreeMap::new();
        properties.insert("vcs.revision".to_owned(), vec!["abc123".to_owned()]);
        properties.insert(
            "note".to_owned(),
            vec!["a;b=c".to_owned(), "d,e".to_owned()],
        );
        assert_eq!(
            matrix_params(&properties),
            ";note=a%3Bb%3Dc,d%2Ce;vcs.revision=abc123"
        );
    }
}
