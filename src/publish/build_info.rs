//! The build info a job publishes: one build per pipeline execution (name = the pipeline, or
//! `settings.buildName`; number = the execution id), one module per input artifact listing
//! every file published from it with its checksums.

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::format_description;

use crate::pipeline::job::JobData;
use crate::publish::formats::file_name;
use crate::publish::plan::PublishPlan;
use crate::publish::receipt::Receipt;

/// Build info's timestamp format: `2026-11-26T09:13:04.174+0000`, always UTC.
pub fn build_timestamp(at: OffsetDateTime) -> String {
    let format = format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]+0000"
    );
    at.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .unwrap_or_else(|_| at.unix_timestamp().to_string())
}

/// The build-info document for a finished publish.
pub fn document(
    plan: &PublishPlan,
    receipt: &Receipt,
    data: &JobData,
    started: OffsetDateTime,
    finished: OffsetDateTime,
) -> Value {
    let context = &data.pipeline;
    let mut revisions: Vec<&str> = data
        .input_artifacts
        .iter()
        .filter_map(|artifact| artifact.revision.as_deref())
        .collect();
    revisions.dedup();
    let modules: Vec<Value> = plan
        .artifacts
        .iter()
        .map(|artifact| {
            let artifacts: Vec<Value> = receipt
                .files
                .iter()
                .filter(|file| &file.artifact_name == artifact)
                .map(|file| {
                    let name = file_name(&file.target_path);
                    json!({
                        "type": artifact_type(name),
                        "name": name,
                        "path": file.target_path,
                        "originalDeploymentRepo": file.repo,
                        "sha1": file.checksums.sha1,
                        "sha256": file.checksums.sha256,
                        "md5": file.checksums.md5,
                    })
                })
                .collect();
            json!({ "id": artifact, "type": "generic", "artifacts": artifacts })
        })
        .collect();
    let mut properties = serde_json::Map::new();
    for (key, value) in [
        (
            "codepipeline.pipeline",
            Some(context.pipeline_name.as_str()),
        ),
        ("codepipeline.stage", Some(context.stage_name.as_str())),
        ("codepipeline.action", Some(context.action_name.as_str())),
        (
            "codepipeline.execution",
            Some(context.execution_id.as_str()),
        ),
        ("codepipeline.pipelineArn", context.pipeline_arn.as_deref()),
    ] {
        if let Some(value) = value.filter(|value| !value.is_empty()) {
            properties.insert(key.to_owned(), json!(value));
        }
    }
    let mut document = json!({
        "version": "1.0.1",
        "name": plan.build.name,
        "number": plan.build.number,
        "type": "GENERIC",
        "started": build_timestamp(started),
        "durationMillis": (finished - started).whole_milliseconds().max(0) as u64,
        "agent": { "name": "pipeline-publisher", "version": env!("CARGO_PKG_VERSION") },
        "buildAgent": { "name": "AWS CodePipeline", "version": data.action_type.version },
        "vcs": revisions.iter().map(|revision| json!({ "revision": revision })).collect::<Vec<_>>(),
        "properties": properties,
        "modules": modules,
    });
    if let Some(region) = context.region() {
        document["url"] = json!(format!(
            "https://{region}.console.aws.amazon.com/codesuite/codepipeline/pipelines/{}/executions/{}/timeline?region={region}",
            context.pipeline_name, context.execution_id
        ));
    }
    document
}

/// Build info's artifact type is the file's extension (`tgz`, `deb`, `whl`, `img`).
fn artifact_type(name: &str) -> &str {
    match name.rsplit_once('.') {
        Some((_, extension)) if !extension.is_empty() => extension,
        _ => "file",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_use_build_infos_format() {
        let at = OffsetDateTime::from_unix_timestamp_nanos(1_795_684_384_174_000_000).unwrap();
        assert_eq!(build_timestamp(at), "2026-11-26T09:13:04.174+0000");
    }
}
