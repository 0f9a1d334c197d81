//! The journal of acknowledged jobs: what lets a worker that was killed mid-job (`kill -9`,
//! power loss, OOM) end those jobs on its next start instead of leaving them to CodePipeline's
//! action timeout.
//!
//! Format: one JSON file per job, `{state-dir}/jobs/{job id}.json`, holding
//! [`JournalEntry`] — ids and names only (including the name of the source the job came from, so
//! its result goes back to that account's job API), never configuration or credentials. An entry is
//! written (temporary file, fsync, rename, fsync of the directory) right after `AcknowledgeJob`
//! succeeds and removed once a result call has been accepted (or CodePipeline says the job has
//! already ended). Guarantees: every job this worker acknowledged and did not answer is in the
//! journal when the process dies, unless the disk write itself failed (then a warning was
//! logged). On start the worker fetches each entry's job with `GetJobDetails` and runs it again
//! — publishing is idempotent — then reports its result. A lock file makes sure only one worker
//! process uses a state directory.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What is remembered about an acknowledged job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    pub job_id: String,
    pub pipeline: String,
    pub execution_id: String,
    /// RFC 3339 time of the acknowledgement.
    pub acknowledged_at: String,
    /// The name of the source (account/region) the job came from, so a restarted worker
    /// reports it to the same job API. Absent in entries of workers before sources existed:
    /// those go to the first source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// Why the journal could not be used.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("could not use the state directory `{path}`; check --state-dir and its permissions")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "another worker process is using the state directory `{path}`; give each worker on a \
         host its own --state-dir"
    )]
    Locked { path: PathBuf },
}

/// The journal in one state directory, locked for this process while it lives.
#[derive(Debug)]
pub struct Journal {
    jobs: PathBuf,
    /// Held open for the lock; released when the process exits, however it exits.
    _lock: File,
}

impl Journal {
    /// Opens (creating if needed) the journal under `state_dir` and locks it.
    pub fn open(state_dir: &Path) -> Result<Self, JournalError> {
        let io_error = |path: &Path| {
            let path = path.to_owned();
            move |source| JournalError::Io { path, source }
        };
        let jobs = state_dir.join("jobs");
        fs::create_dir_all(&jobs).map_err(io_error(&jobs))?;
        let lock_path = state_dir.join("worker.lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_error(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(JournalError::Locked {
                    path: state_dir.to_owned(),
                });
            }
            Err(fs::TryLockError::Error(source)) => {
                return Err(JournalError::Io {
                    path: lock_path,
                    source,
                });
            }
        }
        Ok(Self { jobs, _lock: lock })
    }

    fn entry_path(&self, job_id: &str) -> PathBuf {
        // Job ids are UUIDs; anything else is hex-encoded so it can never name another path.
        let safe = if !job_id.is_empty()
            && job_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            job_id.to_owned()
        } else {
            format!("x{}", hex::encode(job_id))
        };
        self.jobs.join(format!("{safe}.json"))
    }

    /// Durably records an acknowledged job.
    pub fn record(&self, entry: &JournalEntry) -> Result<(), JournalError> {
        let path = self.entry_path(&entry.job_id);
        let temporary = path.with_extension("json.tmp");
        let io_error = |source| JournalError::Io {
            path: path.clone(),
            source,
        };
        let bytes = serde_json::to_vec_pretty(entry).map_err(|e| io_error(io::Error::other(e)))?;
        let mut file = File::create(&temporary).map_err(io_error)?;
        file.write_all(&bytes).map_err(io_error)?;
        file.sync_all().map_err(io_error)?;
        fs::rename(&temporary, &path).map_err(io_error)?;
        File::open(&self.jobs)
            .and_then(|dir| dir.sync_all())
            .map_err(io_error)
    }

    /// Forgets a job whose result was delivered.
    pub fn remove(&self, job_id: &str) -> Result<(), JournalError> {
        let path = self.entry_path(job_id);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(JournalError::Io { path, source }),
        }
    }

    /// Every job acknowledged by an earlier process and never answered.
    pub fn pending(&self) -> Result<Vec<JournalEntry>, JournalError> {
        let io_error = |source| JournalError::Io {
            path: self.jobs.clone(),
            source,
        };
        let mut entries = Vec::new();
        for item in fs::read_dir(&self.jobs).map_err(io_error)? {
            let path = item.map_err(io_error)?.path();
            if path.extension().is_none_or(|ext| ext != "json") {
                // A leftover temporary file: the process died before the rename, so the
                // acknowledgement it belongs to is recorded nowhere else; it is removed.
                let _ = fs::remove_file(&path);
                continue;
            }
            match fs::read(&path).map(|bytes| serde_json::from_slice::<JournalEntry>(&bytes)) {
                Ok(Ok(entry)) => entries.push(entry),
                Ok(Err(error)) => {
                    tracing::warn!(path = %path.display(), %error, "ignoring an unreadable journal entry");
                }
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "ignoring an unreadable journal entry");
                }
            }
        }
        entries.sort_by(|a, b| a.acknowledged_at.cmp(&b.acknowledged_at));
        Ok(entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(job_id: &str) -> JournalEntry {
        JournalEntry {
            job_id: job_id.to_owned(),
            pipeline: "nestbox-firmware".into(),
            execution_id: "e1".into(),
            acknowledged_at: "2026-11-26T09:13:04Z".into(),
            source: None,
        }
    }

    #[test]
    fn entries_survive_until_removed_and_the_directory_is_exclusive() {
        let state = tempfile::tempdir().unwrap();
        {
            let journal = Journal::open(state.path()).unwrap();
            journal
                .record(&entry("0f8fad5b-d9cb-469f-a165-70867728950e"))
                .unwrap();
            journal.record(&entry("../../etc/passwd")).unwrap();
            assert!(matches!(
                Journal::open(state.path()),
                Err(JournalError::Locked { .. })
            ));
        }
        let journal = Journal::open(state.path()).unwrap();
        let pending = journal.pending().unwrap();
        assert_eq!(pending.len(), 2);
        assert!(pending.iter().any(|e| e.job_id == "../../etc/passwd"));
        for file in fs::read_dir(state.path().join("jobs")).unwrap() {
            let name = file.unwrap().file_name().into_string().unwrap();
            assert!(!name.contains('/') && !name.contains(".."), "{name}");
        }
        journal.remove("../../etc/passwd").unwrap();
        journal
            .remove("0f8fad5b-d9cb-469f-a165-70867728950e")
            .unwrap();
        assert!(journal.pending().unwrap().is_empty());
    }
}
