//! Action type version 2 and its `Authentication` modes, through the real worker loop against
//! the CodePipeline/S3/STS stand-in and the mock registry: every mode publishes, a version 1 job
//! in the same run still does, and the fleet's trust keeps the worker's identity and secrets away
//! from hosts it did not allow.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use pipeline_publisher::demo::{DEMO_PASSWORD, DEMO_USER, LocalEnvironment};
use pipeline_publisher::mock_registry::{MockRegistryConfig, RequestAuth};
use pipeline_publisher::pipeline::config::FleetTrust;
use pipeline_publisher::pipeline::properties;
use pipeline_publisher::publish::PublisherSettings;
use pipeline_publisher::publish::login::LoginSettings;
use pipeline_publisher::sandbox::{ArtifactSpec, JobResult, JobSpec};

const REVISION: &str = "5d0c9a2f7b3d4e6a8c0b1d2e3f4a5b6c7d8e9f01";

/// The registry admin who maps roles (the publishing user is not an admin).
pub(crate) const ADMIN: (&str, &str) = ("jfrog-admin", "admin-password-4c1d");

pub(crate) fn registry_config() -> MockRegistryConfig {
    MockRegistryConfig {
        users: vec![
            (DEMO_USER.to_owned(), DEMO_PASSWORD.to_owned()),
            (ADMIN.0.to_owned(), ADMIN.1.to_owned()),
        ],
        admins: vec![ADMIN.0.to_owned()],
        ..MockRegistryConfig::default()
    }
}

pub(crate) async fn environment() -> LocalEnvironment {
    LocalEnvironment::start_with(registry_config())
        .await
        .expect("local environment starts")
}

/// The worker's settings with `allowed` as its `--allowed-registries`.
pub(crate) fn allowing(allowed: &[&str]) -> PublisherSettings {
    PublisherSettings {
        login: LoginSettings {
            trust: FleetTrust {
                allowed_registries: FleetTrust::parse_registries(
                    &allowed
                        .iter()
                        .map(|url| (*url).to_owned())
                        .collect::<Vec<_>>(),
                )
                .unwrap(),
                ..FleetTrust::default()
            },
            ..LoginSettings::default()
        },
        ..PublisherSettings::default()
    }
}

/// A version 2 configuration for the firmware publish with `authentication` and no password.
pub(crate) fn v2_configuration(host: &str, authentication: &str) -> BTreeMap<String, String> {
    [
        (properties::ARTIFACTORY_HOST, host),
        (properties::REPO_KEY, pipeline_publisher::demo::DEMO_REPO),
        (properties::TARGET_PATH, "nestbox-cam/{ShortRevision}"),
        (properties::AUTHENTICATION, authentication),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value.to_owned()))
    .collect()
}

pub(crate) fn artifact(environment: &LocalEnvironment, name: &str) -> ArtifactSpec {
    environment
        .upload_artifact(
            "BuildOutput",
            Some(REVISION),
            &[(name, b"firmware image bytes".as_slice())],
        )
        .unwrap()
}

/// Queues a job of action type `version` (`"1"` or `"2"`).
pub(crate) fn queue(
    environment: &LocalEnvironment,
    version: &str,
    configuration: BTreeMap<String, String>,
    inputs: Vec<ArtifactSpec>,
) -> String {
    let mut spec = JobSpec::new("nestbox-firmware");
    spec.action_type.version = version.to_owned();
    spec.configuration = configuration;
    spec.input_artifacts = inputs;
    environment.sandbox.sandbox.queue_job(spec)
}

pub(crate) fn only_result(environment: &LocalEnvironment, job_id: &str) -> JobResult {
    let record = environment.sandbox.sandbox.job(job_id).expect("job exists");
    assert_eq!(record.results.len(), 1, "{:?}", record.results);
    record.results[0].clone()
}

pub(crate) fn failure(result: &JobResult) -> (String, String) {
    match result {
        JobResult::Failure {
            failure_type,
            message,
            ..
        } => (failure_type.clone(), message.clone()),
        other => panic!("expected a failure, got {other:?}"),
    }
}

/// A registry host that records every connection it is offered and answers none.
pub(crate) struct HostileHost {
    pub url: String,
    pub connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl HostileHost {
    pub(crate) async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                drop(stream);
            }
        });
        Self {
            url,
            connections,
            task,
        }
    }

    pub(crate) fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for HostileHost {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test]
async fn a_host_the_fleet_did_not_allow_receives_nothing_in_any_passwordless_mode() {
    let environment = environment().await;
    let hostile = HostileHost::start().await;
    let modes = [
        "aws-iam",
        "oidc:aws-fleet",
        "secretsmanager:pipeline-publisher/acme",
        "ssm:/pipeline-publisher/acme",
    ];
    let jobs: Vec<String> = modes
        .iter()
        .map(|mode| {
            let inputs = vec![artifact(&environment, "fw.img")];
            queue(
                &environment,
                "2",
                v2_configuration(&hostile.url, mode),
                inputs,
            )
        })
        .collect();
    // The mock registry is allowed; the hostile host is not.
    let publisher = environment
        .publisher(allowing(&[environment.registry.base_url.as_str()]))
        .unwrap();
    environment
        .run_worker(publisher, jobs.len() as u64)
        .await
        .unwrap();

    for (mode, job_id) in modes.iter().zip(&jobs) {
        let (failure_type, message) = failure(&only_result(&environment, job_id));
        assert_eq!(failure_type, "ConfigurationError", "{mode}: {message}");
        assert!(
            message.contains(&hostile.url),
            "{mode}: names the host: {message}"
        );
        assert!(
            message.contains("--allowed-registries"),
            "{mode}: names the flag: {message}"
        );
    }
    assert_eq!(
        hostile.connections(),
        0,
        "the hostile host was never contacted"
    );
    // Nor was AWS asked for a secret or a token on its behalf.
    let calls = format!("{:?}", environment.sandbox.sandbox.calls());
    for operation in ["GetSecretValue", "GetParameter", "GetWebIdentityToken"] {
        assert!(
            !calls.contains(operation),
            "{operation} was called: {calls}"
        );
    }
}

#[tokio::test]
async fn without_allowed_registries_every_passwordless_mode_is_refused_and_password_still_works() {
    let environment = environment().await;
    let host = environment.registry.base_url.to_string();
    let refused = queue(
        &environment,
        "2",
        v2_configuration(&host, "aws-iam"),
        vec![artifact(&environment, "refused.img")],
    );
    let mut password = v2_configuration(&host, "password");
    password.insert(properties::USER_NAME.into(), DEMO_USER.into());
    password.insert(properties::PASSWORD.into(), DEMO_PASSWORD.into());
    let v2_password = queue(
        &environment,
        "2",
        password,
        vec![artifact(&environment, "v2.img")],
    );
    let v1 = queue(
        &environment,
        "1",
        environment.firmware_configuration(),
        vec![artifact(&environment, "v1.img")],
    );
    let publisher = environment.publisher(PublisherSettings::default()).unwrap();
    environment.run_worker(publisher, 3).await.unwrap();

    let (failure_type, message) = failure(&only_result(&environment, &refused));
    assert_eq!(failure_type, "ConfigurationError");
    assert!(
        message.contains("without --allowed-registries"),
        "{message}"
    );
    assert!(message.contains(host.trim_end_matches('/')), "{message}");
    for job in [&v2_password, &v1] {
        assert!(
            matches!(only_result(&environment, job), JobResult::Success { .. }),
            "{:?}",
            only_result(&environment, job)
        );
    }
    assert!(
        environment
            .registry
            .registry
            .artifact(
                pipeline_publisher::demo::DEMO_REPO,
                "nestbox-cam/5d0c9a2/v2.img"
            )
            .is_some()
    );
}

#[tokio::test]
async fn bad_authentication_values_and_a_missing_password_are_configuration_errors() {
    let environment = environment().await;
    let host = environment.registry.base_url.to_string();
    let unknown = queue(
        &environment,
        "2",
        v2_configuration(&host, "kerberos"),
        vec![artifact(&environment, "a.img")],
    );
    let no_password = {
        let mut configuration = v2_configuration(&host, "password");
        configuration.insert(properties::USER_NAME.into(), DEMO_USER.into());
        queue(
            &environment,
            "2",
            configuration,
            vec![artifact(&environment, "b.img")],
        )
    };
    let outside_prefix = queue(
        &environment,
        "2",
        v2_configuration(&host, "secretsmanager:prod/database"),
        vec![artifact(&environment, "c.img")],
    );
    let parameter_outside_prefix = queue(
        &environment,
        "2",
        v2_configuration(&host, "ssm:/prod/database"),
        vec![artifact(&environment, "d.img")],
    );
    let publisher = environment.publisher(allowing(&[host.as_str()])).unwrap();
    environment.run_worker(publisher, 4).await.unwrap();

    let (failure_type, message) = failure(&only_result(&environment, &unknown));
    assert_eq!(failure_type, "ConfigurationError");
    for form in ["aws-iam", "oidc:<provider name>", "secretsmanager:", "ssm:"] {
        assert!(message.contains(form), "lists {form}: {message}");
    }
    let (failure_type, message) = failure(&only_result(&environment, &no_password));
    assert_eq!(failure_type, "ConfigurationError");
    assert!(message.contains("Password: is required"), "{message}");
    for job in [&outside_prefix, &parameter_outside_prefix] {
        let (failure_type, message) = failure(&only_result(&environment, job));
        assert_eq!(failure_type, "ConfigurationError");
        assert!(
            message.contains("--secret-prefix `pipeline-publisher/`"),
            "{message}"
        );
    }
    let calls = format!("{:?}", environment.sandbox.sandbox.calls());
    for operation in ["GetSecretValue", "GetParameter"] {
        assert!(
            !calls.contains(operation),
            "{operation} was called: {calls}"
        );
    }
    assert!(
        environment
            .registry
            .registry
            .artifacts(pipeline_publisher::demo::DEMO_REPO)
            .is_empty(),
        "nothing was published"
    );
}

/// The JFrog admin's one call: maps the sandbox worker's role to `user`.
pub(crate) async fn map_worker_role(environment: &LocalEnvironment, user: &str) {
    let response = reqwest::Client::new()
        .put(format!(
            "{}/access/api/v1/aws/iam_role",
            environment.registry.base_url
        ))
        .basic_auth(ADMIN.0, Some(ADMIN.1))
        .json(&serde_json::json!({
            "username": user,
            "iam_role": environment.sandbox.sandbox.worker_role_arn(),
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
}

#[tokio::test]
async fn an_aws_iam_job_and_a_version_1_job_publish_in_the_same_worker_run() {
    let environment = environment().await;
    map_worker_role(&environment, DEMO_USER).await;
    let host = environment.registry.base_url.to_string();
    let iam = queue(
        &environment,
        "2",
        v2_configuration(&host, "aws-iam"),
        vec![artifact(&environment, "iam.img")],
    );
    let v1 = queue(
        &environment,
        "1",
        environment.firmware_configuration(),
        vec![artifact(&environment, "v1.img")],
    );
    let publisher = environment.publisher(allowing(&[host.as_str()])).unwrap();
    environment.run_worker(publisher, 2).await.unwrap();

    for job in [&iam, &v1] {
        let result = only_result(&environment, job);
        assert!(matches!(result, JobResult::Success { .. }), "{result:?}");
    }
    let stored = environment
        .registry
        .registry
        .artifact(
            pipeline_publisher::demo::DEMO_REPO,
            "nestbox-cam/5d0c9a2/iam.img",
        )
        .expect("the aws-iam job published its file");
    assert_eq!(stored.created_by, DEMO_USER, "as the user the role maps to");
    // Both jobs' tokens were revoked at the end.
    let tokens = environment.registry.registry.tokens();
    assert_eq!(tokens.len(), 2, "{tokens:?}");
    assert!(tokens.iter().all(|token| token.revoked), "{tokens:?}");
    // Only the version 1 job used a password (once, to mint its token); the aws-iam job
    // exchanged a signed STS request at the AWS endpoint, as JFrog's clients do.
    let requests = environment.registry.registry.requests();
    let with_password = requests
        .iter()
        .filter(|request| matches!(&request.auth, RequestAuth::Basic { username } if username == DEMO_USER))
        .count();
    assert_eq!(with_password, 1, "{requests:?}");
    let exchanges: Vec<_> = requests
        .iter()
        .filter(|request| request.path == "/access/api/v1/aws/token")
        .collect();
    assert_eq!(exchanges.len(), 1, "{requests:?}");
    assert_eq!(exchanges[0].query.as_deref(), Some("region=eu-west-1"));
    assert_eq!(exchanges[0].header("x-amz-region-set"), Some("eu-west-1"));
}

#[tokio::test]
async fn an_unmapped_role_and_a_registry_without_the_aws_endpoint_fail_with_the_fix() {
    // No mapping for the worker's role.
    let environment = environment().await;
    let host = environment.registry.base_url.to_string();
    let job = queue(
        &environment,
        "2",
        v2_configuration(&host, "aws-iam"),
        vec![artifact(&environment, "a.img")],
    );
    let publisher = environment.publisher(allowing(&[host.as_str()])).unwrap();
    environment.run_worker(publisher, 1).await.unwrap();
    let (failure_type, message) = failure(&only_result(&environment, &job));
    assert_eq!(failure_type, "PermissionError", "{message}");
    let role = environment.sandbox.sandbox.worker_role_arn();
    assert!(message.contains(&role), "names the role ARN: {message}");
    assert!(
        message.contains("PUT /access/api/v1/aws/iam_role"),
        "names the admin call: {message}"
    );
    assert!(
        environment
            .registry
            .registry
            .artifacts(pipeline_publisher::demo::DEMO_REPO)
            .is_empty()
    );

    // An Artifactory older than 7.90.10.
    let environment =
        LocalEnvironment::start_with(pipeline_publisher::mock_registry::MockRegistryConfig {
            users: vec![(DEMO_USER.to_owned(), DEMO_PASSWORD.to_owned())],
            aws_token_supported: false,
            ..Default::default()
        })
        .await
        .unwrap();
    let host = environment.registry.base_url.to_string();
    let job = queue(
        &environment,
        "2",
        v2_configuration(&host, "aws-iam"),
        vec![artifact(&environment, "b.img")],
    );
    let publisher = environment.publisher(allowing(&[host.as_str()])).unwrap();
    environment.run_worker(publisher, 1).await.unwrap();
    let (failure_type, message) = failure(&only_result(&environment, &job));
    assert_eq!(failure_type, "ConfigurationError", "{message}");
    assert!(
        message.contains("Artifactory 7.90.10 or later"),
        "{message}"
    );
    assert!(
        environment
            .registry
            .registry
            .artifacts(pipeline_publisher::demo::DEMO_REPO)
            .is_empty()
    );
}
