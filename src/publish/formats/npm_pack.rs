//! Packing a package directory into a tarball the way `npm pack` does.
//!
//! Which files: with a `files` field, what it names (a directory means everything under it,
//! `!pattern` excludes); without one, everything except what `.npmignore` (else `.gitignore`)
//! excludes. `package.json`, README, LICENSE/LICENCE, COPYING, `main` and `bin` files are always
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
use serde_json::Value;

use crate::publish::formats::npm::NpmManifest;
use crate::publish::formats::{MAX_METADATA_BYTES, read_limited};
use crate::publish::pattern::Pattern;

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
pub fn read_directory_manifest(dir: &Path) -> Result<NpmManifest, String> {
    let file = File::open(dir.join("package.json"))
        .map_err(|error| format!("could not open its package.json ({error})"))?;
    NpmManifest::parse(&read_limited(file, MAX_METADATA_BYTES, "package.json")?)
}

/// The files of `dir` that npm would pack, `/`-separated and sorted.
pub fn packed_files(dir: &Path, manifest: &NpmManifest) -> Result<Vec<String>, String> {
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
        Some(_) => return Err("its package.json \"files\" field is not a list".into()),
        None => {
            let rules = ignore_rules(dir)?;
            all.iter()
                .filter(|path| {
                    let mut ignored = false;
                    for (ignore, rule) in &rules {
                        if ignore_matches(rule, path) {
                            ignored = *ignore;
                        }
                    }
                    !ignored
                })
                .cloned()
                .collect()
        }
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
) -> Result<Vec<String>, String> {
    let files = packed_files(dir, manifest)?;
    let write_error = |error: std::io::Error| format!("could not write its tarball: {error}");
    let out = File::create(output).map_err(write_error)?;
    let gzip = GzBuilder::new()
        .mtime(0)
        .write(BufWriter::new(out), Compression::default());
    let mut builder = tar::Builder::new(gzip);
    builder.mode(tar::HeaderMode::Deterministic);
    for relative in &files {
        let source = dir.join(relative);
        let metadata = fs::metadata(&source)
            .map_err(|error| format!("could not read `{relative}`: {error}"))?;
        let executable = is_executable(&metadata);
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(metadata.len());
        header.set_mode(if executable { 0o755 } else { 0o644 });
        header.set_mtime(NPM_MTIME);
        header.set_uid(0);
        header.set_gid(0);
        let file =
            File::open(&source).map_err(|error| format!("could not read `{relative}`: {error}"))?;
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

fn walk(root: &Path, prefix: &str, files: &mut Vec<String>) -> Result<(), String> {
    let dir = root.join(prefix);
    let entries =
        fs::read_dir(&dir).map_err(|error| format!("could not list `{prefix}`: {error}"))?;
    for entry in entries {
        let entry = entry.map_err(|error| format!("could not list `{prefix}`: {error}"))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let relative = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let kind = entry
            .file_type()
            .map_err(|error| format!("could not read `{relative}`: {error}"))?;
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

/// `(ignore, pattern)` rules from `.npmignore`, else `.gitignore`, at the package root.
fn ignore_rules(dir: &Path) -> Result<Vec<(bool, String)>, String> {
    let file = [".npmignore", ".gitignore"]
        .iter()
        .map(|name| dir.join(name))
        .find(|path| path.is_file());
    let Some(file) = file else {
        return Ok(Vec::new());
    };
    let text = fs::read_to_string(&file)
        .map_err(|error| format!("could not read {}: {error}", file.display()))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| match line.strip_prefix('!') {
            Some(negated) => (false, negated.to_owned()),
            None => (true, line.to_owned()),
        })
        .collect())
}

/// gitignore matching: a pattern without an inner `/` matches a name at any depth (file or
/// directory); with one, it is anchored at the package root.
fn ignore_matches(rule: &str, path: &str) -> bool {
    let rule = rule.trim_end_matches('/');
    let anchored = rule.trim_start_matches('/').contains('/') || rule.starts_with('/');
    let rule = rule.trim_start_matches('/');
    if anchored {
        return names(rule, path);
    }
    let pattern = Pattern::segment_wise(rule);
    path.split('/').any(|segment| pattern.is_match(segment))
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
