//! The files `publish PATH` sends: a zip goes through the job's own safe extraction; a
//! directory is walked with the same rules (no symlinks, paths kept relative) and each file
//! hashed in one read.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::artifacts::{ExtractLimits, ExtractedFile, extract_zip};
use crate::checksum::hash_stream;

/// Files found under `path`, sorted by relative path. A zip is extracted into `scratch`.
pub fn collect(path: &Path, scratch: &Path) -> anyhow::Result<Vec<ExtractedFile>> {
    let metadata =
        std::fs::metadata(path).with_context(|| format!("cannot read `{}`", path.display()))?;
    let mut files = if metadata.is_dir() {
        let mut files = Vec::new();
        walk(path, path, &mut files)?;
        files
    } else {
        let destination = scratch.join("extracted");
        std::fs::create_dir(&destination)
            .with_context(|| format!("could not create `{}`", destination.display()))?;
        extract_zip(path, &destination, ExtractLimits::default()).with_context(|| {
            format!(
                "`{}` was refused (give a zip archive or a directory)",
                path.display()
            )
        })?
    };
    files.sort_by(|a, b| a.relative_path.cmp(&b.relative_path));
    Ok(files)
}

fn walk(root: &Path, directory: &Path, files: &mut Vec<ExtractedFile>) -> anyhow::Result<()> {
    let entries = std::fs::read_dir(directory)
        .with_context(|| format!("cannot list `{}`", directory.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list `{}`", directory.display()))?;
        let path = entry.path();
        let kind = entry
            .file_type()
            .with_context(|| format!("cannot read `{}`", path.display()))?;
        if kind.is_symlink() {
            anyhow::bail!(
                "`{}` is a symbolic link; links are not published (a job refuses them too): \
                 replace it with the file or remove it",
                path.display()
            );
        }
        if kind.is_dir() {
            walk(root, &path, files)?;
        } else if kind.is_file() {
            files.push(hash_file(root, path)?);
        }
    }
    Ok(())
}

fn hash_file(root: &Path, path: PathBuf) -> anyhow::Result<ExtractedFile> {
    let relative = path
        .strip_prefix(root)
        .with_context(|| format!("`{}` is outside `{}`", path.display(), root.display()))?;
    let relative_path = relative
        .components()
        .map(|component| component.as_os_str().to_str())
        .collect::<Option<Vec<_>>>()
        .with_context(|| format!("`{}` is not a UTF-8 path", path.display()))?
        .join("/");
    let mut file =
        File::open(&path).with_context(|| format!("cannot open `{}`", path.display()))?;
    let (size, checksums) = hash_stream(
        &mut file,
        |_| Ok(()),
        |error| anyhow::Error::new(error).context(format!("cannot read `{}`", path.display())),
    )?;
    Ok(ExtractedFile {
        relative_path,
        path,
        size,
        checksums,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_are_walked_sorted_with_checksums() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("docs")).unwrap();
        std::fs::write(root.path().join("docs/b.txt"), b"abc").unwrap();
        std::fs::write(root.path().join("a.bin"), b"").unwrap();
        let scratch = tempfile::tempdir().unwrap();
        let files = collect(root.path(), scratch.path()).unwrap();
        let names: Vec<_> = files.iter().map(|f| f.relative_path.as_str()).collect();
        assert_eq!(names, ["a.bin", "docs/b.txt"]);
        assert_eq!(
            files[1].checksums.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
