//! The wake-up queue: the real `aws-sdk-sqs` client long-polling the sandbox's SQS, which
//! receives the EventBridge-shaped event when a job is queued.

use std::time::Duration;

use aws_config::{BehaviorVersion, Region};
use aws_credential_types::Credentials;
use aws_sdk_sqs::Client as Sqs;
use aws_sdk_sqs::types::MessageSystemAttributeName;
use serde_json::Value;
use tokio::time::Instant;

use super::tests::code;
use super::*;

/// An SQS client with the fleet's worker credentials.
async fn sqs_client(running: &RunningSandbox) -> Sqs {
    let (key, secret) = running.sandbox.worker_credentials();
    sqs_client_with(running, Credentials::new(key, secret, None, None, "worker")).await
}

async fn sqs_client_with(running: &RunningSandbox, credentials: Credentials) -> Sqs {
    let config = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(running.sandbox.config().region.clone()))
        .credentials_provider(credentials)
        .endpoint_url(&running.endpoint_url)
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await;
    Sqs::new(&config)
}

async fn receive(
    client: &Sqs,
    queue_url: &str,
    wait_seconds: i32,
) -> Result<Vec<aws_sdk_sqs::types::Message>, String> {
    client
        .receive_message()
        .queue_url(queue_url)
        .wait_time_seconds(wait_seconds)
        .max_number_of_messages(10)
        .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
        .send()
        .await
        .map(|output| output.messages.unwrap_or_default())
        .map_err(|error| code(&error))
}

#[tokio::test]
async fn a_long_poll_returns_the_started_event_as_soon_as_a_job_is_queued() {
    let config = SandboxConfig {
        extra_regions: vec!["us-east-1".to_owned()],
        ..SandboxConfig::default()
    };
    let running = Sandbox::start(config).await.unwrap();
    let sandbox = running.sandbox.clone();
    let queue_url = sandbox.create_queue("pipeline-publisher-wake");
    assert_eq!(
        queue_url,
        "https://sqs.eu-west-1.amazonaws.com/111122223333/pipeline-publisher-wake"
    );
    let client = sqs_client(&running).await;

    // Nothing queued: a short poll answers empty at once.
    assert!(receive(&client, &queue_url, 0).await.unwrap().is_empty());

    let started = Instant::now();
    let long_poll = tokio::spawn({
        let client = client.clone();
        let queue_url = queue_url.clone();
        async move { receive(&client, &queue_url, 20).await }
    });
    // Queue the job once the long poll is waiting on the server.
    let deadline = Instant::now() + Duration::from_secs(5);
    while sandbox.sqs_receivers_waiting() == 0 {
        assert!(
            Instant::now() < deadline,
            "the long poll never reached the sandbox"
        );
        tokio::task::yield_now().await;
    }
    let mut spec = JobSpec::new("nestbox-firmware");
    spec.account = Some("222233334444".to_owned());
    spec.region = Some("us-east-1".to_owned());
    spec.stage_name = "Release".to_owned();
    spec.action_name = "PublishFirmware".to_owned();
    spec.execution_id = Some("6b1f9d4e-0000-4000-8000-00000000beef".to_owned());
    sandbox.queue_job(spec);
    let messages = long_poll.await.unwrap().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the long poll waited for its timeout instead of the message"
    );
    let [message] = messages.as_slice() else {
        panic!("expected one message, got {messages:?}")
    };
    let event: Value = serde_json::from_str(message.body().unwrap()).unwrap();
    assert_eq!(event["detail-type"], ACTION_EXECUTION_STATE_CHANGE);
    assert_eq!(event["source"], "aws.codepipeline");
    assert_eq!(event["version"], "0");
    assert_eq!(event["account"], "222233334444");
    assert_eq!(event["region"], "us-east-1");
    assert_eq!(
        event["resources"][0],
        "arn:aws:codepipeline:us-east-1:222233334444:nestbox-firmware"
    );
    let detail = &event["detail"];
    assert_eq!(detail["pipeline"], "nestbox-firmware");
    assert_eq!(
        detail["execution-id"],
        "6b1f9d4e-0000-4000-8000-00000000beef"
    );
    assert_eq!(detail["stage"], "Release");
    assert_eq!(detail["action"], "PublishFirmware");
    assert_eq!(detail["state"], "STARTED");
    assert_eq!(detail["region"], "us-east-1");
    assert_eq!(
        detail["type"],
        serde_json::json!({
            "owner": "Custom", "category": "Deploy", "provider": "Artifactory", "version": "1"
        })
    );
    assert!(event["time"].as_str().unwrap().ends_with('Z'));
    let md5 = hex::encode(<md5::Md5 as md5::Digest>::digest(
        message.body().unwrap().as_bytes(),
    ));
    assert_eq!(message.md5_of_body(), Some(md5.as_str()));

    // Deleted, it is gone; a made-up receipt handle is refused.
    client
        .delete_message()
        .queue_url(&queue_url)
        .receipt_handle(message.receipt_handle().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(
        sandbox.queue_counts(&queue_url),
        Some(QueueCounts::default())
    );
    let error = client
        .delete_message()
        .queue_url(&queue_url)
        .receipt_handle("not-a-handle")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&error), "ReceiptHandleIsInvalid");
    running.shutdown().await;
}

#[tokio::test]
async fn a_received_message_is_hidden_until_its_visibility_timeout_ends() {
    let running = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let sandbox = &running.sandbox;
    let queue_url = sandbox.create_queue("wake");
    let client = sqs_client(&running).await;
    sandbox.queue_job(JobSpec::new("p"));

    let first = client
        .receive_message()
        .queue_url(&queue_url)
        .visibility_timeout(1)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    assert_eq!(first.len(), 1);
    assert_eq!(
        sandbox.queue_counts(&queue_url),
        Some(QueueCounts {
            visible: 0,
            in_flight: 1
        })
    );
    assert!(receive(&client, &queue_url, 0).await.unwrap().is_empty());
    // A long poll answers when the message becomes visible again, not at its own timeout.
    let started = Instant::now();
    let again = receive(&client, &queue_url, 20).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    let [again] = again.as_slice() else {
        panic!("expected the message again, got {again:?}")
    };
    assert_eq!(again.message_id(), first[0].message_id());
    assert_ne!(again.receipt_handle(), first[0].receipt_handle());
    let count = again
        .attributes()
        .and_then(|attributes| attributes.get(&MessageSystemAttributeName::ApproximateReceiveCount))
        .map(String::as_str);
    assert_eq!(count, Some("2"));
    // The older receipt handle still deletes it, as on SQS.
    client
        .delete_message()
        .queue_url(&queue_url)
        .receipt_handle(first[0].receipt_handle().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(sandbox.queue_counts(&queue_url).unwrap().in_flight, 0);
    running.shutdown().await;
}

#[tokio::test]
async fn junk_messages_faults_and_foreign_credentials() {
    let running = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let sandbox = &running.sandbox;
    let queue_url = sandbox.create_queue("wake");
    let client = sqs_client(&running).await;

    // A message that is no CodePipeline event arrives as it was sent.
    sandbox.send_message(&queue_url, "{\"hello\": \"not an event\"}");
    let messages = receive(&client, &queue_url, 0).await.unwrap();
    assert_eq!(messages[0].body(), Some("{\"hello\": \"not an event\"}"));

    // An outage for two calls, then normal again.
    sandbox.fail_sqs(SqsFault::Unavailable, Some(2));
    for _ in 0..2 {
        assert_eq!(
            receive(&client, &queue_url, 0).await,
            Err("ServiceUnavailable".to_owned())
        );
    }
    assert!(receive(&client, &queue_url, 0).await.is_ok());

    // Access denied until cleared.
    sandbox.fail_sqs(SqsFault::AccessDenied, None);
    for _ in 0..3 {
        assert_eq!(
            receive(&client, &queue_url, 0).await,
            Err("AccessDenied".to_owned())
        );
    }
    sandbox.clear_sqs_fault();
    assert!(receive(&client, &queue_url, 0).await.is_ok());

    // GetQueueUrl and GetQueueAttributes, as a client resolving the queue would call them.
    let url = client
        .get_queue_url()
        .queue_name("wake")
        .send()
        .await
        .unwrap();
    assert_eq!(url.queue_url(), Some(queue_url.as_str()));
    let attributes = client
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap();
    let arn = attributes
        .attributes()
        .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
        .map(String::as_str);
    assert_eq!(arn, Some("arn:aws:sqs:eu-west-1:111122223333:wake"));
    let missing = "https://sqs.eu-west-1.amazonaws.com/111122223333/missing";
    assert_eq!(
        receive(&client, missing, 0).await,
        Err("AWS.SimpleQueueService.NonExistentQueue".to_owned())
    );

    // A member account's assumed credentials may not read the fleet's queue.
    let role_arn = sandbox.add_member_account("222233334444", "poller", None);
    let (key, secret) = sandbox.worker_credentials();
    let sts_config = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("eu-west-1"))
        .credentials_provider(Credentials::new(key, secret, None, None, "worker"))
        .endpoint_url(&running.endpoint_url)
        .load()
        .await;
    let assumed = aws_sdk_sts::Client::new(&sts_config)
        .assume_role()
        .role_arn(role_arn)
        .role_session_name("member-session")
        .send()
        .await
        .unwrap()
        .credentials
        .unwrap();
    let as_member = sqs_client_with(
        &running,
        Credentials::new(
            assumed.access_key_id(),
            assumed.secret_access_key(),
            Some(assumed.session_token().to_owned()),
            None,
            "assumed",
        ),
    )
    .await;
    assert_eq!(
        receive(&as_member, &queue_url, 0).await,
        Err("AccessDenied".to_owned())
    );
    running.shutdown().await;
}

#[tokio::test]
async fn shutdown_ends_a_long_poll_at_once() {
    let running = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let queue_url = running.sandbox.create_queue("wake");
    let client = sqs_client(&running).await;
    let sandbox = running.sandbox.clone();
    let long_poll = tokio::spawn(async move { receive(&client, &queue_url, 20).await });
    let deadline = Instant::now() + Duration::from_secs(5);
    while sandbox.sqs_receivers_waiting() == 0 {
        assert!(
            Instant::now() < deadline,
            "the long poll never reached the sandbox"
        );
        tokio::task::yield_now().await;
    }
    let started = Instant::now();
    running.shutdown().await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(long_poll.await.unwrap().unwrap().is_empty());
}
