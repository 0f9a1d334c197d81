//! Reading (and, for npm, packing) the packages the worker publishes natively: what each
//! format needs from a file before it can be sent — names, versions, metadata, hashes.
//!
//! Everything here is blocking file work, run on a blocking thread while the plan is built.
//! Each reader has its own error type whose messages are sentences about one file (the plan
//! adds the file's name). A failure of the worker's own disk is a [`WorkspaceError`] in every
//! reader, so the plan can tell it apart from a broken package without reading any text.

pub mod debian;
pub mod npm;
pub mod npm_pack;
pub mod pypi;

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use base64::Engine;
use sha2::{Digest, Sha512};

use crate::checksum::{Checksums, hash_stream};

/// A package format the worker publishes through its registry API (or, for Debian, with the
/// properties its indexer needs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Format {
    Generic,
    Npm,
    Debian,
    Pypi,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Generic => "generic",
            Format::Npm => "npm",
            Format::Debian => "debian",
            Format::Pypi => "pypi",
        }
    }
}

/// Every hash a package needs, from one read of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileHashes {
    pub size: u64,
    pub checksums: Checksums,
    /// Standard base64 of the sha512, as npm's `integrity` carries it.
    pub sha512_base64: String,
}

/// Reads `path` once and hashes it with md5, sha1, sha256 and sha512.
pub fn hash_file(path: &Path) -> io::Result<FileHashes> {
    let mut file = File::open(path)?;
    let mut sha512 = Sha512::new();
    let (size, checksums) = hash_stream(
        &mut file,
        |chunk| {
            sha512.update(chunk);
            Ok(())
        },
        |error| error,
    )?;
    Ok(FileHashes {
        size,
        checksums,
        sha512_base64: base64::engine::general_purpose::STANDARD.encode(sha512.finalize()),
    })
}

/// The worker's own disk failed while it read back a file it extracted into its work directory
/// or wrote one of its own there: neither the configuration nor the package is at fault.
#[derive(Debug, thiserror::Error)]
#[error(
    "the worker could not {action} `{}` in its work directory (check --work-dir or TMPDIR, and \
     free disk space)",
    path.display()
)]
pub struct WorkspaceError {
    /// What the worker was doing: `read`, `open`, `write`, `create directory`, `list`.
    pub action: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

impl WorkspaceError {
    pub fn new(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self {
            action,
            path: path.into(),
            source,
        }
    }
}

/// A reader's error that may be the worker's own disk failure rather than the file's fault.
pub trait WorkspaceFailure: Sized {
    /// The worker's disk failure when that is what this is; otherwise the error unchanged.
    fn into_workspace(self) -> Result<WorkspaceError, Self>;
}

/// Why a small metadata file (manifest, control file, METADATA, file spec) could not be read.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// A member of an archive could not be decompressed or read: the package is broken.
    #[error("could not read its {what}; the archive is damaged, build it again")]
    Unreadable {
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("its {what} is larger than {limit} bytes; a {what} that large is not a real one")]
    TooLarge { what: &'static str, limit: u64 },
    #[error(transparent)]
    Workspace(#[from] WorkspaceError),
}

impl WorkspaceFailure for MetadataError {
    fn into_workspace(self) -> Result<WorkspaceError, Self> {
        match self {
            MetadataError::Workspace(error) => Ok(error),
            other => Err(other),
        }
    }
}

/// Reads at most `limit` bytes of a metadata member of an archive; manifests and control
/// files are small, and a huge one is a broken (or hostile) package.
pub fn read_limited(
    reader: impl Read,
    limit: u64,
    what: &'static str,
) -> Result<Vec<u8>, MetadataError> {
    let mut bytes = Vec::new();
    reader
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| MetadataError::Unreadable { what, source })?;
    if bytes.len() as u64 > limit {
        return Err(MetadataError::TooLarge { what, limit });
    }
    Ok(bytes)
}

/// Reads a metadata file the worker extracted (a file spec, a `package.json`): failing to open
/// or read it is the worker's disk, being too large is the artifact's.
pub fn read_extracted(path: &Path, what: &'static str) -> Result<Vec<u8>, MetadataError> {
    let file = File::open(path).map_err(|source| WorkspaceError::new("open", path, source))?;
    read_limited(file, MAX_METADATA_BYTES, what).map_err(|error| match error {
        MetadataError::Unreadable { source, .. } => {
            WorkspaceError::new("read", path, source).into()
        }
        other => other,
    })
}

/// Largest manifest / control / METADATA file read (1 MiB).
pub const MAX_METADATA_BYTES: u64 = 1024 * 1024;

/// The file name part of a `/`-separated path.
pub fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}
