//! Packing a package directory into a tarball the way `npm pack` does.
//!
//! Which files: with a `files` field, what it names (a directory means everything under it,
//! `!pattern` excludes); without one, everything except what `.npmignore` (else `.gitignore`)
//! excludes (gitignore rules, matched by the `ignore` crate). `package.json`, README, LICENSE/LICENCE, COPYING, `main` and `bin` files are always
//! included; version-control directories, `node_modules`, `.npmrc`, lock files, editor swap
//! files and the ignore files themselves never are. Bundled dependencies are not supported.
//!
//! How: entries under `package/`, sorted, regular files only, mode 0644 (0755 when executable),
//! owner 0, and npm's fixed timestamp, in a gzip stream without a name or time — so the same
//! directory always packs to the same bytes.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::Path;

use flate2::Compression;
use flate2::GzBuilder;
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use serde_json::Value;

use crate::publish::formats::npm::{ManifestError, NpmManifest};
use crate::publish::formats::{MetadataError, WorkspaceError, WorkspaceFailure, read_extracted};
use crate::publish::pattern::Pattern;

/// Why a package directory cannot be packed.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error(transparent)]
    Workspace(#[from] WorkspaceError),
    #[error(transparent)]
    ManifestUnreadable(#[from] MetadataError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("its package.json \"files\" field is not a list; make it a list of paths and globs")]
    FilesNotAList,
    #[error("its {file} has a line that is not a valid pattern; fix or remove it")]
    IgnoreRule {
        file: &'static str,
        #[source]
        source: ignore::Error,
    },
}

impl WorkspaceFailure for PackError {
    fn into_workspace(self) -> Result<WorkspaceError, Self> {
        match self {
            PackError::Workspace(error)
            | PackError::ManifestUnreadable(MetadataError::Workspace(error)) => Ok(error),
            other => Err(other),
        }
    }
}

/// The modification time npm gives every entry: 1985-10-26T08:15:00Z.
const NPM_MTIME: u64 = 499_162_500;

/// Directories never packed, at any depth.
const NEVER_DIRS: &[&str] = &[".git", ".svn", ".hg", "CVS", "node_modules"];

/// Files never packed, at any depth (segment-wise patterns on the file name).
const NEVER_FILES: &[&str] = &[
    ".npmrc",
    ".npmignore",
    ".gitignore",
    ".DS_Store",
    "._*",
    ".*.swp",
    "*.orig",
    "npm-debug.log",
    ".lock-wscript",
    ".wafpickle-*",
];

/// Files never packed at the package root.
const NEVER_AT_ROOT: &[&str] = &[
    "package-lock.json",
    "yarn.lock",
    "pnpm-lock.yaml",
    "bun.lockb",
    "build/config.gypi",
];

/// Reads the manifest of the package directory `dir`.
pub fn read_directory_manifest(dir: &Path) -> Result<NpmManifest, PackError> {
    let bytes = read_extracted(&dir.join("package.json"), "package.json")?;
    Ok(NpmManifest::parse(&bytes)?)
}

/// A packed file's path relative to the package directory, with `/` separators.
pub type PackedPath = String;

/// The files of `dir` that npm would pack, `/`-separated and sorted.
pub fn packed_files(dir: &Path, manifest: &NpmManifest) -> Result<Vec<PackedPath>, PackError> {
    let mut all = Vec::new();
    walk(dir, "", &mut all)?;
    all.sort();
    let never = |path: &str| {
        let name = super::file_name(path);
        path.split('/').any(|segment| NEVER_DIRS.contains(&segment))
            || NEVER_FILES
                .iter()
                .any(|pattern| Pattern::segment_wise(pattern).is_match(name))
            || NEVER_AT_ROOT.contains(&path)
    };
    let always = always_included(manifest);
    let selected: Vec<String> = match manifest.fields.get("files") {
        Some(Value::Array(entries)) => {
            let rules: Vec<(bool, String)> = entries
                .iter()
                .filter_map(Value::as_str)
                .map(|entry| match entry.strip_prefix('!') {
                    Some(negated) => (false, normalize(negated)),
                    None => (true, normalize(entry)),
                })
                .collect();
            all.iter()
                .filter(|path| {
                    let mut included = false;
                    for (include, rule) in &rules {
                        if names(rule, path) {
                            included = *include;
                        }
                    }
                    included
                })
                .cloned()
                .collect()
        }
        Some(_) => return Err(PackError::FilesNotAList),
        None => match ignore_matcher(dir)? {
            Some(matcher) => all
                .iter()
                .filter(|path| {
                    !matcher
                        .matched_path_or_any_parents(path.as_str(), false)
                        .is_ignore()
                })
                .cloned()
                .collect(),
            None => all.clone(),
        },
    };
    let mut files: Vec<String> = all
        .iter()
        .filter(|path| !never(path) && (selected.contains(path) || always(path)))
        .cloned()
        .collect();
    files.dedup();
    Ok(files)
}

/// Packs `dir` into `output`; returns the packed files.
pub fn pack_directory(
    dir: &Path,
    manifest: &NpmManifest,
    output: &Path,
) -> Result<Vec<PackedPath>, PackError> {
    let files = packed_files(dir, manifest)?;
    let write_error = |source: std::io::Error| WorkspaceError::new("write", output, source);
    let out = File::create(output).map_err(write_error)?;
    let gzip = GzBuilder::new()
        .mtime(0)
        .write(BufWriter::new(out), Compression::default());
    let mut builder = tar::Builder::new(gzip);
    builder.mode(tar::HeaderMode::Deterministic);
    for relative in &files {
        let source = dir.join(relative);
        let read_error = |error: std::io::Error| WorkspaceError::new("read", &source, error);
        let metadata = fs::metadata(&source).map_err(read_error)?;
        let executable = is_executable(&metadata);
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(metadata.len());
        header.set_mode(if executable { 0o755 } else { 0o644 });
        header.set_mtime(NPM_MTIME);
        header.set_uid(0);
        header.set_gid(0);
        let file = File::open(&source).map_err(read_error)?;
        builder
            .append_data(&mut header, format!("package/{relative}"), file)
            .map_err(write_error)?;
    }
    let gzip = builder.into_inner().map_err(write_error)?;
    let mut out = gzip.finish().map_err(write_error)?;
    out.flush().map_err(write_error)?;
    Ok(files)
}

#[cfg(unix)]
fn is_executable(metadata: &fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    metadata.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_metadata: &fs::Metadata) -> bool {
    false
}

fn walk(root: &Path, prefix: &str, files: &mut Vec<String>) -> Result<(), WorkspaceError> {
    let dir = root.join(prefix);
    let list_error = |source| WorkspaceError::new("list", &dir, source);
    for entry in fs::read_dir(&dir).map_err(list_error)? {
        let entry = entry.map_err(list_error)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let relative = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let kind = entry
            .file_type()
            .map_err(|source| WorkspaceError::new("read", entry.path(), source))?;
        if kind.is_dir() {
            walk(root, &relative, files)?;
        } else if kind.is_file() {
            files.push(relative);
        }
    }
    Ok(())
}

/// `./lib/` → `lib`.
fn normalize(entry: &str) -> String {
    entry
        .trim()
        .trim_start_matches("./")
        .trim_start_matches('/')
        .trim_end_matches('/')
        .to_owned()
}

/// Whether a `files` entry names `path`: the path itself, a directory above it, or a glob.
fn names(rule: &str, path: &str) -> bool {
    if rule.is_empty() {
        return false;
    }
    let pattern = Pattern::segment_wise(rule);
    let mut prefix = String::new();
    for segment in path.split('/') {
        if !prefix.is_empty() {
            prefix.push('/');
        }
        prefix.push_str(segment);
        if prefix == rule || pattern.is_match(&prefix) {
            return true;
        }
    }
    false
}

/// A predicate for the files npm always packs.
fn always_included(manifest: &NpmManifest) -> impl Fn(&str) -> bool + '_ {
    let mut named: Vec<String> = Vec::new();
    if let Some(main) = manifest.fields.get("main").and_then(Value::as_str) {
        named.push(normalize(main));
    }
    match manifest.fields.get("bin") {
        Some(Value::String(bin)) => named.push(normalize(bin)),
        Some(Value::Object(bins)) => {
            named.extend(bins.values().filter_map(Value::as_str).map(normalize))
        }
        _ => {}
    }
    move |path: &str| {
        if path == "package.json" || named.iter().any(|name| name == path) {
            return true;
        }
        if path.contains('/') {
            return false;
        }
        let stem = path.split('.').next().unwrap_or(path).to_ascii_lowercase();
        matches!(stem.as_str(), "readme" | "license" | "licence" | "copying")
    }
}

/// The gitignore rules of `.npmignore`, else `.gitignore`, at the package root; `None` when
/// there is neither.
fn ignore_matcher(dir: &Path) -> Result<Option<Gitignore>, PackError> {
    let Some((name, path)) = [".npmignore", ".gitignore"]
        .into_iter()
        .map(|name| (name, dir.join(name)))
        .find(|(_, path)| path.is_file())
    else {
        return Ok(None);
    };
    let text =
        fs::read_to_string(&path).map_err(|source| WorkspaceError::new("read", &path, source))?;
    let rule_error = |source| PackError::IgnoreRule { file: name, source };
    let mut builder = GitignoreBuilder::new(dir);
    for line in text.lines() {
        builder.add_line(None, line.trim()).map_err(rule_error)?;
    }
    Ok(Some(builder.build().map_err(rule_error)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let path = dir.path().join(path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        }
        dir
    }

    #[test]
    fn the_files_field_decides_plus_what_npm_always_includes() {
        let dir = package(&[
            (
                "package.json",
                r#"{"name":"cam","version":"1.0.0","main":"index.js","files":["lib/","!lib/*.test.js"]}"#,
            ),
            ("index.js", ""),
            ("lib/a.js", ""),
            ("lib/a.test.js", ""),
            ("README.md", ""),
            ("LICENSE", ""),
            ("src/secret.ts", ""),
            ("lib/.npmrc", "//registry/:_authToken=x"),
            ("node_modules/x/index.js", ""),
            ("package-lock.json", "{}"),
        ]);
        let manifest = read_directory_manifest(dir.path()).unwrap();
        assert_eq!(
            packed_files(dir.path(), &manifest).unwrap(),
            [
                "LICENSE",
                "README.md",
                "index.js",
                "lib/a.js",
                "package.json"
            ]
        );
    }

    #[test]
    fn without_files_npmignore_excludes_and_packing_is_deterministic() {
        let dir = package(&[
            ("package.json", r#"{"name":"cam","version":"1.0.0"}"#),
            (".npmignore", "test/\n*.log\n"),
            ("index.js", "x"),
            ("test/t.js", ""),
            ("debug.log", ""),
            (".git/HEAD", ""),
        ]);
        let manifest = read_directory_manifest(dir.path()).unwrap();
        assert_eq!(
            packed_files(dir.path(), &manifest).unwrap(),
            ["index.js", "package.json"]
        );
        let out = tempfile::tempdir().unwrap();
        let (first, second) = (out.path().join("a.tgz"), out.path().join("b.tgz"));
        pack_directory(dir.path(), &manifest, &first).unwrap();
        pack_directory(dir.path(), &manifest, &second).unwrap();
        assert_eq!(fs::read(&first).unwrap(), fs::read(&second).unwrap());
        let read = super::super::npm::read_tarball_manifest(&first).unwrap();
        assert_eq!(read.name, "cam");
    }
}
