//! Deciding what each file of an artifact is — by the configured type, or by content for
//! `auto` — and reading what its format needs (manifests, control files, metadata). npm
//! package directories are packed here, into the job's private directory.

use std::path::{Path, PathBuf};

use crate::artifacts::ExtractedFile;
use crate::pipeline::config::ArtifactType;
use crate::publish::formats::npm::{self, NpmManifest};
use crate::publish::formats::{self, debian, file_name, npm_pack, pypi};
use crate::publish::plan::Package;

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
/// Errors are `(file, problem)`.
pub fn classify(
    kind: ArtifactType,
    selection: Selection<'_>,
) -> Result<Vec<Candidate>, (String, String)> {
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
        let wrap = |problem: String| (file.relative_path.clone(), problem);
        let name = file_name(&file.relative_path);
        let package = match kind {
            ArtifactType::Generic => Package::Generic,
            ArtifactType::Npm => {
                Package::Npm(npm::read_tarball_manifest(&file.path).map_err(|problem| {
                    wrap(format!(
                        "{problem}; with TypeOfArtifact npm every file must be an npm package (a \
                     directory with package.json, or an `npm pack` .tgz). Use auto, or a file spec \
                     to choose the files"
                    ))
                })?)
            }
            ArtifactType::Debian if name.ends_with(".deb") => {
                Package::Debian(debian::read_control(&file.path).map_err(unreadable_deb(&wrap))?)
            }
            ArtifactType::Debian => {
                return Err(wrap(not_of_type("a Debian package (.deb)", "debian")));
            }
            ArtifactType::Pypi => python(file, name)?
                .ok_or_else(|| wrap(not_of_type("a wheel or an sdist with PKG-INFO", "pypi")))?,
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
fn detect(file: &ExtractedFile, name: &str) -> Result<Package, (String, String)> {
    let wrap = |problem: String| (file.relative_path.clone(), problem);
    if name.ends_with(".deb") {
        return debian::read_control(&file.path)
            .map(Package::Debian)
            .map_err(unreadable_deb(&wrap));
    }
    if name.ends_with(".tgz") && npm::is_npm_tarball(&file.path) {
        return npm::read_tarball_manifest(&file.path)
            .map(Package::Npm)
            .map_err(wrap);
    }
    Ok(python(file, name)?.unwrap_or(Package::Generic))
}

fn python(file: &ExtractedFile, name: &str) -> Result<Option<Package>, (String, String)> {
    let wrap = |problem: String| (file.relative_path.clone(), problem);
    if pypi::is_wheel(name) {
        return pypi::read_wheel(&file.path, name)
            .map(|dist| Some(Package::Pypi(dist)))
            .map_err(wrap);
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

fn unreadable_deb(
    wrap: &impl Fn(String) -> (String, String),
) -> impl Fn(String) -> (String, String) + '_ {
    move |problem| {
        wrap(format!(
            "its Debian control file cannot be read: {problem}; rebuild it with `dpkg-deb --build`"
        ))
    }
}

fn not_of_type(what: &str, kind: &str) -> String {
    format!(
        "it is not {what}, but TypeOfArtifact is {kind}; use auto, or a file spec (publish-spec.json) \
         to choose which files to publish and how"
    )
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
) -> Result<Candidate, (String, String)> {
    let display = if dir.is_empty() {
        "./".to_owned()
    } else {
        format!("{dir}/")
    };
    let wrap = |problem: String| (display.clone(), problem);
    let source_dir = root.join(dir);
    let manifest: NpmManifest = npm_pack::read_directory_manifest(&source_dir).map_err(wrap)?;
    std::fs::create_dir_all(pack_dir)
        .map_err(|error| wrap(format!("could not create {}: {error}", pack_dir.display())))?;
    let tarball: PathBuf = pack_dir.join(format!(
        "{}-{}-{}.tgz",
        rand::random::<u32>(),
        manifest.name.replace(['@', '/'], "_"),
        manifest.version
    ));
    npm_pack::pack_directory(&source_dir, &manifest, &tarball).map_err(wrap)?;
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

fn hash(path: &Path, display: &str) -> Result<formats::FileHashes, (String, String)> {
    formats::hash_file(path)
        .map_err(|error| (display.to_owned(), format!("could not read it: {error}")))
}
