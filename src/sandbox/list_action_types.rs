//! `ListActionTypes` for `pipeline-publisher check` (read-only; lists the action types the
//! sandbox knows, filtered by owner, with the settings and properties they were registered
//! with), in front of the job-worker operations in `job_ops`.

use serde::Deserialize;
use serde_json::{Value, json};

use super::Sandbox;
use super::fleet::Caller;
use super::job_api::ApiError;
use super::job_ops;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListActionTypesInput {
    action_owner_filter: Option<String>,
}

/// Answers `ListActionTypes`; every other operation goes to [`job_ops::dispatch`].
pub(crate) fn dispatch(
    sandbox: &Sandbox,
    caller: &Caller,
    operation: &str,
    body: &[u8],
) -> Result<Value, ApiError> {
    if operation != "ListActionTypes" {
        return job_ops::dispatch(sandbox, caller, operation, body);
    }
    let input: ListActionTypesInput = serde_json::from_slice(body).map_err(|error| {
        ApiError::new(
            "SerializationException",
            format!("Malformed request: {error}"),
        )
    })?;
    let state = sandbox.inner.state();
    let mut action_types: Vec<_> = state
        .action_types
        .iter()
        .filter(|id| state.action_type_exists(&caller.account_id, &caller.region, id))
        .filter(|id| {
            input
                .action_owner_filter
                .as_ref()
                .is_none_or(|owner| &id.owner == owner)
        })
        .collect();
    action_types.sort_by(|a, b| {
        (&a.category, &a.provider, &a.version).cmp(&(&b.category, &b.provider, &b.version))
    });
    let action_types: Vec<Value> = action_types
        .into_iter()
        .map(|id| {
            let definition = state.action_type_definitions.get(id);
            let (settings, properties, input, output) = match definition {
                Some(definition) => (
                    json!(definition.settings),
                    json!(definition.configuration_properties),
                    json!(definition.input_artifact_details),
                    json!(definition.output_artifact_details),
                ),
                // Action types only ever polled for, never registered with a definition.
                None => (
                    json!({}),
                    json!([]),
                    json!({ "minimumCount": 1, "maximumCount": 5 }),
                    json!({ "minimumCount": 0, "maximumCount": 0 }),
                ),
            };
            json!({
                "id": {
                    "category": id.category,
                    "owner": id.owner,
                    "provider": id.provider,
                    "version": id.version,
                },
                "settings": settings,
                "actionConfigurationProperties": properties,
                "inputArtifactDetails": input,
                "outputArtifactDetails": output,
            })
        })
        .collect();
    Ok(json!({ "actionTypes": action_types }))
}
