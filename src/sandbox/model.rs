//! The sandbox's public data types: what a test queues (`JobSpec`), what it reads back
//! (`JobRecord`, `JobResult`, `StoredObject`) and the log of every request (`RecordedCall`).

use std::collections::BTreeMap;
use std::path::PathBuf;

/// CodePipeline's `ActionTypeId`: the four values a worker polls for.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ActionTypeId {
    /// `Source`, `Build`, `Deploy`, `Test`, `Invoke`, `Approval` or `Compute`.
    pub category: String,
    /// `AWS`, `ThirdParty` or `Custom`; job workers only ever see `Custom`.
    pub owner: String,
    /// The custom action's provider name, e.g. `Artifactory`.
    pub provider: String,
    /// The custom action's version, e.g. `1`.
    pub version: String,
}

impl Default for ActionTypeId {
    /// The action type pipeline-publisher registers: `Deploy/Custom/Artifactory/1`.
    fn default() -> Self {
        Self {
            category: "Deploy".to_owned(),
            owner: "Custom".to_owned(),
            provider: "Artifactory".to_owned(),
            version: "1".to_owned(),
        }
    }
}

/// Which `artifactCredentials` a queued job carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CredentialsSpec {
    /// Fresh temporary credentials that the S3 stand-in accepts.
    #[default]
    Fresh,
    /// Well-formed temporary credentials that S3 has never heard of (403 InvalidAccessKeyId).
    Invalid,
}

/// One input or output artifact of a job: where CodePipeline says its zip lives in S3.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ArtifactSpec {
    /// The artifact's name in the pipeline, e.g. `BuildOutput`.
    pub name: String,
    /// The source revision the artifact was built from, if CodePipeline knows one.
    pub revision: Option<String>,
    /// The artifact bucket.
    pub bucket: String,
    /// The object key (CodePipeline's keys have no file extension).
    pub key: String,
}

impl ArtifactSpec {
    /// An artifact without a revision.
    pub fn new(name: &str, bucket: &str, key: &str) -> Self {
        Self {
            name: name.to_owned(),
            revision: None,
            bucket: bucket.to_owned(),
            key: key.to_owned(),
        }
    }
}

/// What a test asks the sandbox to queue; the sandbox adds ids, nonces and credentials.
#[derive(Clone, Debug)]
pub struct JobSpec {
    /// The action type the job belongs to; a poll for another type does not see it.
    pub action_type: ActionTypeId,
    /// The action's configuration properties, as the pipeline declares them.
    pub configuration: BTreeMap<String, String>,
    /// `pipelineContext.pipelineName`.
    pub pipeline_name: String,
    /// `pipelineContext.stage.name`.
    pub stage_name: String,
    /// `pipelineContext.action.name`.
    pub action_name: String,
    /// `pipelineContext.pipelineExecutionId`; a fresh UUID when `None`.
    pub execution_id: Option<String>,
    /// `data.inputArtifacts`.
    pub input_artifacts: Vec<ArtifactSpec>,
    /// `data.outputArtifacts`.
    pub output_artifacts: Vec<ArtifactSpec>,
    /// Whether the job's `artifactCredentials` work on S3.
    pub credentials: CredentialsSpec,
    /// `data.encryptionKey.id` (a KMS key) when set.
    pub encryption_key_id: Option<String>,
    /// The account the pipeline is in; the sandbox's own (`SandboxConfig::account_id`) when
    /// `None`. Only credentials of that account see the job.
    pub account: Option<String>,
    /// The region the pipeline is in; `SandboxConfig::region` when `None`. Only requests
    /// signed for that region see the job.
    pub region: Option<String>,
}

impl Default for JobSpec {
    fn default() -> Self {
        Self::new("demo-pipeline")
    }
}

impl JobSpec {
    /// A job of the default action type in `pipeline_name`, stage `Deploy`, action `Publish`,
    /// with no artifacts and no configuration.
    pub fn new(pipeline_name: &str) -> Self {
        Self {
            action_type: ActionTypeId::default(),
            configuration: BTreeMap::new(),
            pipeline_name: pipeline_name.to_owned(),
            stage_name: "Deploy".to_owned(),
            action_name: "Publish".to_owned(),
            execution_id: None,
            input_artifacts: Vec::new(),
            output_artifacts: Vec::new(),
            credentials: CredentialsSpec::Fresh,
            encryption_key_id: None,
            account: None,
            region: None,
        }
    }
}

/// Where a job is in its life, as CodePipeline's `JobStatus` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobStatus {
    /// Waiting for a worker to poll it.
    Queued,
    /// Handed out by `PollForJobs`, not yet acknowledged.
    Dispatched,
    /// Acknowledged (by us or, after `claim_elsewhere`, by another worker).
    InProgress,
    /// A `PutJobSuccessResult` was accepted.
    Succeeded,
    /// A `PutJobFailureResult` was accepted.
    Failed,
}

impl JobStatus {
    /// The name CodePipeline uses on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "Queued",
            Self::Dispatched => "Dispatched",
            Self::InProgress => "InProgress",
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
        }
    }
}

/// A result call the job API accepted.
#[derive(Clone, Debug, PartialEq)]
pub enum JobResult {
    /// `PutJobSuccessResult`.
    Success {
        /// `executionDetails.summary`.
        summary: Option<String>,
        /// `executionDetails.externalExecutionId`.
        external_execution_id: Option<String>,
        /// `executionDetails.percentComplete`.
        percent_complete: Option<i32>,
        /// `outputVariables`.
        output_variables: BTreeMap<String, String>,
        /// `continuationToken`; when set the sandbox queues a follow-up job carrying it.
        continuation_token: Option<String>,
        /// `currentRevision`, kept as sent.
        current_revision: Option<serde_json::Value>,
    },
    /// `PutJobFailureResult`.
    Failure {
        /// `failureDetails.type`, e.g. `ConfigurationError`.
        failure_type: String,
        /// `failureDetails.message`.
        message: String,
        /// `failureDetails.externalExecutionId`.
        external_execution_id: Option<String>,
    },
}

/// A snapshot of one job, for assertions.
#[derive(Clone, Debug)]
pub struct JobRecord {
    /// The job id (a UUID).
    pub id: String,
    /// Where the job is in its life.
    pub status: JobStatus,
    /// How many `AcknowledgeJob` calls succeeded (more than one never happens).
    pub acknowledgements: u32,
    /// Accepted result calls (more than one never happens).
    pub results: Vec<JobResult>,
    /// Rejected result calls: (error type, message).
    pub rejected_results: Vec<(String, String)>,
    /// The job's `artifactCredentials`: (access key id, secret access key, session token).
    pub credentials: (String, String, String),
    /// The `continuationToken` this job carries (set on follow-up jobs).
    pub continuation_token: Option<String>,
    /// True after `claim_elsewhere`: another worker owns the job.
    pub claimed_elsewhere: bool,
}

/// An object in the S3 stand-in; its bytes are in `content_path`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredObject {
    /// Size in bytes.
    pub size: u64,
    /// The file holding the object's bytes (inside the sandbox's private temp dir).
    pub content_path: PathBuf,
    /// `x-amz-server-side-encryption` sent with the PUT (`aws:kms`, `AES256`).
    pub sse: Option<String>,
    /// `x-amz-server-side-encryption-aws-kms-key-id` sent with the PUT.
    pub kms_key_id: Option<String>,
    /// The quoted MD5 ETag S3 would return.
    pub etag: String,
    /// `Content-Type` sent with the PUT, if any.
    pub content_type: Option<String>,
}

/// How a job-API call ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallOutcome {
    /// HTTP 200.
    Ok,
    /// HTTP 4xx with this `__type`, e.g. `InvalidNonceException`.
    Error(String),
}

/// One request the sandbox answered, in arrival order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordedCall {
    /// A CodePipeline job API call.
    JobApi {
        /// The operation from `X-Amz-Target`, e.g. `AcknowledgeJob`.
        operation: String,
        /// The `jobId` member of the request, when it had one.
        job_id: Option<String>,
        /// How it ended.
        outcome: CallOutcome,
        /// The account of the caller's credentials, once they were checked.
        account: Option<String>,
        /// The region the request was signed for, when it was signed.
        region: Option<String>,
    },
    /// An S3 request.
    S3 {
        /// `GET`, `HEAD`, `PUT`, ...
        method: String,
        /// The bucket (first path segment).
        bucket: String,
        /// The percent-decoded key.
        key: String,
        /// The access key id from the `Credential=` of the signature, if any.
        access_key_id: Option<String>,
        /// The HTTP status answered.
        status: u16,
    },
    /// An STS, Secrets Manager or SSM request.
    Aws {
        /// The signed service: `sts`, `secretsmanager` or `ssm`.
        service: String,
        /// The operation, e.g. `GetCallerIdentity` or `GetSecretValue`.
        operation: String,
        /// The access key id from the `Credential=` of the signature, if any.
        access_key_id: Option<String>,
        /// How it ended.
        outcome: CallOutcome,
    },
    /// An STS call (`AssumeRole`; `GetCallerIdentity` is not logged).
    Sts {
        /// The `Action`, e.g. `AssumeRole`.
        operation: String,
        /// `RoleArn` of an AssumeRole request.
        role_arn: Option<String>,
        /// How it ended (the STS error code on failure, e.g. `AccessDenied`).
        outcome: CallOutcome,
    },
    /// An SQS call.
    Sqs {
        /// The operation from `X-Amz-Target`, e.g. `ReceiveMessage`.
        operation: String,
        /// How it ended (the error's query-compatible code on failure, e.g. `AccessDenied`).
        outcome: CallOutcome,
        /// How many messages a `ReceiveMessage` returned.
        messages: usize,
    },
}
