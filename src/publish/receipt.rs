//! Carrying out a plan, and the receipt that says what landed where.

use std::collections::BTreeMap;
use std::sync::Arc;

use tracing::info;

use crate::pipeline::{JobError, JobSuccess};
use crate::progress::{NoProgress, Progress};
use crate::publish::plan::PublishPlan;
use crate::registry::{AccessToken, DeployOutcome, DeployRequest, RegistryClient};

/// One published file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedFile {
    pub target_path: String,
    pub url: String,
    pub size: u64,
    pub sha256: String,
    pub outcome: DeployOutcome,
}

/// What a job published.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Receipt {
    pub files: Vec<PublishedFile>,
}

/// Deploys every item of `plan` in order; stops at the first failure and says how far it got.
pub async fn execute(
    client: &RegistryClient,
    token: &AccessToken,
    plan: &PublishPlan,
) -> Result<Receipt, JobError> {
    execute_with_progress(
        client,
        token,
        plan,
        &(Arc::new(NoProgress) as Arc<dyn Progress>),
    )
    .await
}

/// [`execute`], telling `progress` when each file starts, how its bytes go, and when it is done.
pub async fn execute_with_progress(
    client: &RegistryClient,
    token: &AccessToken,
    plan: &PublishPlan,
    progress: &Arc<dyn Progress>,
) -> Result<Receipt, JobError> {
    let mut receipt = Receipt::default();
    for item in &plan.items {
        progress.start(&item.target_path, item.source.size);
        let request = DeployRequest {
            repo: &plan.repo_key,
            path: &item.target_path,
            file: &item.source.path,
            size: item.source.size,
            checksums: &item.source.checksums,
            properties: &item.properties,
        };
        let outcome = client
            .deploy_with_progress(token, request, Some(progress.clone()))
            .await
            .map_err(|source| JobError::Publish {
                path: item.target_path.clone(),
                published: receipt.files.len(),
                total: plan.items.len(),
                source: Box::new(source),
            })?;
        progress.complete(&item.target_path, item.source.size, outcome);
        let url = client.artifact_url(&plan.repo_key, &item.target_path);
        info!(
            target = %url,
            bytes = item.source.size,
            outcome = ?outcome,
            "published file"
        );
        receipt.files.push(PublishedFile {
            target_path: item.target_path.clone(),
            url,
            size: item.source.size,
            sha256: item.source.checksums.sha256.clone(),
            outcome,
        });
    }
    Ok(receipt)
}

impl Receipt {
    pub fn already_published(&self) -> usize {
        self.files
            .iter()
            .filter(|file| file.outcome == DeployOutcome::AlreadyPublished)
            .count()
    }

    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|file| file.size).sum()
    }

    /// The success result: a summary a person reads in the console, the target path as the
    /// external execution id (the console links it to the repository browser), and output
    /// variables for later stages.
    pub fn to_job_success(&self, client: &RegistryClient, plan: &PublishPlan) -> JobSuccess {
        let location = client.artifact_url(&plan.repo_key, &plan.target_path);
        let already = self.already_published();
        let mut summary = format!(
            "Published {} file{} ({}) to {}/",
            self.files.len(),
            if self.files.len() == 1 { "" } else { "s" },
            human_bytes(self.total_bytes()),
            location.trim_end_matches('/'),
        );
        if already > 0 {
            summary.push_str(&format!(
                "; {already} already published with identical content"
            ));
        }
        let mut output_variables = BTreeMap::new();
        output_variables.insert("RepoKey".to_owned(), plan.repo_key.clone());
        output_variables.insert("TargetPath".to_owned(), plan.target_path.clone());
        output_variables.insert("TargetUrl".to_owned(), location);
        output_variables.insert("PublishedCount".to_owned(), self.files.len().to_string());
        JobSuccess {
            summary,
            external_execution_id: Some(if plan.target_path.is_empty() {
                plan.repo_key.clone()
            } else {
                plan.target_path.clone()
            }),
            output_variables,
        }
    }
}

/// `1.5 MiB`-style sizes for summaries.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn sizes_read_like_a_person_writes_them() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }
}
