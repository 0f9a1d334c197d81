//! The success result: a summary a person reads in the console, the build as the external
//! execution id (the console links it to the build in the registry's UI), and output
//! variables for later stages.

use std::collections::BTreeMap;

use crate::pipeline::JobSuccess;
use crate::publish::formats::{Format, file_name};
use crate::publish::plan::PublishPlan;
use crate::publish::receipt::{Receipt, human_bytes};
use crate::registry::RegistryClient;
use crate::registry::paths::encode_segment;

/// File names that make a generic file "the firmware image" for the output variables.
const FIRMWARE_SUFFIXES: &[&str] = &[".img", ".img.gz", ".img.xz", ".img.zst"];

/// Builds the success result of a publish; `build_started_millis` is the start of the build
/// info that was published, `None` when the registry had no build-info API.
pub fn job_success(
    receipt: &Receipt,
    client: &RegistryClient,
    plan: &PublishPlan,
    build_started_millis: Option<i128>,
) -> JobSuccess {
    let location = client.artifact_url(&plan.repo_key, &plan.target_path);
    let mut summary = format!(
        "Published {} file{} ({}) to {}/",
        receipt.files.len(),
        if receipt.files.len() == 1 { "" } else { "s" },
        human_bytes(receipt.total_bytes()),
        location.trim_end_matches('/'),
    );
    let mut output_variables = BTreeMap::new();
    for (format, prefix) in [
        (Format::Npm, "Npm"),
        (Format::Debian, "Debian"),
        (Format::Pypi, "Pypi"),
    ] {
        let mut packages: Vec<String> = Vec::new();
        let mut versions: Vec<String> = Vec::new();
        for file in receipt.files.iter().filter(|file| file.format == format) {
            if let Some((name, version)) = &file.package {
                if !packages.contains(name) {
                    packages.push(name.clone());
                }
                if !versions.contains(version) {
                    versions.push(version.clone());
                }
                summary.push_str(&format!("; {} {name} {version}", format.as_str()));
            }
        }
        if !packages.is_empty() {
            output_variables.insert(format!("{prefix}Package"), packages.join(","));
            output_variables.insert(format!("{prefix}Version"), versions.join(","));
        }
    }
    let already = receipt.already_published();
    if already > 0 {
        summary.push_str(&format!(
            "; {already} already published with identical content"
        ));
    }
    match build_started_millis {
        Some(_) => summary.push_str(&format!(
            "; build info {}/{}",
            plan.build.name, plan.build.number
        )),
        None => summary.push_str("; build info not published: the registry has no build-info API"),
    }
    if let Some(firmware) = receipt.files.iter().find(|file| {
        file.format == Format::Generic
            && FIRMWARE_SUFFIXES
                .iter()
                .any(|suffix| file_name(&file.target_path).ends_with(suffix))
    }) {
        output_variables.insert("FirmwareUrl".to_owned(), firmware.url.clone());
        output_variables.insert(
            "FirmwareSha256".to_owned(),
            firmware.checksums.sha256.clone(),
        );
    }
    output_variables.insert("RepoKey".to_owned(), plan.repo_key.clone());
    output_variables.insert("TargetPath".to_owned(), plan.target_path.clone());
    output_variables.insert("TargetUrl".to_owned(), location);
    output_variables.insert("PublishedCount".to_owned(), receipt.files.len().to_string());
    output_variables.insert("BuildName".to_owned(), plan.build.name.clone());
    output_variables.insert("BuildNumber".to_owned(), plan.build.number.clone());
    JobSuccess {
        summary,
        external_execution_id: Some(match build_started_millis {
            Some(started_millis) => build_ui_path(plan, started_millis),
            None if plan.target_path.is_empty() => plan.repo_key.clone(),
            None => plan.target_path.clone(),
        }),
        output_variables,
    }
}

/// The build's page in Artifactory's UI, relative to `{host}/ui/builds/` (the action type's
/// `executionUrlTemplate` is `{Config:ArtifactoryHost}/ui/builds/{ExternalExecutionId}`):
/// `{name}/{number}/{started, epoch millis}/published?buildRepo=artifactory-build-info`, the
/// shape the JFrog CLI prints after publishing build info.
pub fn build_ui_path(plan: &PublishPlan, started_millis: i128) -> String {
    format!(
        "{}/{}/{started_millis}/published?buildRepo=artifactory-build-info",
        encode_segment(&plan.build.name),
        encode_segment(&plan.build.number)
    )
}
