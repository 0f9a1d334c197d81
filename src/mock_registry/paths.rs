//! Item paths: parsing `/repo/dir/file;key=value` (matrix parameters carry properties),
//! rejecting traversal, and building the absolute URLs Artifactory puts in its answers.

use std::collections::BTreeMap;

use axum::http::{HeaderMap, Uri, header};
use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};

use super::error::ApiError;

/// Properties as Artifactory models them: each key holds one or more values.
pub(super) type Properties = BTreeMap<String, Vec<String>>;

/// A repository item named by a request path, with the properties given as matrix parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ItemPath {
    /// Repository key (first segment).
    pub(super) repo: String,
    /// Path inside the repository without leading or trailing '/'; empty for the repository root.
    pub(super) path: String,
    /// Matrix parameters found in any segment, percent-decoded.
    pub(super) properties: Properties,
    /// Whether the request path ended in '/', which names a folder.
    pub(super) trailing_slash: bool,
}

/// Characters escaped when a path segment is put back into a URL.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b';')
    .add(b'?')
    .add(b'<')
    .add(b'>')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'\\')
    .add(b'^')
    .add(b'|');

fn decode(raw: &str) -> Result<String, ApiError> {
    percent_decode_str(raw)
        .decode_utf8()
        .map(|text| text.into_owned())
        .map_err(|_| ApiError::bad_request(format!("Invalid UTF-8 in request path: '{raw}'")))
}

/// Rejects what could escape the store or confuse it: empty, `.`/`..` segments, slashes,
/// backslashes and NUL hidden behind percent-encoding.
fn check_segment(segment: &str) -> Result<(), ApiError> {
    let bad = segment.is_empty()
        || segment == "."
        || segment == ".."
        || segment.contains(['/', '\\', '\0']);
    if bad {
        Err(ApiError::bad_request(format!(
            "Invalid path segment '{segment}': empty, '.', '..', slashes and backslashes are not allowed"
        )))
    } else {
        Ok(())
    }
}

/// Parses the part of a raw (still percent-encoded) request path that follows the API prefix,
/// e.g. `generic-local/fw/1.0/image.img;build.number=7;os=linux,rtos`.
pub(super) fn parse_item_path(raw: &str) -> Result<ItemPath, ApiError> {
    if raw.contains('\\') {
        return Err(ApiError::bad_request(
            "Backslashes are not allowed in paths",
        ));
    }
    let (raw, trailing_slash) = match raw.strip_suffix('/') {
        Some(stripped) => (stripped, true),
        None => (raw, false),
    };
    let mut names = Vec::new();
    let mut properties = Properties::new();
    for raw_segment in raw.split('/') {
        let mut parts = raw_segment.split(';');
        let name = decode(parts.next().unwrap_or_default())?;
        check_segment(&name)?;
        names.push(name);
        for parameter in parts.filter(|parameter| !parameter.is_empty()) {
            let (raw_key, raw_values) = parameter.split_once('=').unwrap_or((parameter, ""));
            let key = decode(raw_key)?;
            if key.is_empty() {
                return Err(ApiError::bad_request(
                    "Empty property key in matrix parameters",
                ));
            }
            let values = raw_values
                .split(',')
                .map(decode)
                .collect::<Result<Vec<_>, _>>()?;
            properties.entry(key).or_default().extend(values);
        }
    }
    let mut names = names.into_iter();
    // `split` always yields at least one item, and an empty one was rejected above.
    let repo = names.next().unwrap_or_default();
    Ok(ItemPath {
        repo,
        path: names.collect::<Vec<_>>().join("/"),
        properties,
        trailing_slash,
    })
}

/// Percent-encodes each segment of a stored path for use in a URL.
pub(super) fn encode_path(path: &str) -> String {
    path.split('/')
        .map(|segment| utf8_percent_encode(segment, SEGMENT).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

/// `http://HOST` from the request's Host header (or the URI's authority, as HTTP/2 sends it),
/// so URLs in answers point back at this server.
pub(super) fn base_url(headers: &HeaderMap, uri: &Uri) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .or_else(|| uri.authority().map(|authority| authority.as_str()))
        .filter(|host| !host.is_empty() && host.bytes().all(|byte| byte.is_ascii_graphic()))
        .unwrap_or("localhost");
    format!("http://{host}")
}

/// `{base}/artifactory/{repo}/{path}`: where the item is downloaded from.
pub(super) fn download_url(base: &str, repo: &str, path: &str) -> String {
    join_url(&format!("{base}/artifactory/{}", encode_path(repo)), path)
}

/// `{base}/artifactory/api/storage/{repo}/{path}`: the item's storage-info resource.
pub(super) fn storage_url(base: &str, repo: &str, path: &str) -> String {
    join_url(
        &format!("{base}/artifactory/api/storage/{}", encode_path(repo)),
        path,
    )
}

fn join_url(prefix: &str, path: &str) -> String {
    if path.is_empty() {
        prefix.to_string()
    } else {
        format!("{prefix}/{}", encode_path(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matrix_parameters_anywhere_become_properties() {
        let item =
            parse_item_path("generic-local/fw;stage=rc/1.0/image%20a.img;k=v;multi=a,b%2Cc;flag")
                .expect("valid path");
        assert_eq!(item.repo, "generic-local");
        assert_eq!(item.path, "fw/1.0/image a.img");
        assert_eq!(item.properties["stage"], vec!["rc"]);
        assert_eq!(item.properties["k"], vec!["v"]);
        assert_eq!(item.properties["multi"], vec!["a", "b,c"]);
        assert_eq!(item.properties["flag"], vec![""]);
        assert!(!item.trailing_slash);
    }

    #[test]
    fn repository_root_and_folders() {
        let root = parse_item_path("generic-local/").expect("valid");
        assert_eq!((root.path.as_str(), root.trailing_slash), ("", true));
        let folder = parse_item_path("generic-local/a/b").expect("valid");
        assert_eq!(folder.path, "a/b");
    }

    #[test]
    fn traversal_is_rejected() {
        for raw in [
            "",
            "repo/../etc/passwd",
            "repo/a/%2e%2e/b",
            "repo/a//b",
            "repo/a%2fb",
            "repo/a\\b",
            "repo/a%5cb",
            "repo/./a",
            "../repo/a",
            "repo/a%00b",
        ] {
            let error = parse_item_path(raw).expect_err(raw);
            assert_eq!(error.status, 400, "{raw}");
        }
    }

    #[test]
    fn urls_are_encoded_per_segment() {
        assert_eq!(
            download_url("http://h", "r", "a b/c;d"),
            "http://h/artifactory/r/a%20b/c%3Bd"
        );
        assert_eq!(
            storage_url("http://h", "r", ""),
            "http://h/artifactory/api/storage/r"
        );
    }
}
