//! A job's artifact credentials stay out of the worker's own credential cache. The SDK's cache
//! holds a bounded number of credential sets and evicts one at random when full; if every job's
//! S3 client joined it, a busy worker would keep evicting its own credentials and its sources'
//! assumed roles, re-assuming each role over and over (STS throttles `AssumeRole`, and each call
//! lands in the member account's CloudTrail).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_config::identity::IdentityCache;
use aws_credential_types::Credentials;
use aws_credential_types::provider::{self, ProvideCredentials, SharedCredentialsProvider};
use pipeline_publisher::artifacts::ArtifactStore;
use pipeline_publisher::demo::{FIRMWARE_EXAMPLE, LocalEnvironment};
use pipeline_publisher::publish::{Publisher, PublisherSettings};
use pipeline_publisher::sandbox::JobResult;

/// The worker's own credentials, counting how often the SDK asks for them.
#[derive(Debug)]
struct Counted {
    credentials: Credentials,
    asked: Arc<AtomicUsize>,
}

impl ProvideCredentials for Counted {
    fn provide_credentials<'a>(&'a self) -> provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        self.asked.fetch_add(1, Ordering::SeqCst);
        provider::future::ProvideCredentials::ready(Ok(self.credentials.clone()))
    }
}

#[tokio::test]
async fn jobs_do_not_evict_the_workers_own_credentials_from_the_cache() {
    let mut environment = LocalEnvironment::start().await.unwrap();
    let (access_key_id, secret) = environment.sandbox.sandbox.worker_credentials();
    let asked = Arc::new(AtomicUsize::new(0));
    let own = Counted {
        credentials: Credentials::new(access_key_id, secret, None, None, "counted"),
        asked: asked.clone(),
    };
    // A cache of one: any other credential set put in it would push the worker's out.
    environment.sdk_config = environment
        .sdk_config
        .to_builder()
        .credentials_provider(SharedCredentialsProvider::new(own))
        .identity_cache(IdentityCache::lazy().max_partitions(1).build())
        .build();
    let jobs: Vec<String> = (0..2)
        .map(|index| {
            let artifact = environment
                .upload_artifact(
                    "BuildOutput",
                    Some(&format!("{index:016x}")),
                    FIRMWARE_EXAMPLE,
                )
                .unwrap();
            let configuration = environment.firmware_configuration();
            environment.queue_job("nestbox-firmware", configuration, vec![artifact])
        })
        .collect();
    let publisher = Publisher::new(
        PublisherSettings::default(),
        ArtifactStore::new(environment.sdk_config.clone(), true),
        pipeline_publisher::registry::http_client().unwrap(),
    );
    environment.run_worker(publisher, 2).await.unwrap();

    for job in &jobs {
        let record = environment.sandbox.sandbox.job(job).unwrap();
        assert!(
            matches!(record.results.as_slice(), [JobResult::Success { .. }]),
            "{job}: {:?}",
            record.results
        );
    }
    // Every job-API call of both jobs was signed with the one cached set.
    assert_eq!(asked.load(Ordering::SeqCst), 1);
}
