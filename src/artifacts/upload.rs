//! Writing an output artifact to the artifact store with the job's own credentials, encrypted
//! with the pipeline's KMS key (`encryptionKey.id`) or, without one, the AWS managed key.

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;

use crate::artifacts::ArtifactStore;
use crate::pipeline::job::{Artifact, ArtifactCredentials, EncryptionKey};

/// Why an output artifact could not be written.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("the job carries no artifactCredentials, so the artifact store cannot be written")]
    NoCredentials,
    #[error(
        "S3 refused to write s3://{bucket}/{key} with the job's credentials ({code}: {message}); \
         check the pipeline's artifact store and its KMS key policy"
    )]
    AccessDenied {
        bucket: String,
        key: String,
        code: String,
        message: String,
    },
    #[error("S3 PutObject for s3://{bucket}/{key} failed")]
    Failed {
        bucket: String,
        key: String,
        /// The SDK's error (service, timeout, connection), kept for its chain.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl UploadError {
    pub fn is_access_denied(&self) -> bool {
        matches!(self, UploadError::AccessDenied { .. })
    }
}

impl ArtifactStore {
    /// Stores `bytes` (a zip) as `artifact`, SSE-KMS encrypted.
    pub async fn upload(
        &self,
        artifact: &Artifact,
        credentials: Option<&ArtifactCredentials>,
        region: Option<&str>,
        encryption_key: Option<&EncryptionKey>,
        bytes: Vec<u8>,
    ) -> Result<(), UploadError> {
        let credentials = credentials.ok_or(UploadError::NoCredentials)?;
        let client = self.client(credentials, region);
        let mut request = client
            .put_object()
            .bucket(&artifact.bucket)
            .key(&artifact.key)
            .content_type("application/zip")
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .body(ByteStream::from(bytes));
        if let Some(key) = encryption_key {
            request = request.ssekms_key_id(&key.id);
        }
        request
            .send()
            .await
            .map_err(|error| classify(error, artifact))?;
        Ok(())
    }
}

fn classify<E, R>(error: SdkError<E, R>, artifact: &Artifact) -> UploadError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let bucket = artifact.bucket.clone();
    let key = artifact.key.clone();
    if let SdkError::ServiceError(context) = &error {
        let code = context.err().code().unwrap_or("");
        if super::download::is_access_denied(code) {
            return UploadError::AccessDenied {
                bucket,
                key,
                code: code.to_owned(),
                message: context.err().message().unwrap_or("").to_owned(),
            };
        }
    }
    UploadError::Failed {
        bucket,
        key,
        source: Box::new(error),
    }
}
