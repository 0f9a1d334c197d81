//! Placing one detected file: its repository and path (the format's layout, `TargetPath`, or
//! a file-spec entry's `repository/path` target), its dist-tag or Debian distribution, and its
//! properties — the user's, the entry's, and the traceability ones, which win.

use std::collections::BTreeMap;

use crate::pipeline::config::{ActionConfig, TargetPathError, expand_target_path};
use crate::pipeline::job::{Artifact, JobData};
use crate::publish::detect::Candidate;
use crate::publish::formats::npm::{self as npm_format, DistTagError};
use crate::publish::formats::{debian, file_name};
use crate::publish::pattern::fill_captures;
use crate::publish::plan::{BuildIdentity, NpmOptions, Package, PlanError, PublishItem};
use crate::publish::spec::{SpecEntry, SpecSettings};

/// Why a file cannot be placed in the repository: always the configuration's or the spec's.
#[derive(Debug, thiserror::Error)]
pub enum PlacementError {
    #[error(
        "the spec's target `{target}` must start with a repository key, as in JFrog CLI: \
         `firmware-local/nestbox-cam/` (or just `npm-local` for npm and PyPI)"
    )]
    NoRepository { target: String },
    #[error(
        "a Debian package needs a distribution: set \"settings\": {{\"debianDistribution\": \
         \"bookworm\"}} in the file spec, or deb.distribution=bookworm in Properties"
    )]
    NoDistribution,
    #[error(
        "npm and PyPI registries decide where a package goes; give only the repository as the \
         spec's target (`{repo}`), not a path"
    )]
    PathForRegistryFormat { repo: String },
    #[error(transparent)]
    DistTag(#[from] DistTagError),
    #[error("its target cannot be used; fix the spec entry's \"target\"")]
    Target(#[source] TargetPathError),
}

/// Places the files of one input artifact.
pub(crate) struct Planner<'a> {
    pub(crate) config: &'a ActionConfig,
    pub(crate) data: &'a JobData,
    pub(crate) settings: &'a SpecSettings,
    pub(crate) build: &'a BuildIdentity,
    pub(crate) artifact: &'a Artifact,
    /// `TargetPath`, plus the artifact's name when there are several.
    pub(crate) prefix: String,
}

/// A spec entry's repository, and the path template inside it (`None`: the format's layout).
type RepositoryTarget = (String, Option<String>);

impl Planner<'_> {
    pub(crate) fn item(
        &self,
        candidate: Candidate,
        entry: Option<&SpecEntry>,
    ) -> Result<PublishItem, PlanError> {
        let source_path = candidate.source.relative_path.clone();
        let wrap = |problem: PlacementError| PlanError::new(&source_path, problem);
        let mut properties = self.config.properties.clone();
        if let Some(entry) = entry {
            for (key, values) in &entry.props {
                properties.insert(key.clone(), values.clone());
            }
        }
        let name = file_name(&source_path).to_owned();
        let (repo, path_template) = self.repository(entry).map_err(wrap)?;
        let mut npm = None;
        let target_path = match &candidate.package {
            Package::Generic => self
                .target(path_template.as_deref(), entry, &candidate, &source_path)
                .map_err(wrap)?,
            Package::Debian(control) => {
                let single = |key: &str| {
                    properties
                        .get(key)
                        .and_then(|values| values.first())
                        .cloned()
                };
                let distribution = single("deb.distribution")
                    .or_else(|| self.settings.debian_distribution.clone())
                    .ok_or_else(|| wrap(PlacementError::NoDistribution))?;
                let component = single("deb.component")
                    .or_else(|| self.settings.debian_component.clone())
                    .unwrap_or_else(|| "main".to_owned());
                properties.insert("deb.distribution".into(), vec![distribution]);
                properties.insert("deb.component".into(), vec![component.clone()]);
                properties.insert(
                    "deb.architecture".into(),
                    vec![control.architecture.clone()],
                );
                match path_template.as_deref() {
                    Some(template) => self
                        .target(Some(template), entry, &candidate, &source_path)
                        .map_err(wrap)?,
                    None => debian::pool_path(&component, &control.package, &name),
                }
            }
            Package::Npm(_) | Package::Pypi(_)
                if path_template
                    .as_deref()
                    .is_some_and(|path| !path.is_empty()) =>
            {
                return Err(wrap(PlacementError::PathForRegistryFormat { repo }));
            }
            Package::Npm(manifest) => {
                let tag = npm_format::dist_tag(manifest, self.settings.npm_tag.as_deref())
                    .map_err(|error| wrap(error.into()))?;
                npm = Some(NpmOptions {
                    tag,
                    access: self.settings.npm_access.clone(),
                    sha512_base64: candidate.sha512_base64.clone().unwrap_or_default(),
                });
                format!("{}/-/{}", manifest.name, manifest.tarball_name())
            }
            Package::Pypi(dist) => format!("{}/{}/{}", dist.normalized_name(), dist.version, name),
        };
        self.add_traceability(&mut properties);
        Ok(PublishItem {
            source: candidate.source,
            artifact_name: self.artifact.name.clone(),
            package: candidate.package,
            npm,
            repo,
            target_path,
            properties,
        })
    }

    /// The repository and path template of a spec entry's `repository/path` target; without
    /// one, `RepoKey` and no template (the default layout of the format).
    fn repository(&self, entry: Option<&SpecEntry>) -> Result<RepositoryTarget, PlacementError> {
        let Some(target) = entry.and_then(|entry| entry.target.as_deref()) else {
            return Ok((self.config.repo_key.clone(), None));
        };
        let (repo, path) = target
            .trim_start_matches('/')
            .split_once('/')
            .unwrap_or((target, ""));
        let valid = !repo.is_empty()
            && !repo.starts_with('.')
            && repo
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid {
            return Err(PlacementError::NoRepository {
                target: target.to_owned(),
            });
        }
        // `repo/` is the repository's root: an empty template, unlike no template at all.
        Ok((
            repo.to_owned(),
            target.contains('/').then(|| path.to_owned()),
        ))
    }

    /// A generic target: the spec entry's path `template` (captures and placeholders filled;
    /// a trailing `/` makes it a folder), else `TargetPath` + the file's path.
    fn target(
        &self,
        template: Option<&str>,
        entry: Option<&SpecEntry>,
        candidate: &Candidate,
        source_path: &str,
    ) -> Result<String, PlacementError> {
        let flat = entry.is_some_and(|entry| entry.flat);
        let tail = if flat {
            file_name(source_path)
        } else {
            source_path
        };
        let Some(template) = template else {
            return Ok(join_path(&self.prefix, tail));
        };
        let filled = fill_captures(template, &candidate.captures);
        let expanded = expand_target_path(&filled, self.data).map_err(PlacementError::Target)?;
        Ok(if filled.ends_with('/') || filled.is_empty() {
            join_path(&expanded, tail)
        } else {
            expanded
        })
    }

    /// The traceability properties, which win on a clash so that a release can always be
    /// traced back to the execution that produced it.
    fn add_traceability(&self, properties: &mut BTreeMap<String, Vec<String>>) {
        let context = &self.data.pipeline;
        let mut set = |key: &str, value: &str| {
            if !value.is_empty() {
                properties.insert(key.to_owned(), vec![value.to_owned()]);
            }
        };
        set("codepipeline.pipeline", &context.pipeline_name);
        set("codepipeline.stage", &context.stage_name);
        set("codepipeline.action", &context.action_name);
        set("codepipeline.execution", &context.execution_id);
        set("codepipeline.artifact", &self.artifact.name);
        if let Some(revision) = &self.artifact.revision {
            set("vcs.revision", revision);
        }
        set("build.name", &self.build.name);
        set("build.number", &self.build.number);
    }
}

pub(crate) fn join_path(prefix: &str, rest: &str) -> String {
    match (prefix.is_empty(), rest.is_empty()) {
        (true, _) => rest.to_owned(),
        (_, true) => prefix.to_owned(),
        _ => format!("{prefix}/{rest}"),
    }
}
