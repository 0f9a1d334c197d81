//! The UI's one stylesheet, served from `/ui/static/style.css` so the pages' Content Security
//! Policy can forbid inline styles and every script.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

/// Plain CSS: a readable column on a laptop screen, tables for listings, monospace digests.
const STYLESHEET: &str = r#"
:root { --ink: #1d2733; --muted: #5b6b7c; --line: #d9e0e7; --accent: #1a6e3c; --band: #f3f6f8; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: var(--ink); background: #fff; }
header.top { background: var(--ink); color: #fff; padding: 0.6rem 1.5rem; display: flex;
             gap: 1.5rem; align-items: baseline; }
header.top a { color: #fff; text-decoration: none; }
header.top .brand { font-weight: 600; }
header.top nav a { margin-right: 1rem; opacity: 0.85; }
main { max-width: 78rem; margin: 0 auto; padding: 1rem 1.5rem 3rem; }
h1 { font-size: 1.4rem; margin: 0.8rem 0; overflow-wrap: anywhere; }
h2 { font-size: 1.1rem; margin: 1.6rem 0 0.5rem; }
h3 { font-size: 1rem; margin: 1.2rem 0 0.4rem; }
a { color: var(--accent); }
.crumbs { color: var(--muted); font-size: 0.9rem; overflow-wrap: anywhere; }
.crumbs a { text-decoration: none; }
.muted { color: var(--muted); }
table { border-collapse: collapse; width: 100%; margin: 0.4rem 0 1rem; }
th, td { text-align: left; padding: 0.35rem 0.6rem; border-bottom: 1px solid var(--line);
         vertical-align: top; overflow-wrap: break-word; }
th { white-space: nowrap; }
th { background: var(--band); font-weight: 600; font-size: 0.9rem; }
table.facts th { width: 11rem; background: none; color: var(--muted); }
td.num { text-align: right; white-space: nowrap; }
code, .digest { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace;
                font-size: 0.85rem; }
.digest { overflow-wrap: anywhere; min-width: 12rem; }
.digest .label { color: var(--muted); display: inline-block; width: 3.6rem; }
a.file { white-space: nowrap; }
.tag { display: inline-block; padding: 0 0.45rem; border-radius: 0.6rem; background: var(--band);
       border: 1px solid var(--line); font-size: 0.8rem; }
.download { display: inline-block; margin: 0.3rem 0 0.8rem; padding: 0.3rem 0.8rem;
            border: 1px solid var(--accent); border-radius: 0.3rem; text-decoration: none; }
ul.values { margin: 0; padding-left: 1rem; }
p.empty { color: var(--muted); font-style: italic; }
"#;

/// `GET /ui/static/style.css`
pub(super) async fn stylesheet() -> Response {
    let mut response = STYLESHEET.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    response
}
