//! The publish plan: which file goes to which path of the repository, as which format, with
//! which properties. Built before anything is sent (configuration and package problems surface
//! before a token is minted), so what will happen can be shown and checked.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::artifacts::ExtractedFile;
use crate::pipeline::config::{ActionConfig, expand_target_path};
use crate::pipeline::job::{Artifact, JobData};
use crate::publish::detect::{self, Candidate, Selection};
use crate::publish::formats::debian::{self, DebianControl};
use crate::publish::formats::npm::{self as npm_format, NpmManifest};
use crate::publish::formats::pypi::PythonDistribution;
use crate::publish::formats::{Format, file_name};
use crate::publish::pattern::fill_captures;
use crate::publish::spec::{self, SpecEntry, SpecSettings};

/// What a file is, with what its format needs to be published.
#[derive(Debug, Clone, PartialEq)]
pub enum Package {
    Generic,
    Npm(NpmManifest),
    Debian(DebianControl),
    Pypi(PythonDistribution),
}

impl Package {
    pub fn format(&self) -> Format {
        match self {
            Package::Generic => Format::Generic,
            Package::Npm(_) => Format::Npm,
            Package::Debian(_) => Format::Debian,
            Package::Pypi(_) => Format::Pypi,
        }
    }

    /// `(name, version)` of a package; `None` for a generic file.
    pub fn name_and_version(&self) -> Option<(&str, &str)> {
        match self {
            Package::Generic => None,
            Package::Npm(manifest) => Some((&manifest.name, &manifest.version)),
            Package::Debian(control) => Some((&control.package, &control.version)),
            Package::Pypi(dist) => Some((&dist.name, &dist.version)),
        }
    }
}

/// How an npm package is published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpmOptions {
    pub tag: String,
    pub access: Option<String>,
    /// Standard base64 sha512 of the tarball, for `dist.integrity`.
    pub sha512_base64: String,
}

/// One file and where it goes.
#[derive(Debug, Clone)]
pub struct PublishItem {
    /// The bytes to send (for a packed npm directory: the tarball made from it).
    pub source: ExtractedFile,
    /// The input artifact the file came from.
    pub artifact_name: String,
    pub package: Package,
    /// Set for npm packages.
    pub npm: Option<NpmOptions>,
    /// The repository: `RepoKey`, or the first segment of a file-spec entry's target.
    pub repo: String,
    /// Path inside the repository, `/`-separated, unencoded. For npm and PyPI this is where
    /// the registry is expected to store the file; the receipt records where it did.
    pub target_path: String,
    pub properties: BTreeMap<String, Vec<String>>,
}

/// The build-info identity of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildIdentity {
    pub name: String,
    pub number: String,
}

/// Everything one job will publish.
#[derive(Debug, Clone)]
pub struct PublishPlan {
    pub repo_key: String,
    /// The common prefix of generic target paths.
    pub target_path: String,
    pub build: BuildIdentity,
    /// The input artifacts, in order (one build-info module each).
    pub artifacts: Vec<String>,
    pub items: Vec<PublishItem>,
}

/// An input artifact after extraction.
#[derive(Debug, Clone)]
pub struct ExtractedArtifact {
    pub artifact: Artifact,
    /// Where it was extracted.
    pub root: PathBuf,
    pub files: Vec<ExtractedFile>,
}

/// Why a plan could not be made: one file, one problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{file}`: {problem}")]
pub struct PlanError {
    /// Path inside the artifact (or the spec's path).
    pub file: String,
    pub problem: String,
}

impl PublishPlan {
    /// Plans a job: per artifact, its file spec when it has one, else `TypeOfArtifact`.
    /// `pack_dir` receives tarballs packed from npm package directories. Blocking.
    pub fn build(
        config: &ActionConfig,
        data: &JobData,
        extracted: &[ExtractedArtifact],
        pack_dir: &Path,
    ) -> Result<Self, (String, PlanError)> {
        let mut specs = Vec::new();
        for input in extracted {
            let spec_file = input
                .files
                .iter()
                .find(|file| file.relative_path == config.publish_spec);
            let spec = match spec_file {
                Some(file) => Some(spec::read(&file.path).map_err(|problem| {
                    (
                        input.artifact.name.clone(),
                        PlanError {
                            file: file.relative_path.clone(),
                            problem,
                        },
                    )
                })?),
                None => None,
            };
            specs.push(spec);
        }
        let settings = merged_settings(&specs, extracted)?;
        let build = BuildIdentity {
            name: settings
                .build_name
                .clone()
                .unwrap_or_else(|| data.pipeline.pipeline_name.clone()),
            number: data.pipeline.execution_id.clone(),
        };
        let several = extracted.len() > 1;
        let mut items = Vec::new();
        for (input, spec) in extracted.iter().zip(&specs) {
            let planner = Planner {
                config,
                data,
                settings: &settings,
                build: &build,
                artifact: &input.artifact,
                prefix: if several {
                    join_path(&config.target_path, &input.artifact.name)
                } else {
                    config.target_path.clone()
                },
            };
            let fail = |(file, problem): (String, String)| {
                (input.artifact.name.clone(), PlanError { file, problem })
            };
            let files: Vec<&ExtractedFile> = input
                .files
                .iter()
                .filter(|file| spec.is_none() || file.relative_path != config.publish_spec)
                .collect();
            match spec {
                None => {
                    let selection = Selection {
                        root: &input.root,
                        pack_dir,
                        files: files.iter().map(|file| (*file, Vec::new())).collect(),
                    };
                    for candidate in
                        detect::classify(config.artifact_type, selection).map_err(fail)?
                    {
                        items.push(planner.item(candidate, None).map_err(fail)?);
                    }
                }
                Some(spec) => {
                    for entry in &spec.entries {
                        let matched: Vec<_> = files
                            .iter()
                            .filter_map(|file| {
                                entry
                                    .captures(&file.relative_path)
                                    .map(|captures| (*file, captures))
                            })
                            .collect();
                        if matched.is_empty() {
                            return Err(fail((
                                config.publish_spec.clone(),
                                format!(
                                    "pattern `{}` matches no file of the artifact",
                                    entry.pattern_text
                                ),
                            )));
                        }
                        let selection = Selection {
                            root: &input.root,
                            pack_dir,
                            files: matched,
                        };
                        let kind = entry.kind.unwrap_or(config.artifact_type);
                        for candidate in detect::classify(kind, selection).map_err(fail)? {
                            items.push(planner.item(candidate, Some(entry)).map_err(fail)?);
                        }
                    }
                }
            }
        }
        if items.is_empty() {
            let name = extracted
                .first()
                .map(|input| input.artifact.name.clone())
                .unwrap_or_default();
            return Err((
                name,
                PlanError {
                    file: "./".into(),
                    problem: "nothing to publish".into(),
                },
            ));
        }
        Ok(Self {
            repo_key: config.repo_key.clone(),
            target_path: config.target_path.clone(),
            build,
            artifacts: extracted
                .iter()
                .map(|input| input.artifact.name.clone())
                .collect(),
            items,
        })
    }

    pub fn total_bytes(&self) -> u64 {
        self.items.iter().map(|item| item.source.size).sum()
    }
}

/// The settings of every spec, which must not contradict each other.
fn merged_settings(
    specs: &[Option<spec::PublishSpec>],
    extracted: &[ExtractedArtifact],
) -> Result<SpecSettings, (String, PlanError)> {
    let mut merged = SpecSettings::default();
    for (spec, input) in specs.iter().zip(extracted) {
        let Some(spec) = spec else { continue };
        let pairs = [
            (
                &mut merged.build_name,
                &spec.settings.build_name,
                "buildName",
            ),
            (&mut merged.npm_tag, &spec.settings.npm_tag, "npmTag"),
            (
                &mut merged.npm_access,
                &spec.settings.npm_access,
                "npmAccess",
            ),
            (
                &mut merged.debian_distribution,
                &spec.settings.debian_distribution,
                "debianDistribution",
            ),
            (
                &mut merged.debian_component,
                &spec.settings.debian_component,
                "debianComponent",
            ),
        ];
        for (slot, value, name) in pairs {
            match (slot.as_ref(), value) {
                (Some(existing), Some(new)) if existing != new => {
                    return Err((
                        input.artifact.name.clone(),
                        PlanError {
                            file: "publish spec".into(),
                            problem: format!(
                                "settings.{name} is `{new}` here but `{existing}` in another input artifact; make them agree"
                            ),
                        },
                    ));
                }
                (None, Some(new)) => *slot = Some(new.clone()),
                _ => {}
            }
        }
    }
    Ok(merged)
}

struct Planner<'a> {
    config: &'a ActionConfig,
    data: &'a JobData,
    settings: &'a SpecSettings,
    build: &'a BuildIdentity,
    artifact: &'a Artifact,
    /// `TargetPath`, plus the artifact's name when there are several.
    prefix: String,
}

impl Planner<'_> {
    fn item(
        &self,
        candidate: Candidate,
        entry: Option<&SpecEntry>,
    ) -> Result<PublishItem, (String, String)> {
        let source_path = candidate.source.relative_path.clone();
        let wrap = |problem: String| (source_path.clone(), problem);
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
                    .ok_or_else(|| {
                        wrap("a Debian package needs a distribution: set \"settings\": {\"debianDistribution\": \"bookworm\"} in the file spec, or deb.distribution=bookworm in Properties".into())
                    })?;
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
                return Err(wrap(format!(
                    "npm and PyPI registries decide where a package goes; give only the \
                     repository as the spec's target (`{repo}`), not a path"
                )));
            }
            Package::Npm(manifest) => {
                let tag = npm_format::dist_tag(manifest, self.settings.npm_tag.as_deref())
                    .map_err(wrap)?;
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
    fn repository(&self, entry: Option<&SpecEntry>) -> Result<(String, Option<String>), String> {
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
            return Err(format!(
                "the spec's target `{target}` must start with a repository key, as in JFrog CLI: \
                 `firmware-local/nestbox-cam/` (or just `npm-local` for npm and PyPI)"
            ));
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
    ) -> Result<String, String> {
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
        let expanded = expand_target_path(&filled, self.data)
            .map_err(|problem| format!("its target {problem}"))?;
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

fn join_path(prefix: &str, rest: &str) -> String {
    match (prefix.is_empty(), rest.is_empty()) {
        (true, _) => rest.to_owned(),
        (_, true) => prefix.to_owned(),
        _ => format!("{prefix}/{rest}"),
    }
}
