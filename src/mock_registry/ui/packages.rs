//! Packages as packages rather than files: `/ui/packages` lists every npm, PyPI and Debian
//! package by repository; `/ui/packages/{type}:%2F%2F{name}` (Artifactory's package ids, e.g.
//! `npm://@nestbox/camera-agent`) shows its versions in each repository, each with its files.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use super::html::{Crumb, display_time, download_href, file_name, page, respond, tree_href};
use super::refusal;
use crate::mock_registry::Shared;
use crate::mock_registry::auth::Caller;
use crate::mock_registry::catalog::{self, Package, PackageKind};

/// The page of a package: `/ui/packages/npm:%2F%2F%40scope%2Fname`.
pub(super) fn package_href(kind: PackageKind, name: &str) -> String {
    let id = format!("{}://{name}", kind.key());
    format!(
        "/ui/packages/{}",
        utf8_percent_encode(&id, NON_ALPHANUMERIC)
    )
}

/// `GET /ui/packages`
pub(super) async fn packages(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
) -> Response {
    if let Some(denied) = refusal(&shared, &caller) {
        return denied;
    }
    let packages = catalog::packages(&shared);
    let mut repositories: Vec<&str> = packages.iter().map(|p| p.repo.as_str()).collect();
    repositories.sort_unstable();
    repositories.dedup();
    let content = html! {
        @if packages.is_empty() {
            p.empty { "No npm, PyPI or Debian package has been published yet." }
        }
        @for repo in &repositories {
            h2 id=(repo) { a href=(tree_href(repo, "")) { (repo) } }
            table {
                thead { tr { th { "Package" } th { "Type" } th { "Versions" } th { "Latest" } th { "Published" } } }
                tbody {
                    @for package in packages.iter().filter(|package| package.repo == *repo) {
                        tr {
                            td { a href=(package_href(package.kind, &package.name)) { (package.name) } }
                            td { span.tag { (package.kind.label()) } }
                            td { (package.versions.iter().map(|v| v.version.as_str()).collect::<Vec<_>>().join(", ")) }
                            td { @if let Some(latest) = package.latest() { (latest.version) } }
                            td { @if let Some(latest) = package.latest() { (display_time(latest.published_millis)) } }
                        }
                    }
                }
            }
        }
    };
    let crumbs = [Crumb::link("Repositories", "/ui/"), Crumb::here("Packages")];
    respond(StatusCode::OK, page("Packages", &crumbs, content))
}

/// `GET /ui/packages/{type}://{name}` (the id percent-encoded in one segment)
pub(super) async fn package(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    if let Some(denied) = refusal(&shared, &caller) {
        return denied;
    }
    let wanted = id
        .split_once("://")
        .and_then(|(kind, name)| PackageKind::from_key(kind).map(|kind| (kind, name)));
    let Some((kind, name)) = wanted else {
        return super::html::not_found(
            "No such package",
            &format!(
                "'{id}' is not a package id such as npm://name, pypi://name or debian://name."
            ),
        );
    };
    let found: Vec<Package> = catalog::packages(&shared)
        .into_iter()
        .filter(|package| package.kind == kind && package.name == name)
        .collect();
    if found.is_empty() {
        return super::html::not_found(
            "No such package",
            &format!("No {} package named '{name}' was published.", kind.label()),
        );
    }
    let content = html! {
        @for package in &found {
            h2 { "In " a href=(tree_href(&package.repo, "")) { (package.repo) } }
            table {
                thead { tr { th { "Version" } th { "Published" } th { "Files" } } }
                tbody {
                    @for version in package.versions.iter().rev() {
                        tr {
                            td { (version.version) }
                            td { (display_time(version.published_millis)) }
                            td {
                                @for path in &version.files {
                                    a href=(tree_href(&package.repo, path)) { (file_name(path)) }
                                    " (" a href=(download_href(&package.repo, path)) { "download" } ")"
                                    br;
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    let crumbs = [
        Crumb::link("Packages", "/ui/packages"),
        Crumb::here(format!("{}://{name}", kind.key())),
    ];
    respond(
        StatusCode::OK,
        page(&format!("{name} ({})", kind.label()), &crumbs, content),
    )
}
