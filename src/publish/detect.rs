//! Deciding what each file of an artifact is — by the configured type, or by content for
//! `auto` — and reading what its format needs (manifests, control files, metadata). npm
//! package directories are packed here, into the job's private directory.

use std::path::{Path, PathBuf};

use crate::artifacts::ExtractedFile;
use crate::pipeline::config::ArtifactType;
use crate::publish::formats::npm::{self, NpmManifest};
use crate::publish::formats::{self, WorkspaceError, debian, file_name, npm_pack, pypi};
use crate::publish::plan::{Package, PlanError, PlanProblem};

/// A file (or packed directory) and what it is.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The bytes to send; for a packed directory, the tarball in the job directory.
    pub source: ExtractedFile,
    /// sha512 (base64) for npm's `integrity`.
    pub sha512_base64: Option<String>,
    pub package: Package,
    /// Captures of the spec pattern that selected the file.
    pub captures: Vec<String>,
}

/// One artifact's files as the detector sees them.
pub struct Selection<'a> {
    /// Where the artifact was extracted.
    pub root: &'a Path,
    /// Where packed tarballs are written.
    pub pack_dir: &'a Path,
    /// Files with the captures of the pattern that selected them.
    pub files: Vec<(&'a ExtractedFile, Vec<String>)>,
}

/// Classifies `selection` as `kind`; a file that is not of an explicit type is refused.
pub fn classify(kind: ArtifactType, selection: Selection<'_>) -> Result<Vec<Candidate>, PlanError> {
    let mut candidates = Vec::new();
    let package_dirs = match kind {
        ArtifactType::Npm | ArtifactType::Auto => package_directories(&selection.files),
        _ => Vec::new(),
    };
    for dir in &package_dirs {
        let captures = selection
            .files
            .iter()
            .find(|(file, _)| file.relative_path == join(dir, "package.json"))
            .map(|(_, captures)| captures.clone())
            .unwrap_or_default();
        candidates.push(pack(selection.root, selection.pack_dir, dir, captures)?);
    }
    for (file, captures) in &selection.files {
        if package_dirs
            .iter()
            .any(|dir| inside(dir, &file.relative_path))
        {
            continue;
        }
        let wrap = |problem: PlanProblem| PlanError::new(&file.relative_path, problem);
        let name = file_name(&file.relative_path);
        let package = match kind {
            ArtifactType::Generic => Package::Generic,
            ArtifactType::Npm => Package::Npm(
                npm::read_tarball_manifest(&file.path)
                    .map_err(|error| wrap(PlanProblem::reading(error, PlanProblem::NotNpm)))?,
            ),
            ArtifactType::Debian if name.ends_with(".deb") => {
                Package::Debian(debian::read_control(&file.path).map_err(|error| {
                    wrap(PlanProblem::reading(error, PlanProblem::UnreadableDeb))
                })?)
            }
            ArtifactType::Debian => {
                return Err(wrap(PlanProblem::NotOfType {
                    what: "a Debian package (.deb)",
                    kind: "debian",
                }));
            }
            ArtifactType::Pypi => python(file, name)?.ok_or_else(|| {
                wrap(PlanProblem::NotOfType {
                    what: "a wheel or an sdist with PKG-INFO",
                    kind: "pypi",
                })
            })?,
            ArtifactType::Auto => detect(file, name)?,
        };
        let sha512_base64 = match package {
            Package::Npm(_) => Some(hash(&file.path, &file.relative_path)?.sha512_base64),
            _ => None,
        };
        candidates.push(Candidate {
            source: (*file).clone(),
            sha512_base64,
            package,
            captures: captures.clone(),
        });
    }
    Ok(candidates)
}

/// `auto`: by name first, then by content.
fn detect(file: &ExtractedFile, name: &str) -> Result<Package, PlanError> {
    let wrap = |problem: PlanProblem| PlanError::new(&file.relative_path, problem);
    if name.ends_with(".deb") {
        return debian::read_control(&file.path)
            .map(Package::Debian)
            .map_err(|error| wrap(PlanProblem::reading(error, PlanProblem::UnreadableDeb)));
    }
    if name.ends_with(".tgz") && npm::is_npm_tarball(&file.path) {
        return npm::read_tarball_manifest(&file.path)
            .map(Package::Npm)
            .map_err(|error| wrap(PlanProblem::reading(error, PlanProblem::Npm)));
    }
    Ok(python(file, name)?.unwrap_or(Package::Generic))
}

fn python(file: &ExtractedFile, name: &str) -> Result<Option<Package>, PlanError> {
    if pypi::is_wheel(name) {
        return pypi::read_wheel(&file.path, name)
            .map(|dist| Some(Package::Pypi(dist)))
            .map_err(|error| {
                PlanError::new(
                    &file.relative_path,
                    PlanProblem::reading(error, PlanProblem::Python),
                )
            });
    }
    if name.ends_with(".tar.gz") {
        // A tar.gz without PKG-INFO is just a tarball.
        return Ok(pypi::read_sdist(&file.path)
            .ok()
            .flatten()
            .map(Package::Pypi));
    }
    Ok(None)
}

/// Top-most directories holding a `package.json` (never inside `node_modules`).
fn package_directories(files: &[(&ExtractedFile, Vec<String>)]) -> Vec<String> {
    let mut dirs: Vec<String> = files
        .iter()
        .filter_map(|(file, _)| {
            let path = &file.relative_path;
            let dir = if path == "package.json" {
                ""
            } else {
                path.strip_suffix("/package.json")?
            };
            (!dir.split('/').any(|segment| segment == "node_modules")).then(|| dir.to_owned())
        })
        .collect();
    dirs.sort();
    let mut topmost: Vec<String> = Vec::new();
    for dir in dirs {
        if !topmost.iter().any(|top| inside(top, &dir)) {
            topmost.push(dir);
        }
    }
    topmost
}

fn inside(dir: &str, path: &str) -> bool {
    dir.is_empty() || path == dir || path.starts_with(&format!("{dir}/"))
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_owned()
    } else {
        format!("{dir}/{name}")
    }
}

fn pack(
    root: &Path,
    pack_dir: &Path,
    dir: &str,
    captures: Vec<String>,
) -> Result<Candidate, PlanError> {
    let display = if dir.is_empty() {
        "./".to_owned()
    } else {
        format!("{dir}/")
    };
    let packing = |error| PlanError::new(&display, PlanProblem::reading(error, PlanProblem::Pack));
    let source_dir = root.join(dir);
    let manifest: NpmManifest = npm_pack::read_directory_manifest(&source_dir).map_err(packing)?;
    std::fs::create_dir_all(pack_dir).map_err(|source| {
        PlanError::new(
            &display,
            WorkspaceError::new("create directory", pack_dir, source),
        )
    })?;
    let tarball: PathBuf = pack_dir.join(format!(
        "{}-{}-{}.tgz",
        rand::random::<u32>(),
        manifest.name.replace(['@', '/'], "_"),
        manifest.version
    ));
    npm_pack::pack_directory(&source_dir, &manifest, &tarball).map_err(packing)?;
    let hashes = hash(&tarball, &display)?;
    Ok(Candidate {
        source: ExtractedFile {
            relative_path: display,
            path: tarball,
            size: hashes.size,
            checksums: hashes.checksums,
        },
        sha512_base64: Some(hashes.sha512_base64),
        package: Package::Npm(manifest),
        captures,
    })
}

/// Hashes a file the worker extracted or packed: failing to read it is the worker's disk.
fn hash(path: &Path, display: &str) -> Result<formats::FileHashes, PlanError> {
    formats::hash_file(path)
        .map_err(|source| PlanError::new(display, WorkspaceError::new("read", path, source)))
}
