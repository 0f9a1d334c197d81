//! Downloads input artifacts from the artifact store with the job's own credentials.
//!
//! The S3 client for a job is built from the worker's shared AWS configuration (so endpoint
//! overrides such as `AWS_ENDPOINT_URL_S3` apply to it too) but with the job's temporary
//! `artifactCredentials` as its only credentials: the worker's own identity never touches the
//! artifact bucket, and needs no S3 permission at all.

use std::path::{Path, PathBuf};

use aws_credential_types::Credentials;
use aws_sdk_s3::config::{IdentityCache, Region};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use tokio::io::AsyncWriteExt;

use crate::pipeline::job::{Artifact, ArtifactCredentials};
use crate::secret::ExposeSecret;

/// Builds per-job S3 clients from the worker's shared configuration.
#[derive(Debug, Clone)]
pub struct ArtifactStore {
    sdk_config: aws_config::SdkConfig,
    /// Path-style addressing, for S3 stand-ins on 127.0.0.1 that cannot serve bucket subdomains.
    force_path_style: bool,
}

/// Why an artifact could not be downloaded.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error("the job carries no artifactCredentials, so the artifact store cannot be read")]
    NoCredentials,
    #[error(
        "S3 refused s3://{bucket}/{key} with the job's credentials ({code}: {message}); \
         check the pipeline's artifact store and its KMS key policy"
    )]
    AccessDenied {
        bucket: String,
        key: String,
        code: String,
        message: String,
    },
    #[error("s3://{bucket}/{key} does not exist; re-run the pipeline from its source stage")]
    NotFound { bucket: String, key: String },
    #[error("S3 GetObject for s3://{bucket}/{key} failed")]
    Failed {
        bucket: String,
        key: String,
        /// The SDK's error (service, timeout, connection), kept for its chain.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("the download of s3://{bucket}/{key} was interrupted")]
    Interrupted {
        bucket: String,
        key: String,
        #[source]
        source: aws_sdk_s3::primitives::ByteStreamError,
    },
    #[error("could not write the download to `{path}`")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{object} changed while it was being downloaded (S3 answered 412 PreconditionFailed to \
         {range} with If-Match {etag}); nothing was published, so that two versions are never \
         mixed: re-run the action to publish the current one"
    )]
    Changed {
        /// `s3://bucket/key`.
        object: String,
        range: String,
        etag: String,
    },
    #[error(
        "S3 answered {range} of {object} with {received} bytes instead of {expected}; nothing \
         was published (a proxy between the worker and S3 may be altering responses)"
    )]
    WrongLength {
        object: String,
        range: String,
        expected: u64,
        received: u64,
    },
    #[error(
        "S3 answered {range} of {object} with Content-Range `{content_range}`, not the range \
         asked for; nothing was published"
    )]
    BadContentRange {
        object: String,
        range: String,
        content_range: String,
    },
    #[error("{range} of {object} still failed after {attempts} attempts")]
    RangeFailed {
        object: String,
        range: String,
        attempts: u32,
        /// The last attempt's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl DownloadError {
    pub fn is_access_denied(&self) -> bool {
        matches!(self, DownloadError::AccessDenied { .. })
    }
}

impl ArtifactStore {
    pub fn new(sdk_config: aws_config::SdkConfig, force_path_style: bool) -> Self {
        Self {
            sdk_config,
            force_path_style,
        }
    }

    pub(super) fn client(
        &self,
        credentials: &ArtifactCredentials,
        region: Option<&str>,
    ) -> aws_sdk_s3::Client {
        let credentials = Credentials::new(
            credentials.access_key_id.clone(),
            credentials.secret_access_key.expose_secret().to_owned(),
            Some(credentials.session_token.expose_secret().to_owned()),
            None,
            "codepipeline-job",
        );
        // Static credentials need no cache, and the shared one must not hold them: it keeps a
        // bounded number of credential sets and evicts one at random when full, so each job's
        // set would push out the worker's own credentials and its sources' assumed roles,
        // which the next job-API call would then fetch again (STS throttles AssumeRole).
        let mut config = aws_sdk_s3::config::Builder::from(&self.sdk_config)
            .credentials_provider(credentials)
            .identity_cache(IdentityCache::no_cache())
            .force_path_style(self.force_path_style);
        if let Some(region) = region {
            config = config.region(Region::new(region.to_owned()));
        }
        aws_sdk_s3::Client::from_conf(config.build())
    }

    /// Streams `artifact` to `destination` and returns its size in bytes.
    pub async fn download(
        &self,
        artifact: &Artifact,
        credentials: Option<&ArtifactCredentials>,
        region: Option<&str>,
        destination: &Path,
    ) -> Result<u64, DownloadError> {
        let credentials = credentials.ok_or(DownloadError::NoCredentials)?;
        let client = self.client(credentials, region);
        let response = client
            .get_object()
            .bucket(&artifact.bucket)
            .key(&artifact.key)
            .send()
            .await
            .map_err(|error| classify(error, artifact))?;

        let write_error = |source| DownloadError::Write {
            path: destination.to_owned(),
            source,
        };
        let file = tokio::fs::File::create(destination)
            .await
            .map_err(write_error)?;
        let mut file = tokio::io::BufWriter::with_capacity(256 * 1024, file);
        let mut body = response.body;
        let mut size = 0u64;
        while let Some(chunk) =
            body.try_next()
                .await
                .map_err(|source| DownloadError::Interrupted {
                    bucket: artifact.bucket.clone(),
                    key: artifact.key.clone(),
                    source,
                })?
        {
            size += chunk.len() as u64;
            file.write_all(&chunk).await.map_err(write_error)?;
        }
        file.flush().await.map_err(write_error)?;
        Ok(size)
    }
}

/// S3 and KMS error codes that mean the job's credentials may not do this: a PermissionError,
/// for downloads and uploads alike.
pub(super) fn is_access_denied(code: &str) -> bool {
    matches!(
        code,
        "AccessDenied"
            | "InvalidAccessKeyId"
            | "SignatureDoesNotMatch"
            | "ExpiredToken"
            | "InvalidToken"
            | "TokenRefreshRequired"
            | "KMS.AccessDeniedException"
            | "KMS.NotFoundException"
    )
}

fn classify<E, R>(error: SdkError<E, R>, artifact: &Artifact) -> DownloadError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let bucket = artifact.bucket.clone();
    let key = artifact.key.clone();
    if let SdkError::ServiceError(context) = &error {
        let code = context.err().code().unwrap_or("");
        let message = context.err().message().unwrap_or("").to_owned();
        match code {
            "NoSuchKey" | "NoSuchBucket" | "NotFound" => {
                return DownloadError::NotFound { bucket, key };
            }
            code if is_access_denied(code) => {
                return DownloadError::AccessDenied {
                    bucket,
                    key,
                    code: code.to_owned(),
                    message,
                };
            }
            _ => {}
        }
    }
    DownloadError::Failed {
        bucket,
        key,
        source: Box::new(error),
    }
}
