//! A small JSON document kept in memory and rewritten atomically on disk after each change:
//! the npm package index and the build-info store live in these, beside the artifact store's
//! own `metadata.json`.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context as _;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::store::lock;

/// One JSON file under the data directory and its in-memory value.
#[derive(Debug)]
pub(super) struct JsonFile<T> {
    path: PathBuf,
    value: Mutex<T>,
    /// Serialises writes so a later snapshot is never overwritten by an earlier one.
    write_lock: tokio::sync::Mutex<()>,
}

impl<T: Serialize + DeserializeOwned + Default> JsonFile<T> {
    /// Loads `root/name`, or starts from the default value when the file does not exist.
    pub(super) fn open(root: &Path, name: &str) -> anyhow::Result<Self> {
        let path = root.join(name);
        let value = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("reading {}", path.display()))?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => T::default(),
            Err(error) => return Err(error).with_context(|| format!("reading {}", path.display())),
        };
        Ok(Self {
            path,
            value: Mutex::new(value),
            write_lock: tokio::sync::Mutex::new(()),
        })
    }

    /// Runs `read` on the current value.
    pub(super) fn read<R>(&self, read: impl FnOnce(&T) -> R) -> R {
        read(&lock(&self.value))
    }

    /// Runs `change` on the value; call [`JsonFile::persist`] afterwards.
    pub(super) fn update<R>(&self, change: impl FnOnce(&mut T) -> R) -> R {
        change(&mut lock(&self.value))
    }

    /// Writes the file atomically (temporary file, fsync, rename).
    pub(super) async fn persist(&self) -> Result<(), ApiError> {
        let _writer = self.write_lock.lock().await;
        let written = async {
            let bytes = serde_json::to_vec_pretty(&*lock(&self.value))?;
            let mut temporary = self.path.clone().into_os_string();
            temporary.push(".tmp");
            let temporary = PathBuf::from(temporary);
            let mut file = tokio::fs::File::create(&temporary).await?;
            tokio::io::AsyncWriteExt::write_all(&mut file, &bytes).await?;
            file.sync_all().await?;
            drop(file);
            tokio::fs::rename(&temporary, &self.path).await
        };
        written.await.map_err(|error: std::io::Error| {
            ApiError::internal("Cannot write a metadata file", &error)
        })
    }
}
