//! The AWS configuration of one source: its region and the credentials of its account.
//!
//! A source without a role uses the worker's own credentials chain. A source with a role gets
//! credentials from STS `AssumeRole` (with its external ID) through aws-config's
//! [`AssumeRoleProvider`], authorised by the worker's own credentials; the SDK's identity cache
//! refreshes them before they expire, so a long-running worker never holds stale ones. STS is
//! asked in the worker's own region (any regional endpoint serves every role), and endpoint
//! overrides (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_STS`, `AWS_ENDPOINT_URL_CODEPIPELINE`)
//! apply as they do to the worker's own clients.

use aws_config::SdkConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_codepipeline::config::Region;

/// Where a source is and how to reach it.
#[derive(Clone)]
pub struct SourceAccess<'a> {
    pub region: &'a str,
    pub role: Option<&'a str>,
    pub external_id: Option<&'a str>,
    /// The role session's name (shows in the member account's CloudTrail).
    pub session_name: &'a str,
}

/// The SDK configuration for a source's clients: the worker's own configuration in the
/// source's region, with the role's credentials when it has one.
pub async fn source_config(base: &SdkConfig, access: &SourceAccess<'_>) -> SdkConfig {
    let mut builder = base
        .to_builder()
        .region(Region::new(access.region.to_owned()));
    if let Some(role) = access.role {
        let mut provider = AssumeRoleProvider::builder(role)
            .session_name(access.session_name)
            .configure(base);
        if base.region().is_none() {
            provider = provider.region(Region::new(access.region.to_owned()));
        }
        if let Some(external_id) = access.external_id {
            provider = provider.external_id(external_id);
        }
        builder =
            builder.credentials_provider(SharedCredentialsProvider::new(provider.build().await));
    }
    builder.build()
}
