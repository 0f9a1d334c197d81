//! Flags of the fleet's trust: which registries the worker's AWS identity and secrets may be
//! used for, which secrets it reads, and how web identity tokens are asked for. Shared by
//! `worker`, `publish` and `check`.

use clap::Args;

use crate::aws_identity::{AwsIdentity, SigningAlgorithm};
use crate::pipeline::config::FleetTrust;
use crate::publish::login::LoginSettings;

/// Where passwordless `Authentication` modes may be used.
#[derive(Debug, Clone, Args)]
pub struct TrustArgs {
    /// Registry base URLs (comma-separated) for which Authentication aws-iam, oidc:,
    /// secretsmanager: and ssm: may be used; without it those modes are refused.
    #[arg(
        long,
        env = "PIPELINE_PUBLISHER_ALLOWED_REGISTRIES",
        value_delimiter = ',',
        value_name = "URLS"
    )]
    pub allowed_registries: Vec<String>,
    /// The only Secrets Manager secret names and SSM parameter paths the worker reads.
    #[arg(
        long,
        env = "PIPELINE_PUBLISHER_SECRET_PREFIX",
        default_value = crate::pipeline::authentication::DEFAULT_SECRET_PREFIX,
        value_name = "PREFIX"
    )]
    pub secret_prefix: String,
    /// Audience of the STS web identity tokens for Authentication oidc: (default: the
    /// registry's base URL).
    #[arg(
        long,
        env = "PIPELINE_PUBLISHER_OIDC_AUDIENCE",
        value_name = "AUDIENCE"
    )]
    pub oidc_audience: Option<String>,
    /// Signing algorithm of the STS web identity tokens.
    #[arg(long, env = "PIPELINE_PUBLISHER_OIDC_SIGNING_ALGORITHM", value_enum, default_value_t = SigningAlgorithm::Rs256)]
    pub oidc_signing_algorithm: SigningAlgorithm,
}

impl TrustArgs {
    /// The fleet's trust; an allowed registry that is not a base URL is an error.
    pub fn fleet_trust(&self) -> anyhow::Result<FleetTrust> {
        Ok(FleetTrust {
            allowed_registries: FleetTrust::parse_registries(&self.allowed_registries)?,
            secret_prefix: self.secret_prefix.clone(),
        })
    }

    /// The login settings of a run with `identity`.
    pub fn login_settings(&self, identity: Option<AwsIdentity>) -> anyhow::Result<LoginSettings> {
        Ok(LoginSettings {
            trust: self.fleet_trust()?,
            identity,
            oidc_audience: self.oidc_audience.clone(),
            oidc_algorithm: self.oidc_signing_algorithm,
        })
    }
}
