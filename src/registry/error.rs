//! What can go wrong talking to the registry, with the registry's own words kept.

use std::path::PathBuf;

use reqwest::StatusCode;

/// Longest excerpt of a registry's error body kept in a message: enough to read, never a
/// megabyte of HTML in a CodePipeline failure.
const MAX_BODY_EXCERPT_CHARS: usize = 500;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("could not reach the registry at {url}")]
    Transport {
        url: String,
        #[source]
        source: reqwest::Error,
    },

    #[error("{operation} {url} answered {status}: {message}{}", hint.as_ref().map(|h| format!(" (hint: {h})")).unwrap_or_default())]
    Status {
        operation: &'static str,
        url: String,
        status: u16,
        message: String,
        hint: Option<String>,
    },

    #[error(
        "{url} already holds different content (registry sha256 {remote_sha256}, build sha256 \
         {local_sha256}); releases are never overwritten: publish under a new TargetPath"
    )]
    Conflict {
        url: String,
        local_sha256: String,
        remote_sha256: String,
    },

    #[error(
        "{package} is already in the registry with different content (registry {algorithm} \
         {remote}, build {algorithm} {local}); a published version is never overwritten: bump \
         the package's version"
    )]
    VersionConflict {
        package: String,
        algorithm: &'static str,
        remote: String,
        local: String,
    },

    #[error(
        "the registry stored {url} with {algorithm} {actual}, but the file's is {expected}; the upload was corrupted"
    )]
    ChecksumMismatch {
        url: String,
        algorithm: &'static str,
        expected: String,
        actual: String,
    },

    #[error("the registry's answer to {operation} {url} could not be understood: {message}")]
    InvalidResponse {
        operation: &'static str,
        url: String,
        message: String,
    },

    #[error(
        "the registry has no AWS IAM token endpoint ({url} answered 404); Authentication aws-iam \
         needs Artifactory 7.90.10 or later (use Authentication password with older registries)"
    )]
    AwsTokenApiMissing { url: String },

    #[error(
        "the registry refused the worker's AWS identity ({status}: {message}): no registry user is \
         mapped to the role {}; a registry admin maps it once with PUT /access/api/v1/aws/iam_role \
         {{\"username\": \"<user>\", \"iam_role\": \"{}\"}}",
        role_arn.as_deref().unwrap_or("the worker runs as"),
        role_arn.as_deref().unwrap_or("arn:aws:iam::<account>:role/<name>")
    )]
    RoleNotMapped {
        url: String,
        status: u16,
        /// The role the worker runs as, when STS could say.
        role_arn: Option<String>,
        message: String,
    },

    #[error(
        "the registry has no OIDC token endpoint ({url} answered 404); Authentication oidc: needs \
         Artifactory 7.73 or later"
    )]
    OidcTokenApiMissing { url: String },

    #[error(
        "the registry's OIDC provider `{provider}` rejected the worker's web identity token \
         ({status}: {message}); check the provider's issuer and audience, its identity mapping \
         for the worker's role, and the clocks (an expired token is refused)"
    )]
    OidcRejected {
        url: String,
        provider: String,
        status: u16,
        message: String,
    },

    #[error("could not use the worker's AWS identity")]
    Identity {
        #[source]
        source: Box<crate::aws_identity::IdentityError>,
    },

    #[error("could not read `{path}` for upload")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "part {part} of {parts} of the multipart deploy of {url} failed; the upload was aborted \
         and nothing was published"
    )]
    MultipartPart {
        url: String,
        part: u64,
        parts: u64,
        #[source]
        source: Box<RegistryError>,
    },

    #[error(
        "the registry could not assemble the multipart deploy of {url} ({status}: {message}); \
         the upload was aborted and nothing was published"
    )]
    MultipartFailed {
        url: String,
        status: String,
        message: String,
    },

    #[error(
        "the registry was still assembling the multipart deploy of {url} ({status}) after \
         {waited_secs} s; the upload was aborted and nothing was published"
    )]
    MultipartTimedOut {
        url: String,
        status: String,
        waited_secs: u64,
    },
}

impl RegistryError {
    /// 401 and 403 mean the credentials or their permissions are wrong: a PermissionError.
    pub fn is_permission_denied(&self) -> bool {
        match self {
            RegistryError::Status {
                status: 401 | 403, ..
            }
            | RegistryError::RoleNotMapped { .. } => true,
            // 404: the provider the action names does not exist (a configuration problem).
            RegistryError::OidcRejected { status, .. } => *status != 404,
            RegistryError::Identity { source } => source.is_access_denied(),
            _ => false,
        }
    }

    /// Whether the action's configuration asks for something this registry or AWS account
    /// cannot give (an API the registry lacks, a secret that is not there or not a login).
    pub fn is_configuration_problem(&self) -> bool {
        match self {
            RegistryError::AwsTokenApiMissing { .. }
            | RegistryError::OidcTokenApiMissing { .. }
            | RegistryError::OidcRejected { status: 404, .. } => true,
            RegistryError::Identity { source } => source.is_configuration(),
            _ => false,
        }
    }

    /// Builds a status error from a response, keeping the registry's message and adding a hint
    /// where the status has a known cause.
    pub(crate) async fn from_response(
        operation: &'static str,
        response: reqwest::Response,
    ) -> Self {
        let url = response.url().to_string();
        Self::from_response_at(operation, url, response).await
    }

    /// [`RegistryError::from_response`] naming `url` instead of the response's own (a
    /// pre-signed URL, whose query is a credential).
    pub(crate) async fn from_response_at(
        operation: &'static str,
        url: String,
        response: reqwest::Response,
    ) -> Self {
        let status = response.status();
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let body = response.text().await.unwrap_or_default();
        RegistryError::Status {
            operation,
            url,
            status: status.as_u16(),
            message: error_message(&body, status),
            hint: hint(operation, status, location.as_deref()),
        }
    }
}

/// Artifactory's `{"errors":[{"status":..,"message":..}]}`, else the body's text, trimmed.
fn error_message(body: &str, status: StatusCode) -> String {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<ErrorEntry>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorEntry {
        message: Option<String>,
    }
    let message = match serde_json::from_str::<Errors>(body) {
        Ok(errors) => errors
            .errors
            .into_iter()
            .filter_map(|entry| entry.message)
            .collect::<Vec<_>>()
            .join("; "),
        Err(_) => body.split_whitespace().collect::<Vec<_>>().join(" "),
    };
    let message: String = message
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_BODY_EXCERPT_CHARS)
        .collect();
    if message.is_empty() {
        status.canonical_reason().unwrap_or("no message").to_owned()
    } else {
        message
    }
}

fn hint(operation: &str, status: StatusCode, location: Option<&str>) -> Option<String> {
    let hint = match status.as_u16() {
        300..=399 => format!(
            "the registry redirected to {}; redirects are never followed with credentials, so set \
             ArtifactoryHost to the registry's final base URL",
            location.unwrap_or("another location")
        ),
        401 if operation.contains("token") => "check the action's UserName and Password".to_owned(),
        401 => "the registry did not accept the token; it may have expired".to_owned(),
        403 if operation.contains("token") => {
            "the user may not create tokens; ask the registry admin to allow token creation"
                .to_owned()
        }
        403 => "the user lacks deploy permission on this repository path".to_owned(),
        404 => "check that RepoKey names an existing repository and that ArtifactoryHost is the \
                registry's base URL"
            .to_owned(),
        _ => return None,
    };
    Some(hint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifactory_error_bodies_are_unwrapped_and_long_bodies_trimmed() {
        let body = r#"{"errors":[{"status":404,"message":"Repo 'nope' not found"}]}"#;
        assert_eq!(
            error_message(body, StatusCode::NOT_FOUND),
            "Repo 'nope' not found"
        );
        let html = format!("<html>{}</html>", "x".repeat(10_000));
        assert_eq!(
            error_message(&html, StatusCode::BAD_GATEWAY)
                .chars()
                .count(),
            MAX_BODY_EXCERPT_CHARS
        );
        assert_eq!(error_message("", StatusCode::BAD_GATEWAY), "Bad Gateway");
    }
}
