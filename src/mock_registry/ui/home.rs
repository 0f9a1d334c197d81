//! The start page (`/ui/`): every repository with its package type, size and packages, and the
//! latest builds. `/` and `/ui` redirect here, as they do on Artifactory.

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;

use super::html::{build_href, display_size, page, respond, tree_href};
use super::{builds, refusal};
use crate::mock_registry::Shared;
use crate::mock_registry::auth::Caller;
use crate::mock_registry::catalog;

/// How many builds the start page lists.
const RECENT_BUILDS: usize = 10;

/// `GET /`, `/ui`, `/ui/repos/tree/General`: to the start page.
pub(super) async fn to_home() -> Redirect {
    Redirect::to("/ui/")
}

/// `GET /ui/`
pub(super) async fn home(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
) -> Response {
    if let Some(denied) = refusal(&shared, &caller) {
        return denied;
    }
    let packages = catalog::packages(&shared);
    let repositories = catalog::repositories(&shared, &packages);
    let mut runs = builds::all_runs(&shared);
    runs.sort_by_key(|run| std::cmp::Reverse(run.started_millis));
    runs.truncate(RECENT_BUILDS);
    let content = html! {
        h2 { "Repositories" }
        @if repositories.is_empty() {
            p.empty { "Nothing has been published yet." }
        } @else {
            table {
                thead { tr { th { "Repository" } th { "Package type" } th { "Files" } th { "Size" } th { "Packages" } } }
                tbody {
                    @for repository in &repositories {
                        @let package_count = packages.iter().filter(|package| package.repo == repository.key).count();
                        tr {
                            td { a href=(tree_href(&repository.key, "")) { (repository.key) } }
                            td { span.tag { (repository.package_type) } }
                            td.num { (repository.files) }
                            td.num { (display_size(repository.bytes)) }
                            td.num {
                                @if package_count > 0 {
                                    a href={ "/ui/packages#" (repository.key) } { (package_count) }
                                } @else { "—" }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Latest builds" }
        @if runs.is_empty() {
            p.empty { "No build info has been published yet." }
        } @else {
            table {
                thead { tr { th { "Build" } th { "Number" } th { "Started" } th { "Artifacts" } } }
                tbody {
                    @for run in &runs {
                        tr {
                            td { a href=(super::html::build_runs_href(&run.name)) { (run.name) } }
                            td { a href=(build_href(&run.name, &run.number, run.started_millis)) { (run.number) } }
                            td { (run.started) }
                            td.num { (run.artifact_count) }
                        }
                    }
                }
            }
        }
    };
    respond(StatusCode::OK, page("Published here", &[], content)).into_response()
}
