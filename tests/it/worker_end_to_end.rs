//! The real worker loop, end to end, against the CodePipeline/S3 stand-in and the mock registry
//! served on 127.0.0.1.

use std::collections::BTreeMap;

use pipeline_publisher::demo::{
    DEMO_PASSWORD, DEMO_REPO, DEMO_USER, FIRMWARE_EXAMPLE, LocalEnvironment,
};
use pipeline_publisher::mock_registry::{MockRegistryConfig, RequestAuth};
use pipeline_publisher::pipeline::JobSuccess;
use pipeline_publisher::pipeline::properties;
use pipeline_publisher::publish::JobError;
use pipeline_publisher::publish::PublisherSettings;
use pipeline_publisher::sandbox::{JobResult, RecordedCall};
use pipeline_publisher::worker::{ClaimedJob, JobContext, JobHandler};
use sha2::{Digest, Sha256};

const REVISION: &str = "9c1e5a2f7b3d4e6a8c0b1d2e3f4a5b6c7d8e9f01";

async fn environment() -> LocalEnvironment {
    LocalEnvironment::start()
        .await
        .expect("local environment starts")
}

fn only_result(environment: &LocalEnvironment, job_id: &str) -> JobResult {
    let record = environment.sandbox.sandbox.job(job_id).expect("job exists");
    assert_eq!(
        record.results.len(),
        1,
        "exactly one result: {:?}",
        record.results
    );
    assert!(
        record.rejected_results.is_empty(),
        "{:?}",
        record.rejected_results
    );
    record.results[0].clone()
}

fn failure(result: &JobResult) -> (&str, &str) {
    match result {
        JobResult::Failure {
            failure_type,
            message,
            ..
        } => (failure_type.as_str(), message.as_str()),
        other => panic!("expected a failure, got {other:?}"),
    }
}

/// Runs one job to its end and checks that the job's private directory was removed.
async fn run_one_firmware_job(
    environment: &LocalEnvironment,
    configuration: BTreeMap<String, String>,
    entries: &[(&str, &[u8])],
) -> JobResult {
    let artifact = environment
        .upload_artifact("BuildOutput", Some(REVISION), entries)
        .unwrap();
    let job_id = environment.queue_job("nestbox-firmware", configuration, vec![artifact]);
    let work_dir = tempfile::tempdir().unwrap();
    let publisher = environment
        .publisher(PublisherSettings {
            work_dir: Some(work_dir.path().to_owned()),
            ..PublisherSettings::default()
        })
        .unwrap();
    environment.run_worker(publisher, 1).await.unwrap();
    let left_behind: Vec<_> = std::fs::read_dir(work_dir.path()).unwrap().collect();
    assert!(
        left_behind.is_empty(),
        "the job directory is removed: {left_behind:?}"
    );
    only_result(environment, &job_id)
}

#[tokio::test]
async fn publishes_the_firmware_build_with_checksums_properties_and_a_revoked_token() {
    let environment = environment().await;
    let configuration = environment.firmware_configuration();
    let result = run_one_firmware_job(&environment, configuration, FIRMWARE_EXAMPLE).await;

    let JobResult::Success {
        summary,
        external_execution_id,
        output_variables,
        ..
    } = result
    else {
        panic!("expected success, got {result:?}");
    };
    let summary = summary.unwrap();
    assert!(summary.starts_with("Published 3 files"), "{summary}");
    // The console links the execution to the build in the registry's UI.
    let build_number = output_variables["BuildNumber"].clone();
    assert_eq!(output_variables["BuildName"], "nestbox-firmware");
    let external_execution_id = external_execution_id.unwrap();
    assert!(
        external_execution_id.starts_with(&format!("nestbox-firmware/{build_number}/"))
            && external_execution_id.ends_with("/published?buildRepo=artifactory-build-info"),
        "{external_execution_id}"
    );
    let build = environment
        .registry
        .registry
        .build_info("nestbox-firmware", &build_number)
        .expect("build info was published");
    let published_in_build: usize = build["modules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|module| module["artifacts"].as_array().unwrap().len())
        .sum();
    assert_eq!(published_in_build, 3, "{build}");
    assert_eq!(output_variables["PublishedCount"], "3");
    assert_eq!(output_variables["RepoKey"], DEMO_REPO);
    assert_eq!(output_variables["TargetPath"], "nestbox-cam/9c1e5a2");

    let registry = &environment.registry.registry;
    let stored = registry.artifacts(DEMO_REPO);
    assert_eq!(stored.len(), 3);
    for (name, bytes) in FIRMWARE_EXAMPLE {
        let artifact = registry
            .artifact(DEMO_REPO, &format!("nestbox-cam/9c1e5a2/{name}"))
            .unwrap_or_else(|| panic!("{name} was published"));
        assert_eq!(std::fs::read(&artifact.content_path).unwrap(), *bytes);
        assert_eq!(artifact.sha256, hex::encode(Sha256::digest(bytes)));
        let property = |key: &str| artifact.properties.get(key).cloned().unwrap_or_default();
        assert_eq!(property("codepipeline.pipeline"), ["nestbox-firmware"]);
        assert!(!property("codepipeline.stage").is_empty());
        assert!(!property("codepipeline.action").is_empty());
        assert!(!property("codepipeline.execution").is_empty());
        assert_eq!(property("vcs.revision"), [REVISION]);
        assert_eq!(property("build.name"), ["nestbox-firmware"]);
        assert_eq!(property("build.number"), property("codepipeline.execution"));
        assert_eq!(property("board"), ["rpi-zero-2w"]);
        assert_eq!(property("channel"), ["stable"]);
    }

    let tokens = registry.tokens();
    assert_eq!(tokens.len(), 1, "one token per job");
    assert!(tokens[0].revoked, "the job's token is revoked at the end");
    for request in registry.requests() {
        if request.method == "PUT" {
            assert!(
                matches!(request.auth, RequestAuth::Bearer { .. }),
                "deploys use the token, never the password: {request:?}"
            );
        }
        if !request.path.contains("/api/security/token")
            && !request.path.starts_with("/access/api/v1/tokens")
        {
            assert!(
                !matches!(request.auth, RequestAuth::Basic { .. }),
                "the password is only used to mint the token: {request:?}"
            );
        }
    }

    // Every S3 read used the job's temporary credentials, never the worker's own identity.
    let (worker_key, _) = environment.sandbox.sandbox.worker_credentials();
    let s3_calls: Vec<_> = environment
        .sandbox
        .sandbox
        .calls()
        .into_iter()
        .filter_map(|call| match call {
            RecordedCall::S3 {
                access_key_id,
                status,
                ..
            } => Some((access_key_id, status)),
            _ => None,
        })
        .collect();
    assert!(!s3_calls.is_empty());
    for (access_key_id, status) in s3_calls {
        assert_ne!(access_key_id.as_deref(), Some(worker_key.as_str()));
        // 206: artifacts are read with ranged GETs (a small one in a single range).
        assert!(matches!(status, 200 | 206), "{status}");
    }
}

#[tokio::test]
async fn a_configuration_missing_properties_fails_once_listing_all_of_them() {
    let environment = environment().await;
    let mut configuration = BTreeMap::new();
    configuration.insert(
        properties::ARTIFACTORY_HOST.to_owned(),
        environment.registry.base_url.clone(),
    );
    let result = run_one_firmware_job(&environment, configuration, FIRMWARE_EXAMPLE).await;
    let (failure_type, message) = failure(&result);
    assert_eq!(failure_type, "ConfigurationError");
    for property in ["RepoKey", "UserName", "Password"] {
        assert!(
            message.contains(&format!("{property}: is required")),
            "{message}"
        );
    }
    assert!(environment.registry.registry.tokens().is_empty());
}

#[tokio::test]
async fn a_zip_slip_archive_is_refused_and_nothing_is_published() {
    let environment = environment().await;
    let configuration = environment.firmware_configuration();
    let entries: &[(&str, &[u8])] = &[
        ("nestbox-cam-2.4.1.img", b"firmware"),
        (
            "../../home/pi/.ssh/authorized_keys",
            b"ssh-ed25519 AAAA attacker",
        ),
    ];
    let result = run_one_firmware_job(&environment, configuration, entries).await;
    let (failure_type, message) = failure(&result);
    assert_eq!(failure_type, "ConfigurationError");
    assert!(
        message.contains("../../home/pi/.ssh/authorized_keys") && message.contains(".."),
        "{message}"
    );
    assert!(
        environment
            .registry
            .registry
            .artifacts(DEMO_REPO)
            .is_empty()
    );
    assert!(environment.registry.registry.tokens().is_empty());
}

#[tokio::test]
async fn a_job_claimed_by_another_worker_gets_no_result_from_us() {
    let environment = environment().await;
    let artifact = environment
        .upload_artifact("BuildOutput", Some(REVISION), FIRMWARE_EXAMPLE)
        .unwrap();
    let stolen = environment.queue_job(
        "nestbox-firmware",
        environment.firmware_configuration(),
        vec![artifact.clone()],
    );
    environment.sandbox.sandbox.claim_elsewhere(&stolen);
    let ours = environment.queue_job(
        "nestbox-firmware",
        environment.firmware_configuration(),
        vec![artifact],
    );
    let publisher = environment.publisher(PublisherSettings::default()).unwrap();
    let report = environment.run_worker(publisher, 1).await.unwrap();

    assert_eq!(report.not_ours, 1);
    let record = environment.sandbox.sandbox.job(&stolen).unwrap();
    assert!(record.results.is_empty() && record.rejected_results.is_empty());
    let acknowledged_stolen = environment.sandbox.sandbox.calls().into_iter().any(|call| {
        matches!(call, RecordedCall::JobApi { operation, job_id: Some(id), .. }
            if operation == "AcknowledgeJob" && id == stolen)
    });
    assert!(
        acknowledged_stolen,
        "the worker did try to acknowledge the stolen job"
    );
    assert!(matches!(
        only_result(&environment, &ours),
        JobResult::Success { .. }
    ));
}

#[tokio::test]
async fn an_unavailable_registry_is_a_readable_job_failure() {
    let environment = environment().await;
    environment.registry.registry.set_unavailable(true);
    let configuration = environment.firmware_configuration();
    let result = run_one_firmware_job(&environment, configuration, FIRMWARE_EXAMPLE).await;
    let (failure_type, message) = failure(&result);
    assert_eq!(failure_type, "JobFailed");
    assert!(
        message.contains("could not exchange UserName and Password"),
        "{message}"
    );
    assert!(message.contains("503"), "{message}");
}

#[tokio::test]
async fn an_unreachable_registry_is_a_readable_job_failure() {
    let environment = environment().await;
    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut configuration = environment.firmware_configuration();
    configuration.insert(
        properties::ARTIFACTORY_HOST.to_owned(),
        format!("http://127.0.0.1:{closed_port}"),
    );
    let result = run_one_firmware_job(&environment, configuration, FIRMWARE_EXAMPLE).await;
    let (failure_type, message) = failure(&result);
    assert_eq!(failure_type, "JobFailed");
    assert!(
        message.contains(&format!(
            "could not reach the registry at http://127.0.0.1:{closed_port}"
        )),
        "{message}"
    );
}

#[tokio::test]
async fn job_credentials_that_s3_refuses_are_a_permission_error() {
    let environment = environment().await;
    let artifact = environment
        .upload_artifact("BuildOutput", Some(REVISION), FIRMWARE_EXAMPLE)
        .unwrap();
    let job_id = environment.queue_job(
        "nestbox-firmware",
        environment.firmware_configuration(),
        vec![artifact],
    );
    environment.sandbox.sandbox.revoke_job_credentials(&job_id);
    let publisher = environment.publisher(PublisherSettings::default()).unwrap();
    environment.run_worker(publisher, 1).await.unwrap();
    let result = only_result(&environment, &job_id);
    let (failure_type, message) = failure(&result);
    assert_eq!(failure_type, "PermissionError");
    assert!(
        message.contains("could not download input artifact `BuildOutput`"),
        "{message}"
    );
}

#[tokio::test]
async fn republishing_identical_content_succeeds_and_different_content_is_refused() {
    let environment = environment().await;
    let mut configuration = environment.firmware_configuration();
    configuration.insert(
        properties::TARGET_PATH.to_owned(),
        "nestbox-cam/2.4.1".to_owned(),
    );

    let first = run_one_firmware_job(&environment, configuration.clone(), FIRMWARE_EXAMPLE).await;
    assert!(matches!(first, JobResult::Success { .. }), "{first:?}");
    let second = run_one_firmware_job(&environment, configuration.clone(), FIRMWARE_EXAMPLE).await;
    let JobResult::Success { summary, .. } = &second else {
        panic!("republish succeeds: {second:?}");
    };
    assert!(
        summary.as_deref().unwrap().contains("3 already published"),
        "{summary:?}"
    );

    let changed: &[(&str, &[u8])] = &[("nestbox-cam-2.4.1.img", b"a different image")];
    let third = run_one_firmware_job(&environment, configuration, changed).await;
    let (failure_type, message) = failure(&third);
    assert_eq!(failure_type, "JobFailed");
    let old_sha256 = hex::encode(Sha256::digest(FIRMWARE_EXAMPLE[0].1));
    let new_sha256 = hex::encode(Sha256::digest(b"a different image"));
    assert!(
        message.contains(&old_sha256) && message.contains(&new_sha256),
        "{message}"
    );
    assert!(message.contains("never overwritten"), "{message}");
    let stored = environment
        .registry
        .registry
        .artifact(DEMO_REPO, "nestbox-cam/2.4.1/nestbox-cam-2.4.1.img")
        .unwrap();
    assert_eq!(stored.sha256, old_sha256, "the release was not overwritten");
}

#[tokio::test]
async fn an_older_registry_without_the_access_api_gets_a_legacy_token() {
    let environment = LocalEnvironment::start_with(MockRegistryConfig {
        users: vec![(DEMO_USER.to_owned(), DEMO_PASSWORD.to_owned())],
        access_api: false,
        ..MockRegistryConfig::default()
    })
    .await
    .unwrap();
    let configuration = environment.firmware_configuration();
    let result = run_one_firmware_job(&environment, configuration, FIRMWARE_EXAMPLE).await;
    assert!(matches!(result, JobResult::Success { .. }), "{result:?}");
    let tokens = environment.registry.registry.tokens();
    assert_eq!(tokens.len(), 1);
    assert!(tokens[0].legacy && tokens[0].revoked, "{tokens:?}");
    assert_eq!(environment.registry.registry.artifacts(DEMO_REPO).len(), 3);
}

struct PanickingHandler;

impl JobHandler for PanickingHandler {
    type Error = JobError;

    async fn handle(&self, _job: ClaimedJob, _context: JobContext) -> Result<JobSuccess, JobError> {
        panic!("the flux capacitor is out of alignment");
    }
}

#[tokio::test]
async fn a_panic_inside_a_job_still_ends_it_with_one_failure() {
    let environment = environment().await;
    let artifact = environment
        .upload_artifact("BuildOutput", Some(REVISION), FIRMWARE_EXAMPLE)
        .unwrap();
    let job_id = environment.queue_job(
        "nestbox-firmware",
        environment.firmware_configuration(),
        vec![artifact],
    );
    let report = environment.run_worker(PanickingHandler, 1).await.unwrap();
    assert_eq!(report.failed, 1);
    let result = only_result(&environment, &job_id);
    let (failure_type, message) = failure(&result);
    assert_eq!(failure_type, "JobFailed");
    assert!(
        message.contains("panicked: the flux capacitor is out of alignment"),
        "{message}"
    );
    assert!(!message.contains(DEMO_PASSWORD));
}

#[tokio::test]
async fn job_api_throttling_is_absorbed_and_the_job_still_ends_once() {
    let environment = environment().await;
    // Every job-API call for a while answers ThrottlingException ("Rate exceeded"): the SDK's
    // own retries and the loop's backoff must absorb it without losing or doubling the job.
    environment.sandbox.sandbox.throttle_next(12);
    let configuration = environment.firmware_configuration();
    let result = run_one_firmware_job(&environment, configuration, FIRMWARE_EXAMPLE).await;
    assert!(matches!(result, JobResult::Success { .. }), "{result:?}");
    let throttled = environment
        .sandbox
        .sandbox
        .calls()
        .into_iter()
        .filter(|call| {
            matches!(call, RecordedCall::JobApi { outcome: pipeline_publisher::sandbox::CallOutcome::Error(code), .. }
                if code == "ThrottlingException")
        })
        .count();
    assert_eq!(throttled, 12);
}

#[tokio::test]
async fn job_api_outages_and_transient_s3_errors_are_absorbed() {
    let environment = environment().await;
    // HTTP 503 from the job API, then 503 SlowDown from S3 on the artifact download.
    environment.sandbox.sandbox.unavailable_next(6);
    environment.sandbox.sandbox.fail_s3_next(2);
    let configuration = environment.firmware_configuration();
    let result = run_one_firmware_job(&environment, configuration, FIRMWARE_EXAMPLE).await;
    assert!(matches!(result, JobResult::Success { .. }), "{result:?}");
    let calls = environment.sandbox.sandbox.calls();
    let unavailable = calls
        .iter()
        .filter(|call| {
            matches!(call, RecordedCall::JobApi { outcome: pipeline_publisher::sandbox::CallOutcome::Error(code), .. }
                if code == "ServiceUnavailableException")
        })
        .count();
    let slow_down = calls
        .iter()
        .filter(|call| matches!(call, RecordedCall::S3 { status: 503, .. }))
        .count();
    assert_eq!((unavailable, slow_down), (6, 2));
}
