//! `ListActionTypes` for `pipeline-publisher check` (read-only; lists the action types the
//! sandbox knows, filtered by owner), in front of the job-worker operations in `job_ops`.

use serde::Deserialize;
use serde_json::{Value, json};

use super::Sandbox;
use super::job_api::ApiError;
use super::job_ops;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListActionTypesInput {
    action_owner_filter: Option<String>,
}

/// Answers `ListActionTypes`; every other operation goes to [`job_ops::dispatch`].
pub(crate) fn dispatch(sandbox: &Sandbox, operation: &str, body: &[u8]) -> Result<Value, ApiError> {
    if operation != "ListActionTypes" {
        return job_ops::dispatch(sandbox, operation, body);
    }
    let input: ListActionTypesInput = serde_json::from_slice(body).map_err(|error| {
        ApiError::new(
            "SerializationException",
            format!("Malformed request: {error}"),
        )
    })?;
    let mut action_types: Vec<_> = sandbox
        .inner
        .state()
        .action_types
        .iter()
        .filter(|id| {
            input
                .action_owner_filter
                .as_ref()
                .is_none_or(|owner| &id.owner == owner)
        })
        .cloned()
        .collect();
    action_types.sort_by(|a, b| {
        (&a.category, &a.provider, &a.version).cmp(&(&b.category, &b.provider, &b.version))
    });
    let action_types: Vec<Value> = action_types
        .into_iter()
        .map(|id| {
            json!({
                "id": {
                    "category": id.category,
                    "owner": id.owner,
                    "provider": id.provider,
                    "version": id.version,
                },
                "settings": {},
                "actionConfigurationProperties": [],
                "inputArtifactDetails": { "minimumCount": 1, "maximumCount": 5 },
                "outputArtifactDetails": { "minimumCount": 0, "maximumCount": 0 },
            })
        })
        .collect();
    Ok(json!({ "actionTypes": action_types }))
}
