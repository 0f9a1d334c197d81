//! `POST /artifactory/api/search/aql`: Artifactory Query Language over the items domain, for the
//! clients that search with it (JFrog CLI, scripts). `parse` reads the text syntax
//! (`items.find({...}).include(...).sort(...).offset(n).limit(n)`); `eval` runs it over the
//! store. Criteria: item fields (`repo`, `path`, `name`, `type`, `size`, checksums, dates...),
//! `@property` keys, `$eq`/`$ne`/`$gt`/`$gte`/`$lt`/`$lte`/`$match`/`$nmatch` (wildcards `*`
//! and `?`), `$and`/`$or`. Other domains and bad syntax are 400 in Artifactory's error shape.
//! As on Artifactory, AQL needs an authenticated user.

mod eval;
mod parse;

use std::sync::Arc;

use axum::Extension;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use super::Shared;
use super::auth::Caller;
use super::body::read_capped;
use super::error::ApiError;

/// Artifactory refuses longer queries by default (`aql.query.max.length`, 6,000 characters);
/// the mock is more lenient but still bounded.
const MAX_QUERY_BYTES: usize = 64 << 10;

/// `POST /artifactory/api/search/aql` (`text/plain` body)
pub(super) async fn search(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    caller.require_user()?;
    let bytes = read_capped(&headers, body, MAX_QUERY_BYTES).await?;
    let text = String::from_utf8(bytes)
        .map_err(|_| ApiError::bad_request("The AQL query is not valid UTF-8"))?;
    let query = parse::parse(&text)?;
    Ok(axum::Json(eval::run(&shared, &query)).into_response())
}
