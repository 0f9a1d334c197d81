//! Errors at the command-line edge: the chain (`error: …` then `Caused by: …`), then a hint
//! where a cause is recognised (wrong URL shape, missing permission, region mismatch, bad
//! credentials, unreachable endpoint).

use std::error::Error as StdError;

/// Renders `error` and its causes, then any hints.
pub fn render(error: &anyhow::Error) -> String {
    let chain: Vec<String> = error.chain().map(ToString::to_string).collect();
    let mut rendered = String::new();
    for (index, message) in chain.iter().enumerate() {
        // Some errors repeat their source's message; say it once.
        if index > 0 && chain[index - 1].ends_with(message.as_str()) {
            continue;
        }
        rendered.push_str(if index == 0 {
            "error: "
        } else {
            "\nCaused by: "
        });
        rendered.push_str(message);
    }
    for hint in hints(&chain.join("\n")) {
        rendered.push_str("\nhint: ");
        rendered.push_str(hint);
    }
    rendered
}

/// Hints for causes recognised in the text of an error chain.
pub fn hints(text: &str) -> Vec<&'static str> {
    let rules: [(&[&str], &str); 7] = [
        (
            &["but the input artifact has no revision"],
            "pass the revision with --revision (publish) or drop {Revision} / {ShortRevision} \
             from TargetPath",
        ),
        (
            &["AccessDenied", "not authorized to perform"],
            "the AWS identity lacks a permission: add the action named above to its IAM policy \
             (check needs codepipeline:ListActionTypes; the worker needs PollForJobs, \
             AcknowledgeJob, GetJobDetails, PutJobSuccessResult, PutJobFailureResult)",
        ),
        (
            &[
                "scoped to a valid region",
                "ActionTypeNotFound",
                "region mismatch",
            ],
            "custom action types and jobs are per region: set AWS_REGION to the region of the \
             pipeline",
        ),
        (
            &[
                "UnrecognizedClient",
                "InvalidClientTokenId",
                "security token included in the request is invalid",
                "SignatureDoesNotMatch",
                "signature we calculated does not match",
            ],
            "the AWS credentials were not accepted: check AWS_PROFILE / AWS_ACCESS_KEY_ID and \
             that temporary credentials have not expired",
        ),
        (
            &["is not a URL", "must be an http(s) URL", "has no host name"],
            "ArtifactoryHost is the registry's base URL, e.g. https://acme.jfrog.io (a trailing \
             /artifactory is accepted)",
        ),
        (
            &["no AWS region"],
            "set AWS_REGION (or a region in the AWS_PROFILE's config)",
        ),
        (
            &[
                "dispatch failure",
                "error trying to connect",
                "Connection refused",
                "could not reach",
            ],
            "the endpoint could not be reached: check the URL, DNS, proxy settings and that the \
             network allows the connection",
        ),
    ];
    rules
        .iter()
        .filter(|(needles, _)| needles.iter().any(|needle| text.contains(needle)))
        .map(|(_, hint)| *hint)
        .collect()
}

/// The chain of a standard error as one string per cause, for matching hints.
pub fn chain_text(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push('\n');
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_causes_get_a_hint_and_repeated_messages_are_said_once() {
        let error = anyhow::anyhow!(
            "User: arn:aws:iam::1:user/w is not authorized to perform: codepipeline:ListActionTypes"
        )
        .context("AccessDeniedException: User: arn:aws:iam::1:user/w is not authorized to perform: codepipeline:ListActionTypes")
        .context("could not list the action types");
        let rendered = render(&error);
        assert_eq!(rendered.matches("Caused by:").count(), 1, "{rendered}");
        assert!(
            rendered.contains("hint: the AWS identity lacks a permission"),
            "{rendered}"
        );
        let region = hints(
            "InvalidSignatureException: Credential should be scoped to a valid region, not 'us-east-2'.",
        );
        assert_eq!(region.len(), 1);
        assert!(region[0].contains("AWS_REGION"));
        assert!(hints("all fine").is_empty());
    }
}
