//! The custom action's configuration properties, declared once.
//!
//! `action-definition.json`, `cloudformation/custom-action.yaml` and the parser in
//! [`crate::pipeline::config`] must agree on these; tests compare all three against this table, so
//! adding a property here without declaring it there (or the reverse) fails the build.

/// One configuration property of the `Deploy / Custom / Artifactory / 1` action type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PropertySpec {
    /// The property name as it appears in the job's `actionConfiguration.configuration` map.
    pub name: &'static str,
    /// Whether CodePipeline refuses to save a pipeline without it.
    pub required: bool,
    /// Secret properties are masked everywhere except `PollForJobs` / `GetJobDetails`.
    pub secret: bool,
    /// Key properties identify the action's target; CodePipeline shows them in the console.
    pub key: bool,
    /// Shown in the console next to the field; at most 160 characters.
    pub description: &'static str,
}

pub const ARTIFACTORY_HOST: &str = "ArtifactoryHost";
pub const REPO_KEY: &str = "RepoKey";
pub const USER_NAME: &str = "UserName";
pub const PASSWORD: &str = "Password";
pub const TYPE_OF_ARTIFACT: &str = "TypeOfArtifact";
pub const EMAIL_ADDRESS: &str = "EmailAddress";
pub const TARGET_PATH: &str = "TargetPath";
pub const PROPERTIES: &str = "Properties";
pub const PUBLISH_SPEC: &str = "PublishSpec";
/// Version 2 only: how the worker gets its registry token (see [`crate::pipeline::config::Authentication`]).
pub const AUTHENTICATION: &str = "Authentication";

/// Every property of action type version 1, in the order the console shows them.
pub const ACTION_PROPERTIES: &[PropertySpec] = &[
    PropertySpec {
        name: ARTIFACTORY_HOST,
        required: true,
        secret: false,
        key: true,
        description: "Base URL of the Artifactory-compatible registry, e.g. https://acme.jfrog.io",
    },
    PropertySpec {
        name: REPO_KEY,
        required: true,
        secret: false,
        key: true,
        description: "Key of the repository to publish to, e.g. firmware-releases",
    },
    PropertySpec {
        name: USER_NAME,
        required: true,
        secret: false,
        key: false,
        description: "Registry user whose password is exchanged for a short-lived publish token",
    },
    PropertySpec {
        name: PASSWORD,
        required: true,
        secret: true,
        key: false,
        description: "Password or API key of UserName; used only to mint a short-lived token",
    },
    PropertySpec {
        name: TYPE_OF_ARTIFACT,
        required: false,
        secret: false,
        key: false,
        description: "Package format: generic (default), npm, debian, pypi or auto",
    },
    PropertySpec {
        name: EMAIL_ADDRESS,
        required: false,
        secret: false,
        key: false,
        description: "Contact address recorded with published packages",
    },
    PropertySpec {
        name: TARGET_PATH,
        required: false,
        secret: false,
        key: false,
        description: "Path inside the repository; may use {PipelineName} {ExecutionId} {Revision} {ShortRevision}. Default {PipelineName}/{ExecutionId}",
    },
    PropertySpec {
        name: PROPERTIES,
        required: false,
        secret: false,
        key: false,
        description: "Extra properties for every deployed file: key=value;key2=value2",
    },
    PropertySpec {
        name: PUBLISH_SPEC,
        required: false,
        secret: false,
        key: false,
        description: "File spec in the artifact choosing files, targets, types and settings (npm tag, Debian distribution, build name). Default publish-spec.json",
    },
];

/// Version 2: version 1's properties with `UserName` and `Password` optional (only the
/// `password` mode uses them), then `Authentication`. Ten, CodePipeline's limit.
pub const ACTION_PROPERTIES_V2: &[PropertySpec] = &[
    ACTION_PROPERTIES[0],
    ACTION_PROPERTIES[1],
    PropertySpec {
        name: USER_NAME,
        required: false,
        secret: false,
        key: false,
        description: "Registry user, only with Authentication password: its password is exchanged for a short-lived token",
    },
    PropertySpec {
        name: PASSWORD,
        required: false,
        secret: true,
        key: false,
        description: "Password or API key of UserName, only with Authentication password; used only to mint a short-lived token",
    },
    ACTION_PROPERTIES[4],
    ACTION_PROPERTIES[5],
    ACTION_PROPERTIES[6],
    ACTION_PROPERTIES[7],
    ACTION_PROPERTIES[8],
    PropertySpec {
        name: AUTHENTICATION,
        required: false,
        secret: false,
        key: false,
        description: "password (default), aws-iam, oidc:<provider>, secretsmanager:<secret>, ssm:<parameter>; the worker's fleet must allow the host",
    },
];

/// The properties of the action type `version` (`1` or `2`; later versions are 2's).
pub fn properties_of_version(version: &str) -> &'static [PropertySpec] {
    if version == "1" {
        ACTION_PROPERTIES
    } else {
        ACTION_PROPERTIES_V2
    }
}

/// Looks a property up by name, in the newest version (which has every property).
pub fn property(name: &str) -> Option<&'static PropertySpec> {
    ACTION_PROPERTIES_V2.iter().find(|spec| spec.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_fit_the_console_limit_and_names_are_unique() {
        for properties in [ACTION_PROPERTIES, ACTION_PROPERTIES_V2] {
            assert!(
                properties.len() <= 10,
                "CodePipeline allows at most 10 properties"
            );
            for spec in properties {
                assert!(
                    spec.description.chars().count() <= 160,
                    "{} description is too long",
                    spec.name
                );
                assert_eq!(property(spec.name).map(|found| found.name), Some(spec.name));
            }
        }
        assert_eq!(ACTION_PROPERTIES_V2.len(), ACTION_PROPERTIES.len() + 1);
    }
}
