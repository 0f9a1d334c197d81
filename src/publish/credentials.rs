//! The job's artifact credentials, renewed through `GetJobDetails` before they expire.
//!
//! CodePipeline's temporary `artifactCredentials` last about 15 minutes, and a job that
//! downloads several large artifacts (or uploads a receipt at the end of a long publish) can
//! outlive them. Credentials older than [`RENEW_AFTER`] are renewed before the next S3 call;
//! if renewal fails, the old ones are tried anyway (S3 will say if they have expired) and the
//! failure is logged.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;
use tracing::{info, warn};

use crate::pipeline::job::ArtifactCredentials;
use crate::secret::Redactor;
use crate::worker::JobDetailsSource;

/// Renew well before the ~15 minute lifetime, leaving room for a slow GetObject to start.
pub const RENEW_AFTER: Duration = Duration::from_secs(10 * 60);

/// The current credentials of one job.
pub struct JobCredentials {
    current: Mutex<(Option<ArtifactCredentials>, Instant)>,
    source: Arc<dyn JobDetailsSource>,
    redactor: Redactor,
}

impl JobCredentials {
    /// Starts from the credentials the job arrived with, obtained now.
    pub fn new(
        initial: Option<ArtifactCredentials>,
        source: Arc<dyn JobDetailsSource>,
        redactor: Redactor,
    ) -> Self {
        Self {
            current: Mutex::new((initial, Instant::now())),
            source,
            redactor,
        }
    }

    /// Credentials fit for the next S3 call, renewed first when they are getting old.
    pub async fn current(&self) -> Option<ArtifactCredentials> {
        let (credentials, obtained) = self.snapshot();
        if obtained.elapsed() < RENEW_AFTER {
            return credentials;
        }
        match self.source.job_details().await {
            Ok(data) if data.artifact_credentials.is_some() => {
                let fresh = data.artifact_credentials;
                if let Some(fresh) = &fresh {
                    // The new secrets must never show up in a message either.
                    self.redactor.add(&fresh.secret_access_key);
                    self.redactor.add(&fresh.session_token);
                }
                info!("renewed the job's artifact credentials through GetJobDetails");
                *self.lock() = (fresh.clone(), Instant::now());
                fresh
            }
            Ok(_) => {
                warn!("GetJobDetails returned no artifact credentials; using the old ones");
                credentials
            }
            Err(error) => {
                warn!(%error, "could not renew the job's artifact credentials; using the old ones");
                credentials
            }
        }
    }

    fn snapshot(&self) -> (Option<ArtifactCredentials>, Instant) {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Option<ArtifactCredentials>, Instant)> {
        self.current.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl crate::artifacts::CredentialSource for JobCredentials {
    fn current(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<ArtifactCredentials>> + Send + '_>>
    {
        Box::pin(JobCredentials::current(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::{JobApiError, JobData};
    use crate::secret::{ExposeSecret, SecretString};
    use crate::worker::BoxFuture;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn credentials(key: &str) -> ArtifactCredentials {
        ArtifactCredentials {
            access_key_id: key.to_owned(),
            secret_access_key: SecretString::from(format!("secret-of-{key}")),
            session_token: SecretString::from(format!("token-of-{key}")),
        }
    }

    struct Rotating(AtomicUsize);

    impl JobDetailsSource for Rotating {
        fn job_details(&self) -> BoxFuture<'_, Result<JobData, JobApiError>> {
            let call = self.0.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                Ok(JobData {
                    artifact_credentials: Some(credentials(&format!("ASIAFRESH{call}"))),
                    ..JobData::default()
                })
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn credentials_are_renewed_only_once_they_get_old() {
        let source = Arc::new(Rotating(AtomicUsize::new(0)));
        let redactor = Redactor::new();
        let job = JobCredentials::new(
            Some(credentials("ASIAFIRST")),
            source.clone(),
            redactor.clone(),
        );

        assert_eq!(job.current().await.unwrap().access_key_id, "ASIAFIRST");
        tokio::time::advance(RENEW_AFTER - Duration::from_secs(1)).await;
        assert_eq!(job.current().await.unwrap().access_key_id, "ASIAFIRST");
        assert_eq!(
            source.0.load(Ordering::SeqCst),
            0,
            "no GetJobDetails while fresh"
        );

        tokio::time::advance(Duration::from_secs(2)).await;
        let renewed = job.current().await.unwrap();
        assert_eq!(renewed.access_key_id, "ASIAFRESH0");
        assert_eq!(job.current().await.unwrap().access_key_id, "ASIAFRESH0");
        assert_eq!(source.0.load(Ordering::SeqCst), 1);
        assert_eq!(
            redactor.scrub(renewed.secret_access_key.expose_secret()),
            crate::secret::MASK,
            "renewed secrets are scrubbed from messages too"
        );
    }
}
