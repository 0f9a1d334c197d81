//! Staging and committing the files that the package APIs (npm, PyPI) store: bytes are written
//! to a staging file while hashed, then moved into the blob store and recorded at a repository
//! path exactly like a generic deploy, so storage info, checksum search and downloads see them.

use bytes::Bytes;
use tempfile::TempPath;
use tokio::io::AsyncWriteExt as _;

use super::Shared;
use super::clock::to_unix_millis;
use super::error::ApiError;
use super::paths::Properties;
use super::store::{ArtifactRecord, Commit};
use crate::checksum::ChecksumStream;

/// Buffer between incoming chunks and the staging file, to keep blocking writes few.
const WRITE_BUFFER_BYTES: usize = 1 << 20;

/// The size and digests of a staged file (lower-case hex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FileDigests {
    pub(super) size: u64,
    pub(super) sha1: String,
    pub(super) sha256: String,
    pub(super) md5: String,
}

/// A fully written staging file; deleted on drop unless committed.
#[derive(Debug)]
pub(super) struct StagedFile {
    pub(super) temp: TempPath,
    pub(super) digests: FileDigests,
}

/// Writes chunks to a new staging file, hashing them on the way (large uploads on hashing
/// threads, as Artifactory spreads its work over cores, so the mock's receive path does not
/// set the pace of every benchmark that uploads).
pub(super) struct StagingWriter {
    temp: TempPath,
    writer: tokio::io::BufWriter<tokio::fs::File>,
    hasher: ChecksumStream,
    size: u64,
}

fn write_failed(error: std::io::Error) -> ApiError {
    ApiError::internal("Cannot write the staging file", &error)
}

impl StagingWriter {
    pub(super) fn new(shared: &Shared) -> Result<Self, ApiError> {
        let (file, temp) = shared
            .store
            .staging_file()
            .map_err(|error| ApiError::internal("Cannot create a staging file", &error))?;
        Ok(Self {
            temp,
            writer: tokio::io::BufWriter::with_capacity(
                WRITE_BUFFER_BYTES,
                tokio::fs::File::from_std(file),
            ),
            hasher: ChecksumStream::new(),
            size: 0,
        })
    }

    pub(super) async fn write(&mut self, chunk: Bytes) -> Result<(), ApiError> {
        self.size += chunk.len() as u64;
        self.writer.write_all(&chunk).await.map_err(write_failed)?;
        self.hasher.update(chunk).await;
        Ok(())
    }

    pub(super) async fn finish(mut self) -> Result<StagedFile, ApiError> {
        self.writer.flush().await.map_err(write_failed)?;
        let checksums = self.hasher.finish().await;
        Ok(StagedFile {
            temp: self.temp,
            digests: FileDigests {
                size: self.size,
                sha1: checksums.sha1,
                sha256: checksums.sha256,
                md5: checksums.md5,
            },
        })
    }
}

/// Stages bytes already in memory (a decoded npm tarball).
pub(super) async fn stage_bytes(shared: &Shared, bytes: Bytes) -> Result<StagedFile, ApiError> {
    let mut writer = StagingWriter::new(shared)?;
    writer.write(bytes).await?;
    writer.finish().await
}

/// What to record for a package file besides its content.
#[derive(Debug)]
pub(super) struct PackageFile<'a> {
    pub(super) repo: &'a str,
    pub(super) path: &'a str,
    pub(super) properties: Properties,
    pub(super) mime_type: &'a str,
    pub(super) username: &'a str,
}

/// Why a package file was not stored.
#[derive(Debug)]
pub(super) enum CommitError {
    /// Different content already lives at the path.
    Conflict,
    /// Any other failure, answered as is.
    Api(ApiError),
}

/// Moves the staged content into the blob store and records it at `file.path`. Identical
/// content already there is kept (and gains the properties); different content is a conflict.
/// The caller persists the metadata.
pub(super) fn commit_package_file(
    shared: &Shared,
    staged: StagedFile,
    file: PackageFile<'_>,
) -> Result<ArtifactRecord, CommitError> {
    if let Some(existing) = shared.store.record(file.repo, file.path)
        && existing.sha256 != staged.digests.sha256
    {
        return Err(CommitError::Conflict);
    }
    let digests = staged.digests;
    shared
        .store
        .commit_blob(staged.temp, &digests.sha256)
        .map_err(|error| CommitError::Api(ApiError::internal("Cannot store the blob", &error)))?;
    let now = to_unix_millis(shared.clock.now());
    let record = ArtifactRecord {
        size: digests.size,
        sha1: digests.sha1,
        sha256: digests.sha256,
        md5: digests.md5,
        original_checksums: Default::default(),
        properties: file.properties,
        mime_type: file.mime_type.to_string(),
        created_by: file.username.to_string(),
        created_millis: now,
        modified_millis: now,
    };
    match shared.store.commit(file.repo, file.path, record) {
        Commit::Stored(stored) => Ok(stored),
        Commit::Conflict => Err(CommitError::Conflict),
        Commit::FolderClash => Err(CommitError::Api(ApiError::bad_request(format!(
            "Cannot deploy '{}:{}': a file and a folder would share a path",
            file.repo, file.path
        )))),
    }
}

/// Persists the store's metadata after a change.
pub(super) async fn persist_store(shared: &Shared) -> Result<(), ApiError> {
    shared
        .store
        .persist()
        .await
        .map_err(|error| ApiError::internal("Cannot write the metadata file", &error))
}
