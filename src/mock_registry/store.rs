//! The shared store every API area deploys into: content-addressed blobs on disk
//! (`blobs/ab/<sha256>`) and one metadata file (`metadata.json`, rewritten atomically after
//! each change). Uploads are staged under `uploads/` and removed if they are not committed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use tempfile::{TempDir, TempPath};

use super::model::StoredArtifact;
use super::paths::Properties;

/// Name of the metadata file inside the data directory.
const METADATA_FILE: &str = "metadata.json";
/// Bumped if the metadata layout changes incompatibly.
const METADATA_VERSION: u32 = 1;

/// Takes a lock even if another thread panicked while holding it: the data is plain values that
/// are replaced whole, so a poisoned guard still holds a consistent state.
pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Metadata kept for one deployed file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct ArtifactRecord {
    pub(super) size: u64,
    pub(super) sha1: String,
    pub(super) sha256: String,
    pub(super) md5: String,
    /// Checksums the client sent when deploying (`sha1`/`sha256`/`md5`), shown as `originalChecksums`.
    pub(super) original_checksums: BTreeMap<String, String>,
    pub(super) properties: Properties,
    pub(super) mime_type: String,
    pub(super) created_by: String,
    pub(super) created_millis: i64,
    pub(super) modified_millis: i64,
}

/// The three digests Artifactory indexes content by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ChecksumKind {
    Sha1,
    Sha256,
    Md5,
}

impl ChecksumKind {
    /// The kind a bare hex digest has, judged by its length (as `X-Checksum` is typed).
    pub(super) fn from_hex_length(length: usize) -> Option<Self> {
        match length {
            40 => Some(Self::Sha1),
            64 => Some(Self::Sha256),
            32 => Some(Self::Md5),
            _ => None,
        }
    }

    /// The lower-case name Artifactory uses in JSON and query parameters.
    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Sha1 => "sha1",
            Self::Sha256 => "sha256",
            Self::Md5 => "md5",
        }
    }

    fn of(self, record: &ArtifactRecord) -> &str {
        match self {
            Self::Sha1 => &record.sha1,
            Self::Sha256 => &record.sha256,
            Self::Md5 => &record.md5,
        }
    }
}

/// Result of committing a record at a path.
#[derive(Debug)]
pub(super) enum Commit {
    /// Stored (new, or identical content with properties merged); the record as now stored.
    Stored(ArtifactRecord),
    /// Different content already lives at the path; nothing changed.
    Conflict,
    /// The path is a folder, or one of its parents is a file; nothing changed.
    FolderClash,
}

/// The on-disk layout of `metadata.json`.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Metadata {
    version: u32,
    /// repository key → path inside it → record.
    repositories: BTreeMap<String, BTreeMap<String, ArtifactRecord>>,
}

/// Blobs and metadata under one directory (one registry per directory at a time).
#[derive(Debug)]
pub(super) struct Store {
    /// Directory holding `blobs/`, `uploads/` and `metadata.json`.
    root: PathBuf,
    /// Keeps a private directory alive (and removes it on drop) when no data dir was given.
    _private_dir: Option<TempDir>,
    /// Repositories that accept deploys; empty means any key is created on first deploy.
    configured_repositories: Vec<String>,
    metadata: Mutex<Metadata>,
    /// Serialises metadata writes so a later snapshot is never overwritten by an earlier one.
    persist_lock: tokio::sync::Mutex<()>,
}

impl Store {
    /// Opens (creating if needed) the store at `data_dir`, or in a private temporary directory.
    pub(super) fn open(
        data_dir: Option<&Path>,
        configured_repositories: Vec<String>,
    ) -> anyhow::Result<Self> {
        let (root, private_dir) = match data_dir {
            Some(dir) => (dir.to_path_buf(), None),
            None => {
                let dir = tempfile::Builder::new()
                    .prefix("mock-registry-")
                    .tempdir()
                    .context("creating a private directory for the mock registry")?;
                (dir.path().to_path_buf(), Some(dir))
            }
        };
        for sub in ["blobs", "uploads"] {
            std::fs::create_dir_all(root.join(sub))
                .with_context(|| format!("creating {}", root.join(sub).display()))?;
        }
        // Staging files left by an interrupted run were never committed: drop them.
        for entry in std::fs::read_dir(root.join("uploads"))?.flatten() {
            let _ = std::fs::remove_file(entry.path());
        }
        let metadata_path = root.join(METADATA_FILE);
        let metadata = match std::fs::read(&metadata_path) {
            Ok(bytes) => {
                let metadata: Metadata = serde_json::from_slice(&bytes)
                    .with_context(|| format!("reading {}", metadata_path.display()))?;
                anyhow::ensure!(
                    metadata.version == METADATA_VERSION,
                    "{} has version {}, expected {METADATA_VERSION}",
                    metadata_path.display(),
                    metadata.version
                );
                metadata
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Metadata {
                version: METADATA_VERSION,
                repositories: BTreeMap::new(),
            },
            Err(error) => {
                return Err(error).with_context(|| format!("reading {}", metadata_path.display()));
            }
        };
        Ok(Self {
            root,
            _private_dir: private_dir,
            configured_repositories,
            metadata: Mutex::new(metadata),
            persist_lock: tokio::sync::Mutex::new(()),
        })
    }

    /// The directory holding the store.
    pub(super) fn root(&self) -> &Path {
        &self.root
    }

    /// A new staging file for an upload; it is deleted when the returned path is dropped.
    pub(super) fn staging_file(&self) -> std::io::Result<(std::fs::File, TempPath)> {
        Ok(tempfile::Builder::new()
            .prefix("upload-")
            .tempfile_in(self.root.join("uploads"))?
            .into_parts())
    }

    /// Where the blob with this SHA-256 lives.
    pub(super) fn blob_path(&self, sha256: &str) -> PathBuf {
        let fan_out = sha256.get(..2).unwrap_or("00");
        self.root.join("blobs").join(fan_out).join(sha256)
    }

    /// Moves a verified staging file into the blob store (a rename; identical content may
    /// already be there, which the rename simply replaces).
    pub(super) fn commit_blob(&self, staged: TempPath, sha256: &str) -> std::io::Result<PathBuf> {
        let target = self.blob_path(sha256);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        staged.persist(&target).map_err(|error| error.error)?;
        Ok(target)
    }

    /// Whether deploys to this repository are accepted.
    pub(super) fn accepts_deploys_to(&self, repo: &str) -> bool {
        self.configured_repositories.is_empty()
            || self
                .configured_repositories
                .iter()
                .any(|known| known == repo)
    }

    pub(super) fn record(&self, repo: &str, path: &str) -> Option<ArtifactRecord> {
        lock(&self.metadata)
            .repositories
            .get(repo)
            .and_then(|files| files.get(path))
            .cloned()
    }

    /// Every stored `(repo, path)` whose content has this digest, sorted.
    pub(super) fn find_by_checksum(&self, kind: ChecksumKind, hex: &str) -> Vec<(String, String)> {
        let hex = hex.to_ascii_lowercase();
        let metadata = lock(&self.metadata);
        let mut found = Vec::new();
        for (repo, files) in &metadata.repositories {
            for (path, record) in files {
                if kind.of(record) == hex {
                    found.push((repo.clone(), path.clone()));
                }
            }
        }
        found
    }

    /// Direct children of a folder as `(name, is_folder)`, or `None` if the folder does not exist.
    pub(super) fn children(&self, repo: &str, folder: &str) -> Option<Vec<(String, bool)>> {
        let metadata = lock(&self.metadata);
        let files = metadata.repositories.get(repo);
        let prefix = if folder.is_empty() {
            String::new()
        } else {
            format!("{folder}/")
        };
        let mut children = BTreeMap::new();
        for path in files.into_iter().flat_map(|files| files.keys()) {
            if let Some(rest) = path.strip_prefix(&prefix) {
                match rest.split_once('/') {
                    Some((name, _)) => children.insert(name.to_string(), true),
                    None => children.insert(rest.to_string(), false),
                };
            }
        }
        let is_configured = self
            .configured_repositories
            .iter()
            .any(|known| known == repo);
        let exists =
            !children.is_empty() || (folder.is_empty() && (files.is_some() || is_configured));
        exists.then(|| children.into_iter().collect())
    }

    /// Stores `record` at the path unless different content is already there. Identical
    /// content keeps its creation time and creator and gains the new properties.
    pub(super) fn commit(&self, repo: &str, path: &str, record: ArtifactRecord) -> Commit {
        let mut metadata = lock(&self.metadata);
        let files = metadata.repositories.entry(repo.to_string()).or_default();
        let folder_prefix = format!("{path}/");
        let is_folder = files
            .range(folder_prefix.clone()..)
            .next()
            .is_some_and(|(existing, _)| existing.starts_with(&folder_prefix));
        let parent_is_file = path
            .match_indices('/')
            .any(|(slash, _)| files.contains_key(&path[..slash]));
        if is_folder || parent_is_file {
            return Commit::FolderClash;
        }
        match files.get_mut(path) {
            Some(existing) if existing.sha256 != record.sha256 => Commit::Conflict,
            Some(existing) => {
                existing.properties.extend(record.properties);
                existing.modified_millis = record.modified_millis;
                Commit::Stored(existing.clone())
            }
            None => {
                files.insert(path.to_string(), record.clone());
                Commit::Stored(record)
            }
        }
    }

    /// Removes the file at `repo`/`path`, or every file under it when it names a folder;
    /// returns how many were removed. Blobs stay: they are shared by content, as a trash can
    /// would keep them.
    pub(super) fn remove(&self, repo: &str, path: &str) -> usize {
        let mut metadata = lock(&self.metadata);
        let Some(files) = metadata.repositories.get_mut(repo) else {
            return 0;
        };
        let before = files.len();
        let folder_prefix = format!("{path}/");
        files.retain(|existing, _| existing != path && !existing.starts_with(&folder_prefix));
        before - files.len()
    }

    /// Adds `properties` to the file at `repo`/`path` (a key already there is replaced);
    /// `false` when there is no such file.
    pub(super) fn add_properties(&self, repo: &str, path: &str, properties: Properties) -> bool {
        let mut metadata = lock(&self.metadata);
        match metadata
            .repositories
            .get_mut(repo)
            .and_then(|files| files.get_mut(path))
        {
            Some(record) => {
                record.properties.extend(properties);
                true
            }
            None => false,
        }
    }

    /// Every repository key: the configured ones and any that holds files, sorted.
    pub(super) fn repository_keys(&self) -> Vec<String> {
        let metadata = lock(&self.metadata);
        let mut keys: std::collections::BTreeSet<String> =
            metadata.repositories.keys().cloned().collect();
        keys.extend(self.configured_repositories.iter().cloned());
        keys.into_iter().collect()
    }

    /// Every record of a repository as `(path, record)`, sorted by path.
    pub(super) fn records_in(&self, repo: &str) -> Vec<(String, ArtifactRecord)> {
        lock(&self.metadata)
            .repositories
            .get(repo)
            .map(|files| {
                files
                    .iter()
                    .map(|(path, record)| (path.clone(), record.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Applies property changes (`None` removes the key) to the file at `path`, or to every
    /// file under it when it names a folder (`path` empty: the whole repository) and
    /// `recursive` is set; a folder without `recursive` changes nothing. Returns how many files
    /// exist at or under `path`, 0 meaning "no such item".
    pub(super) fn change_properties(
        &self,
        repo: &str,
        path: &str,
        changes: &BTreeMap<String, Option<Vec<String>>>,
        recursive: bool,
    ) -> usize {
        let mut metadata = lock(&self.metadata);
        let Some(files) = metadata.repositories.get_mut(repo) else {
            return 0;
        };
        let prefix = if path.is_empty() {
            String::new()
        } else {
            format!("{path}/")
        };
        let mut found = 0;
        for (file_path, record) in files.iter_mut() {
            let is_the_file = file_path == path;
            let is_under = file_path.starts_with(&prefix) && !is_the_file;
            if !is_the_file && !is_under {
                continue;
            }
            found += 1;
            if is_under && !recursive {
                continue;
            }
            for (key, value) in changes {
                match value {
                    Some(values) => {
                        record.properties.insert(key.clone(), values.clone());
                    }
                    None => {
                        record.properties.remove(key);
                    }
                }
            }
        }
        found
    }

    /// Writes `metadata.json` atomically (temporary file, fsync, rename).
    pub(super) async fn persist(&self) -> std::io::Result<()> {
        let _writer = self.persist_lock.lock().await;
        let bytes = serde_json::to_vec_pretty(&*lock(&self.metadata))?;
        let temporary = self.root.join(format!("{METADATA_FILE}.tmp"));
        let mut file = tokio::fs::File::create(&temporary).await?;
        tokio::io::AsyncWriteExt::write_all(&mut file, &bytes).await?;
        file.sync_all().await?;
        drop(file);
        tokio::fs::rename(&temporary, self.root.join(METADATA_FILE)).await
    }

    /// The public view of one record.
    pub(super) fn stored_artifact(&self, repo: &str, path: &str) -> Option<StoredArtifact> {
        self.record(repo, path)
            .map(|record| self.to_stored_artifact(repo, path, record))
    }

    /// The public view of every record in a repository, sorted by path.
    pub(super) fn stored_artifacts(&self, repo: &str) -> Vec<StoredArtifact> {
        let records: Vec<(String, ArtifactRecord)> = lock(&self.metadata)
            .repositories
            .get(repo)
            .map(|files| {
                files
                    .iter()
                    .map(|(path, record)| (path.clone(), record.clone()))
                    .collect()
            })
            .unwrap_or_default();
        records
            .into_iter()
            .map(|(path, record)| self.to_stored_artifact(repo, &path, record))
            .collect()
    }

    fn to_stored_artifact(&self, repo: &str, path: &str, record: ArtifactRecord) -> StoredArtifact {
        StoredArtifact {
            repo: repo.to_string(),
            path: path.to_string(),
            size: record.size,
            content_path: self.blob_path(&record.sha256),
            sha1: record.sha1,
            sha256: record.sha256,
            md5: record.md5,
            properties: record.properties,
            created_by: record.created_by,
        }
    }
}
