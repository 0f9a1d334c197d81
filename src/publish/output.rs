//! `publish-receipt.json`: what a job published, zipped into its output artifact so that later
//! stages (and people) can read exactly which file went where, with which checksums.

use std::io::Write;

use serde_json::{Value, json};

use crate::pipeline::job::JobData;
use crate::publish::plan::PublishPlan;
use crate::publish::receipt::Receipt;
use crate::registry::{DeployOutcome, RegistryClient};

/// The receipt's file name inside the output artifact.
pub const RECEIPT_FILE: &str = "publish-receipt.json";

/// The receipt document.
pub fn receipt_json(
    plan: &PublishPlan,
    receipt: &Receipt,
    data: &JobData,
    client: &RegistryClient,
) -> Value {
    let files: Vec<Value> = receipt
        .files
        .iter()
        .map(|file| {
            json!({
                "artifact": file.artifact_name,
                "sourcePath": file.source_path,
                "repo": file.repo,
                "targetPath": file.target_path,
                "targetUrl": file.url,
                "size": file.size,
                "sha1": file.checksums.sha1,
                "sha256": file.checksums.sha256,
                "md5": file.checksums.md5,
                "format": file.format.as_str(),
                "package": file.package.as_ref().map(|(name, version)| json!({ "name": name, "version": version })),
                "outcome": match file.outcome {
                    DeployOutcome::Uploaded => "uploaded",
                    DeployOutcome::ChecksumDeployed => "checksum-deployed",
                    DeployOutcome::AlreadyPublished => "already-published",
                },
            })
        })
        .collect();
    json!({
        "pipeline": data.pipeline.pipeline_name,
        "executionId": data.pipeline.execution_id,
        "registry": client.base().as_str().trim_end_matches('/'),
        "repoKey": plan.repo_key,
        "buildName": plan.build.name,
        "buildNumber": plan.build.number,
        "files": files,
    })
}

/// A zip holding `publish-receipt.json`, as CodePipeline artifacts are zips.
pub fn zip_receipt(receipt: &Value) -> Result<Vec<u8>, std::io::Error> {
    let mut text = serde_json::to_vec_pretty(receipt).map_err(std::io::Error::other)?;
    text.push(b'\n');
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    writer
        .start_file(RECEIPT_FILE, options)
        .map_err(std::io::Error::other)?;
    writer.write_all(&text)?;
    Ok(writer.finish().map_err(std::io::Error::other)?.into_inner())
}
