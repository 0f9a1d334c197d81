//! The authentication half of `check`: which `Authentication` mode the settings choose, and,
//! for the passwordless modes, proof end to end: the fleet's trust allows the host, the secret
//! can be read (its content is never shown), and the registry exchanges the identity for a token
//! of a named user.

use std::time::Duration;

use crate::aws_identity::AwsIdentity;
use crate::cli::RegistryArgs;
use crate::commands::checklist::Checklist;
use crate::commands::settings::Settings;
use crate::error::inline_chain;
use url::Url;

use crate::pipeline::config::{self, Authentication, AuthenticationMode};
use crate::pipeline::properties::AUTHENTICATION;
use crate::publish::login::{self, LoginError};
use crate::registry::{AccessToken, RegistryClient, TokenSource};
use crate::secret::Redactor;

/// What the authentication check found.
pub enum Outcome {
    /// The password mode: the caller mints with UserName and the password as before.
    Password,
    /// A passwordless mode minted this token.
    Token(AccessToken),
    /// A check failed (already on the checklist).
    Failed,
}

/// The passwordless mode `mode` names; `None` for the password mode.
fn passwordless(mode: AuthenticationMode) -> Option<Authentication> {
    Some(match mode {
        AuthenticationMode::Password => return None,
        AuthenticationMode::AwsIam => Authentication::AwsIam,
        AuthenticationMode::Oidc(provider) => Authentication::Oidc { provider },
        AuthenticationMode::SecretsManager(secret_id) => {
            Authentication::SecretsManager { secret_id }
        }
        AuthenticationMode::Ssm(parameter) => Authentication::Ssm { parameter },
    })
}

/// Whether `check` may contact `host` at all: a passwordless mode for a registry the fleet does
/// not trust fails here, before any request, as a job would (the host receives nothing). An
/// unreadable mode is left for [`check_authentication`] to report.
pub fn host_is_trusted(
    settings: &Settings,
    args: &RegistryArgs,
    host: &Url,
    checklist: &mut Checklist,
) -> bool {
    let mode = AuthenticationMode::parse(settings.get(AUTHENTICATION).unwrap_or(""));
    let Some(authentication) = mode.ok().and_then(passwordless) else {
        return true;
    };
    let refused = match args.trust.fleet_trust() {
        Ok(trust) => config::check_trust(host, &authentication, &trust)
            .err()
            .map(|error| error.to_string()),
        Err(error) => Some(format!("{error:#}")),
    };
    let Some(problem) = refused else {
        return true;
    };
    checklist.fail(
        "registry login",
        problem,
        "start check (and the worker) with --allowed-registries naming this registry, and name \
         secrets under --secret-prefix",
    );
    false
}

/// Reports the mode; for a passwordless one, gets a token the way a job would.
pub async fn check_authentication(
    settings: &Settings,
    args: &RegistryArgs,
    client: &RegistryClient,
    checklist: &mut Checklist,
) -> Outcome {
    let mode = match AuthenticationMode::parse(settings.get(AUTHENTICATION).unwrap_or("")) {
        Ok(mode) => mode,
        Err(problem) => {
            checklist.fail(
                "authentication",
                problem.to_string(),
                format!(
                    "set --authentication (Authentication) to {}",
                    Authentication::FORMS
                ),
            );
            return Outcome::Failed;
        }
    };
    let Some(authentication) = passwordless(mode) else {
        checklist.pass("authentication", "password (UserName and its password)");
        return Outcome::Password;
    };
    checklist.pass("authentication", authentication.to_string());
    let login_settings = match args
        .trust
        .login_settings(Some(AwsIdentity::new(&crate::app::load_aws_config().await)))
    {
        Ok(login_settings) => login_settings,
        Err(error) => {
            checklist.fail(
                "registry login",
                format!("{error:#}"),
                "give --allowed-registries as comma-separated base URLs",
            );
            return Outcome::Failed;
        }
    };
    let redactor = Redactor::new();
    let source =
        match login::token_source_for(client.base(), &authentication, &login_settings, &redactor)
            .await
        {
            Ok(source) => source,
            Err(error) => {
                let fix = match &error {
                    LoginError::NotAllowed(_) => {
                        "start check (and the worker) with --allowed-registries naming this \
                         registry, and name secrets under --secret-prefix"
                    }
                    LoginError::Read { source, .. } if source.is_access_denied() => {
                        "grant the worker's role the action named above on the secret (the \
                         fleet's stack does for names under SecretPrefix)"
                    }
                    _ => "see the message above",
                };
                checklist.fail("registry login", inline_chain(&error), fix);
                return Outcome::Failed;
            }
        };
    if let (
        TokenSource::Password { .. },
        Authentication::SecretsManager { .. } | Authentication::Ssm { .. },
    ) = (&source, &authentication)
    {
        // Never the content: only that it is there, readable and well formed.
        checklist.pass(
            "registry login",
            "the secret is readable and holds a registry login for this registry",
        );
    }
    let lifetime = args.token_lifetime.max(Duration::from_secs(60));
    match client
        .token_from(&source, lifetime, "pipeline-publisher check", &redactor)
        .await
    {
        Ok(token) => {
            let user = token
                .user_name
                .clone()
                .map_or_else(String::new, |user| format!(" for the registry user {user}"));
            let role = match (&authentication, login_settings.identity.as_ref()) {
                (Authentication::AwsIam | Authentication::Oidc { .. }, Some(identity)) => {
                    identity.role_arn().await.map_or_else(
                        |_| String::new(),
                        |role| format!(" (the role {role} maps to it)"),
                    )
                }
                _ => String::new(),
            };
            checklist.pass(
                "token",
                format!("minted a token with {authentication}{user}{role}"),
            );
            Outcome::Token(token)
        }
        Err(error) => {
            checklist.fail(
                "token",
                inline_chain(&error),
                "see the registry's answer above (the message says what the admin must do)",
            );
            Outcome::Failed
        }
    }
}
