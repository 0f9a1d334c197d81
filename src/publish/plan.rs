//! The publish plan: which extracted file goes to which path of the repository, with which
//! properties. Built before anything is sent, so what will happen can be shown and checked.

use std::collections::BTreeMap;

use crate::artifacts::ExtractedFile;
use crate::pipeline::config::ActionConfig;
use crate::pipeline::job::{Artifact, JobData};

/// One file and where it goes.
#[derive(Debug, Clone)]
pub struct PublishItem {
    pub source: ExtractedFile,
    /// The input artifact the file came from.
    pub artifact_name: String,
    /// Path inside the repository, `/`-separated, unencoded.
    pub target_path: String,
    pub properties: BTreeMap<String, Vec<String>>,
}

/// Everything one job will publish.
#[derive(Debug, Clone)]
pub struct PublishPlan {
    pub repo_key: String,
    /// The common prefix of every target path.
    pub target_path: String,
    pub items: Vec<PublishItem>,
}

impl PublishPlan {
    /// Plans a generic publish: every file keeps its path inside its artifact, under
    /// `TargetPath`; with several input artifacts, each gets its own folder named after it so
    /// their files cannot collide.
    pub fn generic(
        config: &ActionConfig,
        data: &JobData,
        extracted: Vec<(Artifact, Vec<ExtractedFile>)>,
    ) -> Self {
        let several = extracted.len() > 1;
        let mut items = Vec::new();
        for (artifact, files) in extracted {
            let properties = file_properties(config, data, &artifact);
            let prefix = if several {
                join_path(&config.target_path, &artifact.name)
            } else {
                config.target_path.clone()
            };
            for file in files {
                items.push(PublishItem {
                    target_path: join_path(&prefix, &file.relative_path),
                    artifact_name: artifact.name.clone(),
                    properties: properties.clone(),
                    source: file,
                });
            }
        }
        Self {
            repo_key: config.repo_key.clone(),
            target_path: config.target_path.clone(),
            items,
        }
    }

    pub fn total_bytes(&self) -> u64 {
        self.items.iter().map(|item| item.source.size).sum()
    }
}

/// The user's properties plus the traceability properties, which win on a clash so that a
/// release can always be traced back to the execution that produced it.
fn file_properties(
    config: &ActionConfig,
    data: &JobData,
    artifact: &Artifact,
) -> BTreeMap<String, Vec<String>> {
    let mut properties = config.properties.clone();
    let context = &data.pipeline;
    let mut set = |key: &str, value: &str| {
        if !value.is_empty() {
            properties.insert(key.to_owned(), vec![value.to_owned()]);
        }
    };
    set("codepipeline.pipeline", &context.pipeline_name);
    set("codepipeline.stage", &context.stage_name);
    set("codepipeline.action", &context.action_name);
    set("codepipeline.execution", &context.execution_id);
    set("codepipeline.artifact", &artifact.name);
    if let Some(revision) = &artifact.revision {
        set("vcs.revision", revision);
    }
    properties
}

fn join_path(prefix: &str, rest: &str) -> String {
    match (prefix.is_empty(), rest.is_empty()) {
        (true, _) => rest.to_owned(),
        (_, true) => prefix.to_owned(),
        _ => format!("{prefix}/{rest}"),
    }
}
