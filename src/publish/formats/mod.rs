//! Reading (and, for npm, packing) the packages the worker publishes natively: what each
//! format needs from a file before it can be sent — names, versions, metadata, hashes.
//!
//! Everything here is blocking file work, run on a blocking thread while the plan is built.
//! Problems are plain sentences about one file; the plan adds the file's name.

pub mod debian;
pub mod npm;
pub mod npm_pack;
pub mod pypi;

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

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

/// Reads at most `limit` bytes of a metadata member; manifests and control files are small,
/// and a huge one is a broken (or hostile) package.
pub fn read_limited(reader: impl Read, limit: u64, what: &str) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    reader
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| format!("could not read its {what}: {error}"))?;
    if bytes.len() as u64 > limit {
        return Err(format!("its {what} is larger than {limit} bytes"));
    }
    Ok(bytes)
}

/// Largest manifest / control / METADATA file read (1 MiB).
pub const MAX_METADATA_BYTES: u64 = 1024 * 1024;

/// The file name part of a `/`-separated path.
pub fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}
