//! What the mock lets tests and the demo inspect: recorded requests, minted tokens and stored
//! artifacts. None of these types holds a secret.

use std::collections::BTreeMap;
use std::path::PathBuf;

use time::OffsetDateTime;

/// One request as the mock saw it, recorded after it was answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// HTTP method, e.g. `PUT`.
    pub method: String,
    /// Raw request path including matrix parameters, without the query.
    pub path: String,
    /// Raw query string, if any.
    pub query: Option<String>,
    /// Which credential the request carried and whether it was accepted.
    pub auth: RequestAuth,
    /// Status code of the answer.
    pub status: u16,
    /// Request headers with lower-case names; the `authorization` value is replaced by `****`.
    pub headers: Vec<(String, String)>,
}

impl RecordedRequest {
    /// The first value of a header (name in lower case), for assertions.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(header_name, _)| header_name == name)
            .map(|(_, value)| value.as_str())
    }
}

/// The credential a request carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestAuth {
    /// No `Authorization` header.
    Anonymous,
    /// Basic auth with a user's password.
    Basic { username: String },
    /// An access token, sent as `Bearer <token>` or as the password of basic auth.
    Bearer { token_id: String },
    /// A credential was sent and refused (bad password, unknown, expired or revoked token).
    Rejected,
}

/// A token the mock minted, without its secret value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// Identifier used to revoke the token.
    pub token_id: String,
    /// The user the token acts for.
    pub username: String,
    /// Scope as requested (e.g. `applied-permissions/user`).
    pub scope: String,
    /// When the token stops being accepted.
    pub expires_at: OffsetDateTime,
    /// Whether it was revoked.
    pub revoked: bool,
    /// Minted through the deprecated `/artifactory/api/security/token` endpoint.
    pub legacy: bool,
}

/// A deployed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredArtifact {
    /// Repository key.
    pub repo: String,
    /// Path inside the repository, without a leading '/'.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Lower-case hex SHA-1 of the content.
    pub sha1: String,
    /// Lower-case hex SHA-256 of the content.
    pub sha256: String,
    /// Lower-case hex MD5 of the content.
    pub md5: String,
    /// Properties attached at deploy time (matrix parameters).
    pub properties: BTreeMap<String, Vec<String>>,
    /// User who deployed it.
    pub created_by: String,
    /// The file on disk holding the bytes (content-addressed, shared by identical artifacts).
    pub content_path: PathBuf,
}
