//! The frame every UI page shares (header, breadcrumbs, title) and the small formatting and
//! link helpers the pages use.
//!
//! Pages are built with `maud`, which escapes every spliced value for the context it lands in
//! (text or a double-quoted attribute); only [`maud::PreEscaped`] opts out, and the UI never uses
//! it. File names, property keys and values and build names come from pipelines, so this is the
//! property that matters: a name like `"><script>` is shown as text. The responses also carry a
//! Content Security Policy that allows no script at all, as a second line of defence.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::mock_registry::clock::from_unix_millis;
use crate::mock_registry::paths::{download_url, encode_path};

/// No scripts, no inline styles, no framing; only the stylesheet of this server.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// What a build name or number keeps unencoded in a URL segment (RFC 3986 unreserved), as the
/// worker encodes them in `externalExecutionId`.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// One step of the breadcrumb trail: its label and, except for the current page, its link.
pub(super) struct Crumb {
    pub(super) label: String,
    pub(super) href: Option<String>,
}

impl Crumb {
    pub(super) fn link(label: impl Into<String>, href: impl Into<String>) -> Self {
        Self {
            label: label.into(),
            href: Some(href.into()),
        }
    }

    pub(super) fn here(label: impl Into<String>) -> Self {
        Self {
            label: label.into(),
            href: None,
        }
    }
}

/// A whole page: the shared frame around `content`.
pub(super) fn page(title: &str, crumbs: &[Crumb], content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Mock Artifactory" }
                link rel="stylesheet" href="/ui/static/style.css";
            }
            body {
                header.top {
                    a.brand href="/ui/" { "Mock Artifactory" }
                    nav {
                        a href="/ui/" { "Repositories" }
                        a href="/ui/packages" { "Packages" }
                        a href="/ui/builds/" { "Builds" }
                    }
                }
                main {
                    @if !crumbs.is_empty() {
                        div.crumbs {
                            @for (index, crumb) in crumbs.iter().enumerate() {
                                @if index > 0 { " / " }
                                @if let Some(href) = &crumb.href {
                                    a href=(href) { (crumb.label) }
                                } @else {
                                    span { (crumb.label) }
                                }
                            }
                        }
                    }
                    h1 { (title) }
                    (content)
                }
            }
        }
    }
}

/// An HTML response with the UI's security headers.
pub(super) fn respond(status: StatusCode, markup: Markup) -> Response {
    let mut response = (status, markup.into_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A 404 page that says what was looked for and links back to the start.
pub(super) fn not_found(title: &str, explanation: &str) -> Response {
    let content = html! {
        p { (explanation) }
        p { a href="/ui/" { "Back to the repositories" } }
    };
    respond(StatusCode::NOT_FOUND, page(title, &[], content))
}

/// `2026-11-26 09:13:04 UTC`
pub(super) fn display_time(millis: i64) -> String {
    match from_unix_millis(millis) {
        Some(at) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
            at.year(),
            u8::from(at.month()),
            at.day(),
            at.hour(),
            at.minute(),
            at.second()
        ),
        None => "unknown".to_owned(),
    }
}

/// `1.5 MiB`, `812 B`: binary units, one decimal.
pub(super) fn display_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// The tree page of a repository item (`path` empty: the repository root).
pub(super) fn tree_href(repo: &str, path: &str) -> String {
    if path.is_empty() {
        format!("/ui/repos/tree/General/{}", encode_path(repo))
    } else {
        format!(
            "/ui/repos/tree/General/{}/{}",
            encode_path(repo),
            encode_path(path)
        )
    }
}

/// Where a file is downloaded from (host-relative).
pub(super) fn download_href(repo: &str, path: &str) -> String {
    download_url("", repo, path)
}

/// A build name or number as one URL segment.
pub(super) fn build_segment(text: &str) -> String {
    utf8_percent_encode(text, UNRESERVED).to_string()
}

/// The page of one build run, in the shape of the worker's `externalExecutionId`
/// (`{name}/{number}/{started millis}/published?buildRepo=artifactory-build-info`).
pub(super) fn build_href(name: &str, number: &str, started_millis: Option<i128>) -> String {
    match started_millis {
        Some(started) => format!(
            "/ui/builds/{}/{}/{started}/published?buildRepo=artifactory-build-info",
            build_segment(name),
            build_segment(number)
        ),
        None => format!(
            "/ui/builds/{}/{}",
            build_segment(name),
            build_segment(number)
        ),
    }
}

/// The runs of one build.
pub(super) fn build_runs_href(name: &str) -> String {
    format!("/ui/builds/{}", build_segment(name))
}

/// `url` when it is an http(s) URL, the only kind a page links to: a `javascript:` URL in a
/// build-info document stays text.
pub(super) fn external_href(url: &str) -> Option<&str> {
    let lower = url.trim_start().to_ascii_lowercase();
    (lower.starts_with("https://") || lower.starts_with("http://")).then_some(url)
}

/// The last segment of a `/`-separated path.
pub(super) fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_links() {
        assert_eq!(display_size(812), "812 B");
        assert_eq!(display_size(1536), "1.5 KiB");
        assert_eq!(display_size(5 * 1024 * 1024), "5.0 MiB");
        assert_eq!(
            tree_href("r", "a b/c;d"),
            "/ui/repos/tree/General/r/a%20b/c%3Bd"
        );
        assert_eq!(
            build_href("camera pipeline/main", "exec-1", Some(17)),
            "/ui/builds/camera%20pipeline%2Fmain/exec-1/17/published?buildRepo=artifactory-build-info"
        );
        assert_eq!(external_href(" JavaScript:alert(1)"), None);
        assert_eq!(external_href("https://x"), Some("https://x"));
    }
}
