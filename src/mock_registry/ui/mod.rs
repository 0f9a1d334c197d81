//! A small web UI for the mock registry, at the paths Artifactory's own UI uses, so the links a
//! CodePipeline action shows (`entityUrlTemplate` → `/ui/repos/tree/General/{repo}/{path}`,
//! `executionUrlTemplate` → `/ui/builds/{name}/{number}/{started}/published`) open something
//! locally. Server-rendered HTML and one stylesheet, no scripts:
//!
//! - `home`: `/` and `/ui` redirect to `/ui/`, the repositories and recent builds;
//! - `tree`: `/ui/repos/tree/General/{repo}/{path…}`, folders and files;
//! - `builds`: `/ui/builds/`, `/ui/builds/{name}` and a build run's page;
//! - `packages`: `/ui/packages` and `/ui/packages/{type}:%2F%2F{name}`;
//! - `html`: the shared frame, escaping and link helpers; `style`: the stylesheet.
//!
//! Reads are allowed to whoever may read the REST API (anonymous unless configured otherwise).

mod builds;
mod home;
mod html;
mod packages;
mod style;
mod tree;

use std::sync::Arc;

use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::Shared;
use super::auth::Caller;
use super::storage::check_read_access;

/// The UI's routes, merged into the registry's router (which adds auth and recording).
pub(super) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/", get(home::to_home))
        .route("/ui", get(home::to_home))
        .route("/ui/", get(home::home))
        .route("/ui/static/style.css", get(style::stylesheet))
        .route("/ui/repos/tree/General", get(home::to_home))
        .route("/ui/repos/tree/General/", get(home::to_home))
        .route("/ui/repos/tree/General/{*item}", get(tree::tree))
        .route("/ui/builds", get(builds::builds))
        .route("/ui/builds/", get(builds::builds))
        .route("/ui/builds/{name}", get(builds::runs))
        .route("/ui/builds/{name}/{number}", get(builds::run))
        .route("/ui/builds/{name}/{number}/{started}", get(builds::run))
        .route(
            "/ui/builds/{name}/{number}/{started}/{tab}",
            get(builds::run),
        )
        .route("/ui/packages", get(packages::packages))
        .route("/ui/packages/", get(packages::packages))
        .route("/ui/packages/{id}", get(packages::package))
}

/// The error response when the caller may not read (401 with a basic-auth challenge, so a
/// browser asks for credentials), `None` when it may.
fn refusal(shared: &Shared, caller: &Caller) -> Option<Response> {
    check_read_access(shared, caller)
        .err()
        .map(IntoResponse::into_response)
}
