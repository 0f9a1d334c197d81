//! Many accounts and regions: STS `AssumeRole` with the real `aws-sdk-sts` client (and
//! aws-config's `AssumeRoleProvider`), and the job API partitioned by the caller's account
//! and signing region, with the real `aws-sdk-codepipeline` client.

use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_codepipeline::Client as CodePipeline;
use aws_sdk_sts::Client as Sts;
use aws_sdk_sts::error::ProvideErrorMetadata;

use super::tests::{action_type, code, poll};
use super::*;

const MEMBER: &str = "222233334444";
const OTHER_MEMBER: &str = "444455556666";
const ROLE: &str = "pipeline-publisher-poller";
const EXTERNAL_ID: &str = "fleet-7f3a-external";

/// An `SdkConfig` for the sandbox, signing for `region` with `credentials`.
async fn config_for(
    running: &RunningSandbox,
    region: &str,
    credentials: impl aws_credential_types::provider::ProvideCredentials + 'static,
) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .endpoint_url(&running.endpoint_url)
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await
}

/// The fleet's own worker identity, signing for `region`.
async fn worker_config(running: &RunningSandbox, region: &str) -> SdkConfig {
    let (key, secret) = running.sandbox.worker_credentials();
    config_for(
        running,
        region,
        Credentials::new(key, secret, None, None, "worker"),
    )
    .await
}

/// Assumes `role_arn` as the fleet's worker; the temporary credentials, or the STS error code.
async fn assume(
    running: &RunningSandbox,
    role_arn: &str,
    external_id: Option<&str>,
    duration_seconds: Option<i32>,
) -> Result<aws_sdk_sts::types::Credentials, String> {
    let sts = Sts::new(&worker_config(running, "eu-west-1").await);
    sts.assume_role()
        .role_arn(role_arn)
        .role_session_name("fleet-worker-1")
        .set_external_id(external_id.map(str::to_owned))
        .set_duration_seconds(duration_seconds)
        .send()
        .await
        .map(|output| output.credentials.unwrap())
        .map_err(|error| code(&error))
}

/// A CodePipeline client using temporary credentials from AssumeRole.
async fn member_client(
    running: &RunningSandbox,
    region: &str,
    credentials: &aws_sdk_sts::types::Credentials,
) -> CodePipeline {
    let credentials = Credentials::new(
        credentials.access_key_id(),
        credentials.secret_access_key(),
        Some(credentials.session_token().to_owned()),
        None,
        "assumed",
    );
    CodePipeline::new(&config_for(running, region, credentials).await)
}

fn job_in(account: Option<&str>, region: Option<&str>, pipeline: &str) -> JobSpec {
    JobSpec {
        account: account.map(str::to_owned),
        region: region.map(str::to_owned),
        ..JobSpec::new(pipeline)
    }
}

#[tokio::test]
async fn assumed_credentials_see_only_their_own_accounts_jobs() {
    let running = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let sandbox = &running.sandbox;
    let role_arn = sandbox.add_member_account(MEMBER, ROLE, Some(EXTERNAL_ID));
    assert_eq!(role_arn, format!("arn:aws:iam::{MEMBER}:role/{ROLE}"));
    let own_job = sandbox.queue_job(job_in(None, None, "own"));
    let member_job = sandbox.queue_job(job_in(Some(MEMBER), None, "member"));

    let credentials = assume(&running, &role_arn, Some(EXTERNAL_ID), None)
        .await
        .unwrap();
    assert!(credentials.access_key_id().starts_with("ASIA"));
    let member = member_client(&running, "eu-west-1", &credentials).await;

    // GetCallerIdentity names the assumed role in the member account.
    let identity_credentials = Credentials::new(
        credentials.access_key_id(),
        credentials.secret_access_key(),
        Some(credentials.session_token().to_owned()),
        None,
        "assumed",
    );
    let identity = Sts::new(&config_for(&running, "eu-west-1", identity_credentials).await)
        .get_caller_identity()
        .send()
        .await
        .unwrap();
    assert_eq!(identity.account(), Some(MEMBER));
    assert_eq!(
        identity.arn(),
        Some(format!("arn:aws:sts::{MEMBER}:assumed-role/{ROLE}/fleet-worker-1").as_str())
    );

    // The member's credentials see the member's job only, with the member's account id.
    let polled = member
        .poll_for_jobs()
        .action_type_id(action_type())
        .max_batch_size(10)
        .send()
        .await
        .unwrap();
    let [job] = polled.jobs() else {
        panic!("expected one job, got {:?}", polled.jobs().len())
    };
    assert_eq!(job.id(), Some(member_job.as_str()));
    assert_eq!(job.account_id(), Some(MEMBER));
    let pipeline_arn = job
        .data()
        .and_then(|data| data.pipeline_context())
        .and_then(|context| context.pipeline_arn());
    assert_eq!(
        pipeline_arn,
        Some(format!("arn:aws:codepipeline:eu-west-1:{MEMBER}:member").as_str())
    );

    // Nothing of the fleet's own account is visible or answerable with them.
    let error = member
        .get_job_details()
        .job_id(&own_job)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&error), "JobNotFoundException");
    let error = member
        .acknowledge_job()
        .job_id(&own_job)
        .nonce("1")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&error), "JobNotFoundException");

    // The member's job runs to the end with the member's credentials.
    member
        .acknowledge_job()
        .job_id(&member_job)
        .nonce(job.nonce().unwrap())
        .send()
        .await
        .unwrap();
    member
        .put_job_success_result()
        .job_id(&member_job)
        .send()
        .await
        .unwrap();
    assert_eq!(
        sandbox.job(&member_job).unwrap().status,
        JobStatus::Succeeded
    );

    // And the fleet's own credentials still see only their own account's job.
    let own = CodePipeline::new(&worker_config(&running, "eu-west-1").await);
    let polled = poll(&own, 10).await;
    assert_eq!(
        polled.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(),
        [own_job.as_str()]
    );
    let error = own
        .put_job_success_result()
        .job_id(&member_job)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&error), "JobNotFoundException");

    // The call log names the caller's account and signing region.
    let member_polls = sandbox
        .calls()
        .into_iter()
        .filter(|call| {
            matches!(call, RecordedCall::JobApi { operation, account: Some(account), region: Some(region), .. }
                if operation == "PollForJobs" && account == MEMBER && region == "eu-west-1")
        })
        .count();
    assert_eq!(member_polls, 1);
    running.shutdown().await;
}

#[tokio::test]
async fn assume_role_refuses_wrong_external_ids_untrusted_callers_and_failing_roles() {
    let running = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let sandbox = &running.sandbox;
    let role_arn = sandbox.add_member_account(MEMBER, ROLE, Some(EXTERNAL_ID));
    let open_role = sandbox.add_member_account(OTHER_MEMBER, ROLE, None);

    for external_id in [Some("wrong-external-id"), None] {
        assert_eq!(
            assume(&running, &role_arn, external_id, None).await,
            Err("AccessDenied".to_owned())
        );
    }
    let unknown = format!("arn:aws:iam::{MEMBER}:role/no-such-role");
    assert_eq!(
        assume(&running, &unknown, Some(EXTERNAL_ID), None).await,
        Err("AccessDenied".to_owned())
    );
    // A role without an external-id condition accepts requests that send one anyway.
    assert!(
        assume(&running, &open_role, Some(EXTERNAL_ID), None)
            .await
            .is_ok()
    );

    // Neither a job's artifact credentials nor assumed-role credentials are trusted.
    let job_id = sandbox.queue_job(JobSpec::new("p"));
    let (key, secret, token) = sandbox.job(&job_id).unwrap().credentials;
    let as_job = Sts::new(
        &config_for(
            &running,
            "eu-west-1",
            Credentials::new(key, secret, Some(token), None, "job"),
        )
        .await,
    );
    let error = as_job
        .assume_role()
        .role_arn(&role_arn)
        .role_session_name("from-a-job")
        .external_id(EXTERNAL_ID)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&error), "AccessDenied");
    let assumed = assume(&running, &open_role, None, None).await.unwrap();
    let chained = Sts::new(
        &config_for(
            &running,
            "eu-west-1",
            Credentials::new(
                assumed.access_key_id(),
                assumed.secret_access_key(),
                Some(assumed.session_token().to_owned()),
                None,
                "assumed",
            ),
        )
        .await,
    );
    let error = chained
        .assume_role()
        .role_arn(&role_arn)
        .role_session_name("chained")
        .external_id(EXTERNAL_ID)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&error), "AccessDenied");
    let message = error
        .into_service_error()
        .message()
        .unwrap_or_default()
        .to_owned();
    assert!(
        message.contains(&format!(
            "arn:aws:sts::{OTHER_MEMBER}:assumed-role/{ROLE}/fleet-worker-1 is not authorized \
             to perform: sts:AssumeRole on resource: {role_arn}"
        )),
        "{message}"
    );

    // The toggle for an unhealthy source, and back.
    sandbox.fail_assume_role(&role_arn, true);
    assert_eq!(
        assume(&running, &role_arn, Some(EXTERNAL_ID), None).await,
        Err("AccessDenied".to_owned())
    );
    sandbox.fail_assume_role(&role_arn, false);
    assert!(
        assume(&running, &role_arn, Some(EXTERNAL_ID), None)
            .await
            .is_ok()
    );

    // A signature made with the wrong secret is refused before any trust decision.
    let (key, _) = sandbox.worker_credentials();
    let forged = Sts::new(
        &config_for(
            &running,
            "eu-west-1",
            Credentials::new(key, "not-the-secret", None, None, "forged"),
        )
        .await,
    );
    let error = forged
        .assume_role()
        .role_arn(&role_arn)
        .role_session_name("forged")
        .external_id(EXTERNAL_ID)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&error), "SignatureDoesNotMatch");

    let refused = sandbox
        .calls()
        .into_iter()
        .filter(|call| {
            matches!(call, RecordedCall::Sts { outcome: CallOutcome::Error(code), .. }
                if code == "AccessDenied")
        })
        .count();
    assert_eq!(refused, 6);
    running.shutdown().await;
}

#[tokio::test]
async fn duration_seconds_is_checked_and_expired_credentials_are_refused() {
    let config = SandboxConfig {
        min_assume_role_duration: Duration::from_secs(1),
        ..SandboxConfig::default()
    };
    let running = Sandbox::start(config).await.unwrap();
    let sandbox = &running.sandbox;
    let role_arn = sandbox.add_member_account(MEMBER, ROLE, Some(EXTERNAL_ID));
    sandbox.queue_job(job_in(Some(MEMBER), None, "member"));

    for too_long in [3601, 43_201] {
        assert_eq!(
            assume(&running, &role_arn, Some(EXTERNAL_ID), Some(too_long)).await,
            Err("ValidationError".to_owned())
        );
    }
    let hour = assume(&running, &role_arn, Some(EXTERNAL_ID), None)
        .await
        .unwrap();
    let expires_in = hour.expiration().secs().saturating_sub(
        aws_sdk_sts::primitives::DateTime::from(std::time::SystemTime::now()).secs(),
    );
    assert!((3590..=3600).contains(&expires_in), "{expires_in}");

    let short = assume(&running, &role_arn, Some(EXTERNAL_ID), Some(1))
        .await
        .unwrap();
    let client = member_client(&running, "eu-west-1", &short).await;
    // Wait (bounded) for the credentials' one second to run out; each try is a real call.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let error = loop {
        match client
            .poll_for_jobs()
            .action_type_id(action_type())
            .send()
            .await
        {
            Err(error) => break error,
            Ok(_) => {
                assert!(tokio::time::Instant::now() < deadline, "never expired");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert_eq!(code(&error), "ExpiredTokenException");

    // With the default minimum, STS's 900 s applies.
    let strict = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let role_arn = strict
        .sandbox
        .add_member_account(MEMBER, ROLE, Some(EXTERNAL_ID));
    assert_eq!(
        assume(&strict, &role_arn, Some(EXTERNAL_ID), Some(899)).await,
        Err("ValidationError".to_owned())
    );
    strict.shutdown().await;
    running.shutdown().await;
}

#[tokio::test]
async fn aws_configs_assume_role_provider_refreshes_short_sessions() {
    let config = SandboxConfig {
        min_assume_role_duration: Duration::from_secs(1),
        ..SandboxConfig::default()
    };
    let running = Sandbox::start(config).await.unwrap();
    let sandbox = &running.sandbox;
    let role_arn = sandbox.add_member_account(MEMBER, ROLE, Some(EXTERNAL_ID));
    let first = sandbox.queue_job(job_in(Some(MEMBER), None, "member"));
    let second = sandbox.queue_job(job_in(Some(MEMBER), None, "member"));

    let worker = worker_config(&running, "eu-west-1").await;
    let provider = aws_config::sts::AssumeRoleProvider::builder(&role_arn)
        .external_id(EXTERNAL_ID)
        .session_name("fleet-worker-1")
        .session_length(Duration::from_secs(2))
        .configure(&worker)
        .build()
        .await;
    let client = CodePipeline::new(&config_for(&running, "eu-west-1", provider).await);
    assert_eq!(poll(&client, 1).await[0].0, first);
    // Sessions shorter than the credential cache's refresh buffer are fetched again for each
    // call, so every call still carries live credentials.
    assert_eq!(poll(&client, 1).await[0].0, second);
    let assumed = sandbox
        .calls()
        .into_iter()
        .filter(|call| {
            matches!(call, RecordedCall::Sts { outcome: CallOutcome::Ok, role_arn: Some(arn), .. }
                if *arn == role_arn)
        })
        .count();
    assert!(assumed >= 2, "{assumed} AssumeRole calls");
    running.shutdown().await;
}

#[tokio::test]
async fn jobs_are_partitioned_by_the_signing_region() {
    let config = SandboxConfig {
        extra_regions: vec!["us-east-1".to_owned()],
        ..SandboxConfig::default()
    };
    let running = Sandbox::start(config).await.unwrap();
    let sandbox = &running.sandbox;
    assert_eq!(sandbox.regions(), ["eu-west-1", "us-east-1"]);
    let ireland = sandbox.queue_job(job_in(None, None, "ireland"));
    let virginia = sandbox.queue_job(job_in(None, Some("us-east-1"), "virginia"));

    let eu = CodePipeline::new(&worker_config(&running, "eu-west-1").await);
    let us = CodePipeline::new(&worker_config(&running, "us-east-1").await);
    assert_eq!(poll(&eu, 10).await[0].0, ireland);
    let in_us = poll(&us, 10).await;
    assert_eq!(in_us.len(), 1);
    assert_eq!(in_us[0].0, virginia);
    let error = eu
        .get_job_details()
        .job_id(&virginia)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&error), "JobNotFoundException");
    let details = us.get_job_details().job_id(&virginia).send().await.unwrap();
    let arn = details
        .job_details()
        .and_then(|job| job.data())
        .and_then(|data| data.pipeline_context())
        .and_then(|context| context.pipeline_arn());
    assert_eq!(
        arn,
        Some("arn:aws:codepipeline:us-east-1:111122223333:virginia")
    );

    // A region the sandbox does not serve is refused as CodePipeline refuses a wrong scope.
    let elsewhere = CodePipeline::new(&worker_config(&running, "ap-south-1").await);
    let error = elsewhere
        .poll_for_jobs()
        .action_type_id(action_type())
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&error), "InvalidSignatureException");

    // The job's S3 credentials work in its own region.
    let (key, secret, token) = sandbox.job(&virginia).unwrap().credentials;
    sandbox
        .put_object("codepipeline-us-east-1-111122223333", "a/b", b"zip")
        .unwrap();
    let s3_config = config_for(
        &running,
        "us-east-1",
        Credentials::new(key, secret, Some(token), None, "job"),
    )
    .await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&s3_config)
            .force_path_style(true)
            .build(),
    );
    let object = s3
        .get_object()
        .bucket("codepipeline-us-east-1-111122223333")
        .key("a/b")
        .send()
        .await
        .unwrap();
    assert_eq!(object.content_length(), Some(3));
    running.shutdown().await;
}

#[tokio::test]
async fn a_member_accounts_action_type_can_be_missing() {
    let running = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let sandbox = &running.sandbox;
    let role_arn = sandbox.add_member_account(MEMBER, ROLE, Some(EXTERNAL_ID));
    let credentials = assume(&running, &role_arn, Some(EXTERNAL_ID), None)
        .await
        .unwrap();
    let member = member_client(&running, "eu-west-1", &credentials).await;
    let own = CodePipeline::new(&worker_config(&running, "eu-west-1").await);

    sandbox.set_action_type_missing(MEMBER, "eu-west-1", &ActionTypeId::default(), true);
    let error = member
        .poll_for_jobs()
        .action_type_id(action_type())
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&error), "ActionTypeNotFoundException");
    // Other accounts are unaffected.
    assert!(poll(&own, 1).await.is_empty());

    sandbox.set_action_type_missing(MEMBER, "eu-west-1", &ActionTypeId::default(), false);
    assert!(
        member
            .poll_for_jobs()
            .action_type_id(action_type())
            .send()
            .await
            .is_ok()
    );
    // Assumed credentials are for the job API only: S3 refuses them.
    let s3_config = config_for(
        &running,
        "eu-west-1",
        Credentials::new(
            credentials.access_key_id(),
            credentials.secret_access_key(),
            Some(credentials.session_token().to_owned()),
            None,
            "assumed",
        ),
    )
    .await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&s3_config)
            .force_path_style(true)
            .build(),
    );
    sandbox.put_object("bucket", "key", b"x").unwrap();
    let error = s3
        .get_object()
        .bucket("bucket")
        .key("key")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&error), "AccessDenied");
    running.shutdown().await;
}

#[tokio::test]
async fn wait_until_dispatched_returns_when_a_poll_hands_the_job_out() {
    let running = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let sandbox = running.sandbox.clone();
    let job_id = sandbox.queue_job(JobSpec::new("p"));
    assert!(
        !sandbox
            .wait_until_dispatched(&job_id, Duration::from_millis(20))
            .await
    );
    let client = CodePipeline::new(&worker_config(&running, "eu-west-1").await);
    let waiter = tokio::spawn({
        let sandbox = sandbox.clone();
        let job_id = job_id.clone();
        async move {
            sandbox
                .wait_until_dispatched(&job_id, Duration::from_secs(10))
                .await
        }
    });
    assert_eq!(poll(&client, 1).await[0].0, job_id);
    assert!(waiter.await.unwrap());
    running.shutdown().await;
}

#[tokio::test]
async fn the_job_api_can_be_rate_limited_per_account() {
    let running = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let sandbox = &running.sandbox;
    let role_arn = sandbox.add_member_account(MEMBER, ROLE, Some(EXTERNAL_ID));
    let credentials = assume(&running, &role_arn, Some(EXTERNAL_ID), None)
        .await
        .unwrap();
    let member = member_client(&running, "eu-west-1", &credentials).await;
    let own = CodePipeline::new(&worker_config(&running, "eu-west-1").await);
    // A very slow refill: the burst of 2 is all this test can use.
    sandbox.limit_job_api_rate(MEMBER, 0.001, 2);
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        let result = member
            .poll_for_jobs()
            .action_type_id(action_type())
            .send()
            .await;
        outcomes.push(
            result
                .map_err(|error| code(&error))
                .map(|_| "ok".to_owned()),
        );
    }
    assert_eq!(
        outcomes,
        [
            Ok("ok".to_owned()),
            Ok("ok".to_owned()),
            Err("ThrottlingException".to_owned())
        ]
    );
    // Another account is not limited.
    for _ in 0..3 {
        assert!(poll(&own, 1).await.is_empty());
    }
    sandbox.limit_job_api_rate(MEMBER, 0.0, 0);
    assert!(
        member
            .poll_for_jobs()
            .action_type_id(action_type())
            .send()
            .await
            .is_ok()
    );
    running.shutdown().await;
}
