//! The registry half of `check`: reachable (ping), TLS valid, a token can be minted for the
//! given credentials and revoked, and the repository exists (storage API on its root).

use std::time::Duration;

use url::Url;

use crate::cli::{PASSWORD_ENV, RegistryArgs};
use crate::commands::checklist::Checklist;
use crate::commands::settings::{self, Settings};
use crate::error::{inline_chain, is_certificate_error};
use crate::pipeline::properties::{ARTIFACTORY_HOST, REPO_KEY, USER_NAME};
use crate::registry::{RegistryClient, RegistryError};

/// Runs the registry checks the settings allow; skips the rest with a reason.
pub async fn registry_checks(settings: &Settings, args: &RegistryArgs, checklist: &mut Checklist) {
    let Some(raw_host) = settings.get(ARTIFACTORY_HOST) else {
        checklist.skip("registry", "no --artifactory-host or --config given");
        return;
    };
    let host = match parse_base_url(raw_host) {
        Ok(host) => host,
        Err(problem) => {
            checklist.fail(
                "registry URL",
                problem.to_string(),
                "give the registry's base URL, e.g. https://acme.jfrog.io (a trailing /artifactory \
                 is accepted; not a UI or repository URL)",
            );
            return;
        }
    };
    let http = match crate::registry::http_client() {
        Ok(http) => http,
        Err(error) => {
            checklist.fail("registry", format!("{error:#}"), "report this as a bug");
            return;
        }
    };
    if !super::check_login::host_is_trusted(settings, args, &host, checklist) {
        return;
    }
    let client = RegistryClient::new(http, host.clone());
    let https = host.scheme() == "https";
    if !ping(&client, https, checklist).await {
        return;
    }

    let token =
        match super::check_login::check_authentication(settings, args, &client, checklist).await {
            super::check_login::Outcome::Token(token) => Some(token),
            super::check_login::Outcome::Failed => return,
            super::check_login::Outcome::Password => None,
        };
    let token = match token {
        Some(token) => token,
        None => match password_token(settings, args, &client, &host, checklist).await {
            Some(token) => token,
            None => return,
        },
    };
    repository_and_revocation(settings, &client, &host, token, checklist).await;
}

/// The password mode's token, minted with UserName and the password; `None` when it failed.
async fn password_token(
    settings: &Settings,
    args: &RegistryArgs,
    client: &RegistryClient,
    host: &Url,
    checklist: &mut Checklist,
) -> Option<crate::registry::AccessToken> {
    let Some(user_name) = settings.get(USER_NAME) else {
        checklist.skip("token", "no --user-name (UserName) given");
        return None;
    };
    let password = match settings::password(Some(user_name), Some(host.as_str())) {
        Ok(Some(password)) => password,
        Ok(None) => {
            checklist.fail(
                "token",
                "no password to mint a token with",
                format!("set {PASSWORD_ENV}, or run check in a terminal to be asked"),
            );
            return None;
        }
        Err(error) => {
            checklist.fail("token", format!("{error:#}"), format!("set {PASSWORD_ENV}"));
            return None;
        }
    };
    let description = "pipeline-publisher check";
    let token = match client
        .mint_token(
            user_name,
            &password,
            args.token_lifetime.max(Duration::from_secs(60)),
            description,
        )
        .await
    {
        Ok(token) => token,
        Err(error) => {
            let fix = match &error {
                RegistryError::Status { status: 401, .. } => {
                    "check UserName and the password (PIPELINE_PUBLISHER_PASSWORD)".to_owned()
                }
                RegistryError::Status { status: 403, .. } => {
                    "ask the registry admin to let this user create tokens (Access API) or use a \
                     user that may"
                        .to_owned()
                }
                _ => "see the registry's answer above".to_owned(),
            };
            checklist.fail("token", inline_chain(&error), fix);
            return None;
        }
    };
    checklist.pass("token", format!("minted a token for {user_name}"));
    Some(token)
}

/// The repository exists (with the token), and the token is revoked.
async fn repository_and_revocation(
    settings: &Settings,
    client: &RegistryClient,
    host: &Url,
    token: crate::registry::AccessToken,
    checklist: &mut Checklist,
) {
    match settings.get(REPO_KEY) {
        None => checklist.skip("repository", "no --repo-key (RepoKey) given"),
        Some(repo) => match client.file_info(&token, repo, "").await {
            Ok(Some(_)) => checklist.pass("repository", format!("{repo} exists")),
            Ok(None) => checklist.fail(
                "repository",
                format!("{repo} does not exist on {host}"),
                "check RepoKey (keys are case-sensitive) or ask the registry admin to create the \
                 repository",
            ),
            Err(error) => {
                let fix = if error.is_permission_denied() {
                    "give the user read and deploy permission on the repository"
                } else {
                    "see the registry's answer above"
                };
                checklist.fail("repository", inline_chain(&error), fix);
            }
        },
    }

    match client.revoke_token(&token).await {
        Ok(()) => checklist.pass("token revocation", "the token was revoked"),
        Err(error) => checklist.warn(
            "token revocation",
            inline_chain(&error),
            "servers may refuse to revoke tokens shorter-lived than their revocable threshold; \
             the worker treats revocation as best effort and the token expires on its own",
        ),
    }
}

/// `GET /artifactory/api/system/ping`; records reachability and TLS. False when unreachable.
async fn ping(client: &RegistryClient, https: bool, checklist: &mut Checklist) -> bool {
    let url = client.url("artifactory/api/system/ping");
    match client.http().get(&url).send().await {
        Ok(response) if response.status().is_success() => {
            checklist.pass(
                "registry reachable",
                format!("{url} answered {}", response.status()),
            );
        }
        Ok(response) => {
            let status = response.status();
            let fix = if status.is_redirection() {
                "ArtifactoryHost must be the final base URL: redirects are never followed with credentials"
            } else if status.as_u16() == 404 {
                "ArtifactoryHost must be the registry's base URL (e.g. https://acme.jfrog.io), not a \
                 UI or repository URL"
            } else {
                "the registry is up but unhealthy; ask its admin"
            };
            checklist.fail(
                "registry reachable",
                format!("{url} answered {status}"),
                fix,
            );
            return false;
        }
        Err(error) => {
            if https && is_certificate_error(&error) {
                checklist.fail(
                    "TLS",
                    inline_chain(&error),
                    "the registry's certificate is not trusted or does not match the host: fix the \
                     certificate, or add its CA to the system trust store",
                );
            } else {
                checklist.fail(
                    "registry reachable",
                    inline_chain(&error),
                    "check the URL, DNS, proxy and firewall between this host and the registry",
                );
            }
            return false;
        }
    }
    if https {
        checklist.pass("TLS", "the certificate is valid for the host");
    } else {
        checklist.skip("TLS", "plain http");
    }
    true
}

/// Why `--artifactory-host` is not a registry base URL. The checklist shows one line per
/// check, so the URL parser's reason is part of the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum BaseUrlError {
    #[error("`{raw}` is not a URL ({reason})")]
    NotUrl {
        raw: String,
        reason: url::ParseError,
    },
    #[error("`{raw}` must be an http(s) URL with a host")]
    NotHttp { raw: String },
}

/// The registry base URL from `ArtifactoryHost`, as the job's configuration parses it.
fn parse_base_url(raw: &str) -> Result<Url, BaseUrlError> {
    let mut url = Url::parse(raw.trim()).map_err(|reason| BaseUrlError::NotUrl {
        raw: raw.to_owned(),
        reason,
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(BaseUrlError::NotHttp {
            raw: raw.to_owned(),
        });
    }
    let path = url.path().trim_end_matches('/');
    let path = path.strip_suffix("/artifactory").unwrap_or(path).to_owned();
    url.set_path(&path);
    Ok(url)
}
