//! `demo --verbose`: everything, as the demo has always printed it — each job's result with
//! every output variable, the receipt line by line, and every published file with its
//! checksum and properties.

use super::LocalEnvironment;
use super::scenario::{DEMO_REPOSITORIES, DemoJob, DemoOutcome};
use crate::sandbox::{JobResult, StoredObject};

/// The lines printed before the worker starts.
pub fn print_start(environment: &LocalEnvironment, jobs: &[DemoJob]) {
    println!("pipeline-publisher demo");
    println!(
        "  CodePipeline + S3 stand-in: {}",
        environment.sandbox.endpoint_url
    );
    println!(
        "  mock Artifactory registry:  {}",
        environment.registry.base_url
    );
    println!();
    let queued: Vec<String> = jobs
        .iter()
        .map(|job| format!("job {} ({})", job.job_id, job.description))
        .collect();
    println!("Queued {}.", queued.join(", "));
    println!("Running the worker until all four jobs have ended...\n");
}

/// Everything after the worker has ended the jobs.
pub fn print(environment: &LocalEnvironment, outcome: &DemoOutcome) -> anyhow::Result<()> {
    for (job, record) in &outcome.jobs {
        println!("{} ({}):", job.label, job.job_id);
        match record.results.first() {
            Some(JobResult::Success {
                summary,
                external_execution_id,
                output_variables,
                ..
            }) => {
                println!(
                    "  PutJobSuccessResult: {}",
                    summary.as_deref().unwrap_or("")
                );
                println!(
                    "  externalExecutionId: {}",
                    external_execution_id.as_deref().unwrap_or("-")
                );
                for (name, value) in output_variables {
                    println!("  output variable {name} = {value}");
                }
            }
            Some(JobResult::Failure {
                failure_type,
                message,
                ..
            }) => {
                println!("  PutJobFailureResult ({failure_type}):");
                for line in message.lines() {
                    println!("    {line}");
                }
            }
            None => println!("  no result was reported"),
        }
        println!();
    }

    print_receipt(outcome.receipt.as_ref())?;

    println!("Published to {}:", environment.registry.base_url);
    for artifact in DEMO_REPOSITORIES
        .iter()
        .flat_map(|repo| environment.registry.registry.artifacts(repo))
    {
        println!(
            "  {}/artifactory/{}/{}",
            environment.registry.base_url, artifact.repo, artifact.path
        );
        println!(
            "    size {} bytes, sha256 {}",
            artifact.size, artifact.sha256
        );
        let properties: Vec<String> = artifact
            .properties
            .iter()
            .map(|(key, values)| format!("{key}={}", values.join(",")))
            .collect();
        println!("    properties: {}", properties.join("; "));
    }
    let tokens = environment.registry.registry.tokens();
    println!(
        "\nRegistry tokens minted: {}, revoked: {} (passwords, where a job had one, only minted them).",
        tokens.len(),
        tokens.iter().filter(|token| token.revoked).count()
    );
    Ok(())
}

/// Prints what the camera-agent job's `publish-receipt.json` says, one line per file.
fn print_receipt(object: Option<&StoredObject>) -> anyhow::Result<()> {
    let Some(object) = object else {
        println!("Job 3 wrote no publish-receipt.json.\n");
        return Ok(());
    };
    let receipt = super::short_report::read_receipt(object)?;
    println!(
        "Job 3's publish-receipt.json (output artifact, {} with key {}):",
        object.sse.as_deref().unwrap_or("no encryption"),
        object.kms_key_id.as_deref().unwrap_or("-")
    );
    for file in receipt["files"].as_array().into_iter().flatten() {
        let package = match &file["package"] {
            serde_json::Value::Object(package) => format!(
                "{} {}",
                package["name"].as_str().unwrap_or(""),
                package["version"].as_str().unwrap_or("")
            ),
            _ => file["sourcePath"].as_str().unwrap_or("").to_owned(),
        };
        println!(
            "  {:<8} {:<40} {} ({})",
            file["format"].as_str().unwrap_or(""),
            package,
            file["targetUrl"].as_str().unwrap_or(""),
            file["outcome"].as_str().unwrap_or("")
        );
    }
    println!();
    Ok(())
}
