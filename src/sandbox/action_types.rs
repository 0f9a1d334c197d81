//! The action types registered with the sandbox, as `CreateCustomActionType` declares them:
//! the console's URL templates (`settings`) and which configuration properties are required or
//! secret. `ListActionTypes` answers from them and the pipeline view renders its links with
//! them.

use serde::{Deserialize, Serialize};

use super::model::ActionTypeId;

/// pipeline-publisher's own action type, as the operator registers it.
const PIPELINE_PUBLISHER_DEFINITION: &str = include_str!("../../action-definition.json");

/// Version 2 of it (`Authentication`; `UserName` and `Password` optional).
const PIPELINE_PUBLISHER_DEFINITION_V2: &str = include_str!("../../action-definition-v2.json");

/// `ActionTypeSettings`: the links CodePipeline's console shows for the action.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionTypeSettings {
    /// `entityUrlTemplate`: the external resource the action works on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity_url_template: Option<String>,
    /// `executionUrlTemplate`: one run of the action in the external system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_url_template: Option<String>,
    /// `revisionUrlTemplate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_url_template: Option<String>,
    /// `thirdPartyConfigurationUrl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub third_party_configuration_url: Option<String>,
}

/// `ActionConfigurationProperty`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigurationProperty {
    pub name: String,
    pub required: bool,
    pub key: bool,
    /// Secret values are never shown by the console nor usable in URL templates.
    pub secret: bool,
    #[serde(default)]
    pub queryable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub property_type: Option<String>,
}

/// `ArtifactDetails`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactDetails {
    pub minimum_count: u32,
    pub maximum_count: u32,
}

/// One registered action type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActionTypeDefinition {
    pub id: ActionTypeId,
    pub settings: ActionTypeSettings,
    pub configuration_properties: Vec<ConfigurationProperty>,
    pub input_artifact_details: ArtifactDetails,
    pub output_artifact_details: ArtifactDetails,
}

/// The body of `CreateCustomActionType` (the shape of `action-definition.json`).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateCustomActionTypeInput {
    category: String,
    provider: String,
    version: String,
    #[serde(default)]
    settings: ActionTypeSettings,
    #[serde(default)]
    configuration_properties: Vec<ConfigurationProperty>,
    input_artifact_details: ArtifactDetails,
    output_artifact_details: ArtifactDetails,
}

/// A `CreateCustomActionType` body the sandbox could not read.
#[derive(Debug, thiserror::Error)]
#[error(
    "the custom action definition is not a valid CreateCustomActionType body; compare it with \
     action-definition.json"
)]
pub struct ActionTypeDefinitionError(#[source] serde_json::Error);

impl ActionTypeDefinition {
    /// Reads a `CreateCustomActionType` body; custom action types are always owned by `Custom`.
    pub fn from_create_custom_action_type(json: &str) -> Result<Self, ActionTypeDefinitionError> {
        let input: CreateCustomActionTypeInput =
            serde_json::from_str(json).map_err(ActionTypeDefinitionError)?;
        Ok(Self {
            id: ActionTypeId {
                category: input.category,
                owner: "Custom".to_owned(),
                provider: input.provider,
                version: input.version,
            },
            settings: input.settings,
            configuration_properties: input.configuration_properties,
            input_artifact_details: input.input_artifact_details,
            output_artifact_details: input.output_artifact_details,
        })
    }

    /// The action type of `action-definition.json`, `Deploy/Custom/Artifactory/1`.
    pub fn pipeline_publisher() -> Result<Self, ActionTypeDefinitionError> {
        Self::from_create_custom_action_type(PIPELINE_PUBLISHER_DEFINITION)
    }

    /// The action type of `action-definition-v2.json`, `Deploy/Custom/Artifactory/2`.
    pub fn pipeline_publisher_v2() -> Result<Self, ActionTypeDefinitionError> {
        Self::from_create_custom_action_type(PIPELINE_PUBLISHER_DEFINITION_V2)
    }

    /// Every version of pipeline-publisher's action type the worker serves by default.
    pub fn pipeline_publisher_versions() -> Result<Vec<Self>, ActionTypeDefinitionError> {
        Ok(vec![
            Self::pipeline_publisher()?,
            Self::pipeline_publisher_v2()?,
        ])
    }

    /// The declared property called `name`.
    pub fn property(&self, name: &str) -> Option<&ConfigurationProperty> {
        self.configuration_properties
            .iter()
            .find(|property| property.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_definition_is_the_default_action_type_with_its_url_templates() {
        let definition = ActionTypeDefinition::pipeline_publisher().unwrap();
        assert_eq!(definition.id, ActionTypeId::default());
        assert_eq!(
            definition.settings.entity_url_template.as_deref(),
            Some("{Config:ArtifactoryHost}/ui/repos/tree/General/{Config:RepoKey}")
        );
        assert_eq!(
            definition.settings.execution_url_template.as_deref(),
            Some("{Config:ArtifactoryHost}/ui/builds/{ExternalExecutionId}")
        );
        let password = definition.property("Password").unwrap();
        assert!(password.secret && password.required);
        assert!(!definition.property("RepoKey").unwrap().secret);
    }
}
