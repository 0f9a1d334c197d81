//! S3 stand-in tests: the real `aws-sdk-s3` client against a served sandbox.

use aws_credential_types::Credentials;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;

use super::tests::{sdk_config, start_with};
use super::*;

/// An S3 client signing with the given credentials, path-style, at the sandbox.
async fn s3_client(
    running: &RunningSandbox,
    credentials: (&str, &str, Option<&str>),
) -> aws_sdk_s3::Client {
    let (key, secret, token) = credentials;
    let config = sdk_config(running, key, secret, token).await;
    let s3_config = aws_sdk_s3::config::Builder::from(&config)
        .credentials_provider(Credentials::new(
            key,
            secret,
            token.map(str::to_owned),
            None,
            "sandbox-test",
        ))
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(s3_config)
}

async fn job_client(running: &RunningSandbox, job_id: &str) -> aws_sdk_s3::Client {
    let (key, secret, token) = running.sandbox.job(job_id).unwrap().credentials;
    s3_client(running, (&key, &secret, Some(&token))).await
}

async fn get_code(client: &aws_sdk_s3::Client, bucket: &str, key: &str) -> String {
    let error = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_err();
    error
        .as_service_error()
        .and_then(|error| error.code())
        .unwrap_or("<none>")
        .to_owned()
}

#[tokio::test]
async fn artifacts_are_readable_only_with_live_job_credentials() {
    let (running, _) = start_with(SandboxConfig::default()).await;
    let sandbox = &running.sandbox;
    let bucket = sandbox.config().artifact_bucket.clone();
    let key = "firmware/BuildOutpu/Ab3dE9f";
    sandbox.put_object(&bucket, key, b"zip bytes").unwrap();
    let job_id = sandbox.queue_job(JobSpec::new("firmware"));
    let client = job_client(&running, &job_id).await;

    let object = client
        .get_object()
        .bucket(&bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    assert_eq!(object.content_length(), Some(9));
    let etag = format!("\"{}\"", "91e39f164925e8b875b65c81497a0106");
    assert_eq!(object.e_tag(), Some(etag.as_str()));
    assert!(object.last_modified().is_some());
    let body = object.body.collect().await.unwrap().into_bytes();
    assert_eq!(&body[..], b"zip bytes");
    let head = client
        .head_object()
        .bucket(&bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_length(), Some(9));

    assert_eq!(
        get_code(&client, &bucket, "firmware/missing").await,
        "NoSuchKey"
    );

    let (worker_key, worker_secret) = sandbox.worker_credentials();
    let as_worker = s3_client(&running, (&worker_key, &worker_secret, None)).await;
    assert_eq!(get_code(&as_worker, &bucket, key).await, "AccessDenied");

    let invalid_job = sandbox.queue_job(JobSpec {
        credentials: CredentialsSpec::Invalid,
        ..JobSpec::new("firmware")
    });
    let invalid = job_client(&running, &invalid_job).await;
    assert_eq!(get_code(&invalid, &bucket, key).await, "InvalidAccessKeyId");

    sandbox.revoke_job_credentials(&job_id);
    assert_eq!(get_code(&client, &bucket, key).await, "AccessDenied");

    let statuses: Vec<(Option<String>, u16)> = sandbox
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
    let job_key = sandbox.job(&job_id).unwrap().credentials.0;
    assert_eq!(statuses[0], (Some(job_key.clone()), 200));
    assert_eq!(statuses[2].1, 404);
    assert_eq!(statuses[3], (Some(worker_key), 403));
    assert_eq!(statuses.last().unwrap(), &(Some(job_key), 403));
    running.shutdown().await;
}

#[tokio::test]
async fn uploads_round_trip_plain_and_aws_chunked() {
    let (running, _) = start_with(SandboxConfig::default()).await;
    let sandbox = &running.sandbox;
    let bucket = sandbox.config().artifact_bucket.clone();
    let job_id = sandbox.queue_job(JobSpec::new("firmware"));
    let client = job_client(&running, &job_id).await;
    let content: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();

    // In-memory body: the SDK sends the CRC32 as a header.
    client
        .put_object()
        .bucket(&bucket)
        .key("out/plain")
        .body(ByteStream::from(content.clone()))
        .send()
        .await
        .unwrap();
    // Streaming body: the SDK sends aws-chunked with a trailing checksum.
    let source = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(source.path(), &content).unwrap();
    client
        .put_object()
        .bucket(&bucket)
        .key("out/dir/streamed report.zip")
        .body(ByteStream::from_path(source.path()).await.unwrap())
        .server_side_encryption(ServerSideEncryption::AwsKms)
        .ssekms_key_id("arn:aws:kms:eu-west-1:111122223333:key/k")
        .send()
        .await
        .unwrap();

    for key in ["out/plain", "out/dir/streamed report.zip"] {
        let stored = sandbox.object(&bucket, key).unwrap();
        assert_eq!(stored.size, content.len() as u64);
        assert_eq!(
            std::fs::read(&stored.content_path).unwrap(),
            content,
            "{key}"
        );
        let fetched = client
            .get_object()
            .bucket(&bucket)
            .key(key)
            .send()
            .await
            .unwrap();
        assert_eq!(fetched.e_tag(), Some(stored.etag.as_str()));
        let body = fetched.body.collect().await.unwrap().into_bytes();
        assert_eq!(body.len(), content.len());
    }
    let streamed = sandbox
        .object(&bucket, "out/dir/streamed report.zip")
        .unwrap();
    assert_eq!(streamed.sse.as_deref(), Some("aws:kms"));
    assert_eq!(
        streamed.kms_key_id.as_deref(),
        Some("arn:aws:kms:eu-west-1:111122223333:key/k")
    );
    assert_eq!(sandbox.object(&bucket, "out/plain").unwrap().sse, None);

    let from_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(from_file.path(), b"abc").unwrap();
    sandbox
        .put_object_from_file(&bucket, "in/copy", from_file.path())
        .unwrap();
    assert_eq!(
        sandbox.object(&bucket, "in/copy").unwrap().etag,
        "\"900150983cd24fb0d6963f7d28e17f72\""
    );
    running.shutdown().await;
}
