//! `/ui/repos/tree/General/{repo}/{path…}`: a repository, a folder or a file, as Artifactory's
//! tree browser shows them. A folder lists its children (size and creation time of files); a
//! file shows its size, creation, checksums, properties and a download link; a repository root
//! also lists the packages in it.

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use maud::{Markup, html};

use super::html::{
    Crumb, display_size, display_time, download_href, file_name, page, respond, tree_href,
};
use super::packages::package_href;
use super::refusal;
use crate::mock_registry::Shared;
use crate::mock_registry::auth::Caller;
use crate::mock_registry::catalog;
use crate::mock_registry::paths::{parse_item_path, storage_url};
use crate::mock_registry::store::ArtifactRecord;

const PREFIX: &str = "/ui/repos/tree/General/";

/// Breadcrumbs from the start page down to `repo`/`path`, the last one unlinked.
fn crumbs(repo: &str, path: &str) -> Vec<Crumb> {
    let mut crumbs = vec![Crumb::link("Repositories", "/ui/")];
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if segments.is_empty() {
        crumbs.push(Crumb::here(repo));
        return crumbs;
    }
    crumbs.push(Crumb::link(repo, tree_href(repo, "")));
    for (index, segment) in segments.iter().enumerate() {
        if index + 1 == segments.len() {
            crumbs.push(Crumb::here(*segment));
        } else {
            crumbs.push(Crumb::link(
                *segment,
                tree_href(repo, &segments[..=index].join("/")),
            ));
        }
    }
    crumbs
}

fn join(folder: &str, name: &str) -> String {
    if folder.is_empty() {
        name.to_owned()
    } else {
        format!("{folder}/{name}")
    }
}

/// `GET /ui/repos/tree/General/{repo}/{path…}`
pub(super) async fn tree(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    uri: Uri,
) -> Response {
    if let Some(denied) = refusal(&shared, &caller) {
        return denied;
    }
    let raw = uri.path().strip_prefix(PREFIX).unwrap_or_default();
    let item = match parse_item_path(raw) {
        Ok(item) => item,
        Err(error) => return super::html::not_found("No such item", &error.message),
    };
    if !item.path.is_empty()
        && let Some(record) = shared.store.record(&item.repo, &item.path)
    {
        return file_page(&item.repo, &item.path, &record);
    }
    match shared.store.children(&item.repo, &item.path) {
        Some(children) => folder_page(&shared, &item.repo, &item.path, children),
        None if item.path.is_empty() => super::html::not_found(
            "No such repository",
            &format!(
                "The repository '{}' does not exist or holds nothing yet.",
                item.repo
            ),
        ),
        None => super::html::not_found(
            "No such item",
            &format!(
                "Nothing is stored at '{}' in the repository '{}'.",
                item.path, item.repo
            ),
        ),
    }
}

fn folder_page(
    shared: &Shared,
    repo: &str,
    folder: &str,
    children: Vec<(String, bool)>,
) -> Response {
    let title = if folder.is_empty() {
        repo
    } else {
        file_name(folder)
    };
    // Folders first, then files, each by name (the store answers by name).
    let (folders, files): (Vec<_>, Vec<_>) =
        children.into_iter().partition(|(_, is_folder)| *is_folder);
    let packages: Vec<catalog::Package> = if folder.is_empty() {
        catalog::packages(shared)
            .into_iter()
            .filter(|package| package.repo == repo)
            .collect()
    } else {
        Vec::new()
    };
    let content = html! {
        @if !packages.is_empty() {
            h2 { "Packages" }
            table {
                thead { tr { th { "Package" } th { "Type" } th { "Versions" } th { "Latest" } } }
                tbody {
                    @for package in &packages {
                        tr {
                            td { a href=(package_href(package.kind, &package.name)) { (package.name) } }
                            td { span.tag { (package.kind.label()) } }
                            td.num { (package.versions.len()) }
                            td { @if let Some(latest) = package.latest() { (latest.version) } }
                        }
                    }
                }
            }
        }
        h2 { @if folder.is_empty() { "Contents" } @else { "Folder contents" } }
        @if folders.is_empty() && files.is_empty() {
            p.empty { "This repository is empty." }
        } @else {
            table {
                thead { tr { th { "Name" } th { "Size" } th { "Created" } } }
                tbody {
                    @for (name, _) in &folders {
                        tr {
                            td { a href=(tree_href(repo, &join(folder, name))) { (name) "/" } }
                            td.num { "—" }
                            td {}
                        }
                    }
                    @for (name, _) in &files {
                        @let path = join(folder, name);
                        @let record = shared.store.record(repo, &path);
                        tr {
                            td { a href=(tree_href(repo, &path)) { (name) } }
                            td.num { @if let Some(record) = &record { (display_size(record.size)) } }
                            td { @if let Some(record) = &record { (display_time(record.created_millis)) } }
                        }
                    }
                }
            }
        }
    };
    respond(StatusCode::OK, page(title, &crumbs(repo, folder), content))
}

fn properties_table(record: &ArtifactRecord) -> Markup {
    html! {
        @if record.properties.is_empty() {
            p.empty { "No properties." }
        } @else {
            table.properties {
                thead { tr { th { "Property" } th { "Value" } } }
                tbody {
                    @for (key, values) in &record.properties {
                        tr {
                            td { code { (key) } }
                            td {
                                @if values.len() == 1 {
                                    (values[0])
                                } @else {
                                    ul.values { @for value in values { li { (value) } } }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn file_page(repo: &str, path: &str, record: &ArtifactRecord) -> Response {
    let download = download_href(repo, path);
    let content = html! {
        a.download href=(download) download=(file_name(path)) { "Download" }
        table.facts {
            tbody {
                tr { th { "Repository" } td { a href=(tree_href(repo, "")) { (repo) } } }
                tr { th { "Path" } td { code { (path) } } }
                tr { th { "Size" } td { (display_size(record.size)) " (" (record.size) " bytes)" } }
                tr { th { "Created" } td { (display_time(record.created_millis)) } }
                tr { th { "Created by" } td { (record.created_by) } }
                tr { th { "Last modified" } td { (display_time(record.modified_millis)) } }
                tr { th { "MIME type" } td { code { (record.mime_type) } } }
                tr { th { "SHA-256" } td.digest { (record.sha256) } }
                tr { th { "SHA-1" } td.digest { (record.sha1) } }
                tr { th { "MD5" } td.digest { (record.md5) } }
                tr { th { "Download URL" } td { a href=(download) { code { (download) } } } }
                tr { th { "Storage API" } td { a href=(storage_url("", repo, path)) { code { (storage_url("", repo, path)) } } } }
            }
        }
        h2 { "Properties" }
        (properties_table(record))
    };
    respond(
        StatusCode::OK,
        page(file_name(path), &crumbs(repo, path), content),
    )
}
