//! The publish plan: which file goes to which path of the repository, as which format, with
//! which properties. Built before anything is sent (configuration and package problems surface
//! before a token is minted), so what will happen can be shown and checked.
//!
//! A plan fails for one of two kinds of reason, told apart by type: the pipeline author's
//! (the spec, the configuration, a package that cannot be published) and the worker's own
//! disk ([`WorkspaceError`]: packing, reading back what it extracted). They are reported as
//! different CodePipeline failure types, so nobody edits a correct action because a disk filled.

use std::collections::BTreeMap;
use std::error::Error as StdError;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::artifacts::ExtractedFile;
use crate::pipeline::FailureType;
use crate::pipeline::config::ActionConfig;
use crate::pipeline::job::{Artifact, JobData};
use crate::publish::detect::{self, Selection};
use crate::publish::formats::debian::{DebianControl, DebianError};
use crate::publish::formats::npm::{NpmManifest, TarballError};
use crate::publish::formats::npm_pack::PackError;
use crate::publish::formats::pypi::{PythonDistribution, PythonError};
use crate::publish::formats::{Format, WorkspaceError, WorkspaceFailure};
use crate::publish::placement::{PlacementError, Planner, join_path};
use crate::publish::spec::{self, SpecError, SpecSettings};

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
#[derive(Debug)]
pub struct PlanError {
    /// Path inside the artifact (or the spec's path).
    pub file: String,
    /// Boxed: the readers' errors are large, and a plan error travels up through `JobError`.
    pub problem: Box<PlanProblem>,
}

impl PlanError {
    pub fn new(file: impl Into<String>, problem: impl Into<PlanProblem>) -> Self {
        Self {
            file: file.into(),
            problem: Box::new(problem.into()),
        }
    }

    /// Whether the worker's own disk failed, rather than anything the pipeline author can fix.
    pub fn is_workspace_failure(&self) -> bool {
        matches!(*self.problem, PlanProblem::Workspace(_))
    }

    /// `JobFailed` for the worker's own disk, `ConfigurationError` for everything else.
    pub fn failure_type(&self) -> FailureType {
        if self.is_workspace_failure() {
            FailureType::JobFailed
        } else {
            FailureType::ConfigurationError
        }
    }

    /// What became of the input artifact, for the line above this error: not "as configured"
    /// when the configuration is not at fault.
    pub fn outcome(&self) -> &'static str {
        if self.is_workspace_failure() {
            "could not be prepared in the worker's work directory"
        } else {
            "cannot be published as configured"
        }
    }
}

// The file and the problem's own sentence make one line; the problem's causes follow it.
impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`: {}", self.file, self.problem)
    }
}

impl StdError for PlanError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.problem.source()
    }
}

/// What is wrong with one file. Every variant but [`PlanProblem::Workspace`] is the pipeline
/// author's to fix.
#[derive(Debug, thiserror::Error)]
pub enum PlanProblem {
    /// The worker's own disk or work directory failed.
    #[error(transparent)]
    Workspace(#[from] WorkspaceError),
    #[error(transparent)]
    Spec(SpecError),
    #[error(
        "settings.{setting} is `{here}` here but `{other}` in another input artifact; make them \
         agree"
    )]
    SpecsDisagree {
        setting: &'static str,
        here: String,
        other: String,
    },
    #[error(
        "pattern `{pattern}` matches no file of the artifact; fix the pattern or remove the entry"
    )]
    NoMatch { pattern: String },
    #[error(
        "nothing to publish: every file was left out; check the stage that builds the artifact \
         and the file spec's patterns"
    )]
    NothingToPublish,
    #[error(
        "with TypeOfArtifact npm every file must be an npm package (a directory with \
         package.json, or an `npm pack` .tgz); use auto, or a file spec to choose the files"
    )]
    NotNpm(#[source] TarballError),
    #[error(transparent)]
    Npm(TarballError),
    #[error(transparent)]
    Pack(PackError),
    #[error("its Debian control file cannot be read; rebuild it with `dpkg-deb --build`")]
    UnreadableDeb(#[source] DebianError),
    #[error(transparent)]
    Python(PythonError),
    #[error(
        "it is not {what}, but TypeOfArtifact is {kind}; use auto, or a file spec \
         (publish-spec.json) to choose which files to publish and how"
    )]
    NotOfType {
        what: &'static str,
        kind: &'static str,
    },
    #[error(transparent)]
    Placement(#[from] PlacementError),
}

impl PlanProblem {
    /// A reader's failure: the worker's disk when that is what it was, else `as_package`.
    pub(crate) fn reading<E: WorkspaceFailure>(error: E, as_package: fn(E) -> Self) -> Self {
        match error.into_workspace() {
            Ok(workspace) => PlanProblem::Workspace(workspace),
            Err(error) => as_package(error),
        }
    }
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
                Some(file) => Some(spec::read(&file.path).map_err(|error| {
                    (
                        input.artifact.name.clone(),
                        PlanError::new(
                            &file.relative_path,
                            PlanProblem::reading(error, PlanProblem::Spec),
                        ),
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
            let fail = |error: PlanError| (input.artifact.name.clone(), error);
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
                            return Err(fail(PlanError::new(
                                &config.publish_spec,
                                PlanProblem::NoMatch {
                                    pattern: entry.pattern_text.clone(),
                                },
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
            return Err((name, PlanError::new("./", PlanProblem::NothingToPublish)));
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
                        PlanError::new(
                            "publish spec",
                            PlanProblem::SpecsDisagree {
                                setting: name,
                                here: new.clone(),
                                other: existing.clone(),
                            },
                        ),
                    ));
                }
                (None, Some(new)) => *slot = Some(new.clone()),
                _ => {}
            }
        }
    }
    Ok(merged)
}
