//! Object storage for the S3 stand-in: bodies live as files in the sandbox's private temp
//! dir, metadata in the shared state. Also the test-facing `put_object*` / `object` calls.

use std::io::Read;
use std::path::{Path, PathBuf};

use md5::{Digest, Md5};

use super::Sandbox;
use super::model::StoredObject;

impl Sandbox {
    /// Stores `body` as `bucket/key` (as if uploaded by someone else, e.g. CodeBuild).
    pub fn put_object(&self, bucket: &str, key: &str, body: &[u8]) -> anyhow::Result<()> {
        let path = self.new_object_path();
        std::fs::write(&path, body)?;
        let etag = quoted_etag(Md5::digest(body).as_slice());
        self.commit_object(bucket, key, object_at(path, body.len() as u64, etag));
        Ok(())
    }

    /// Stores a copy of the file at `source` as `bucket/key`, streaming it.
    pub fn put_object_from_file(
        &self,
        bucket: &str,
        key: &str,
        source: &Path,
    ) -> anyhow::Result<()> {
        let path = self.new_object_path();
        let mut reader = std::fs::File::open(source)?;
        let mut writer = std::fs::File::create(&path)?;
        let mut hasher = Md5::new();
        let mut buffer = vec![0u8; 256 * 1024];
        let mut size = 0u64;
        loop {
            let read = reader.read(&mut buffer)?;
            if read == 0 {
                break;
            }
            hasher.update(&buffer[..read]);
            std::io::Write::write_all(&mut writer, &buffer[..read])?;
            size += read as u64;
        }
        let etag = quoted_etag(hasher.finalize().as_slice());
        self.commit_object(bucket, key, object_at(path, size, etag));
        Ok(())
    }

    /// The object stored at `bucket/key`, if any.
    pub fn object(&self, bucket: &str, key: &str) -> Option<StoredObject> {
        let state = self.inner.state();
        state
            .objects
            .get(&(bucket.to_owned(), key.to_owned()))
            .cloned()
    }

    /// A fresh file name in the private storage dir (object keys never become paths).
    pub(crate) fn new_object_path(&self) -> PathBuf {
        let mut state = self.inner.state();
        state.next_file += 1;
        self.inner
            .storage
            .path()
            .join(format!("object-{}", state.next_file))
    }

    /// Makes `object` visible as `bucket/key`, deleting the file of the object it replaces
    /// (a reader streaming the old file keeps its open handle).
    pub(crate) fn commit_object(&self, bucket: &str, key: &str, object: StoredObject) {
        let replaced = {
            let mut state = self.inner.state();
            state
                .objects
                .insert((bucket.to_owned(), key.to_owned()), object)
        };
        if let Some(old) = replaced
            && let Err(error) = std::fs::remove_file(&old.content_path)
        {
            tracing::warn!(%error, "could not remove a replaced sandbox object");
        }
    }

    /// Opens the object's file under the lock, so a concurrent replacement cannot delete it
    /// between lookup and open.
    pub(crate) fn open_object(
        &self,
        bucket: &str,
        key: &str,
    ) -> Option<std::io::Result<(StoredObject, std::fs::File)>> {
        let state = self.inner.state();
        let object = state.objects.get(&(bucket.to_owned(), key.to_owned()))?;
        Some(std::fs::File::open(&object.content_path).map(|file| (object.clone(), file)))
    }
}

/// A plain object with no encryption settings.
fn object_at(content_path: PathBuf, size: u64, etag: String) -> StoredObject {
    StoredObject {
        size,
        content_path,
        sse: None,
        kms_key_id: None,
        etag,
        content_type: None,
    }
}

/// S3's ETag for a single-part upload: the quoted hex MD5 of the body.
pub(crate) fn quoted_etag(md5: &[u8]) -> String {
    format!("\"{}\"", hex::encode(md5))
}
