//! `pipeline-publisher check`: a doctor for the set-up, printing a ✔/✘ checklist.
//!
//! AWS side: the region, whose credentials these are (STS `GetCallerIdentity`), and whether
//! the action type exists (`ListActionTypes`, read-only). Never `PollForJobs`: it would hand a
//! real job to the doctor and delay a pipeline. The registry side is in [`super::check_registry`].
//!
//! With sources (`--source`, `--sources-file`), the AWS checks run once per source, each line's
//! detail starting with `[NAME]`: the identity is asked with the source's credentials (so a
//! role that cannot be assumed fails there) and each of its action type versions is looked for
//! in its region.

use aws_sdk_codepipeline::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_codepipeline::types::ActionOwner;

use crate::cli::CheckArgs;
use crate::cli::sources::Source;
use crate::commands::check_registry;
use crate::commands::checklist::Checklist;
use crate::commands::settings::Settings;
use crate::error::inline_chain;
use crate::pipeline::ActionTypeId;
use crate::pipeline::sources::source_config;

/// Runs every check, prints the checklist; exit code 0 when nothing failed, else 1.
pub async fn run(args: CheckArgs) -> anyhow::Result<u8> {
    let mut checklist = Checklist::default();
    if args.skip_aws {
        checklist.skip("AWS", "--skip-aws");
    } else {
        let sdk_config = crate::app::load_aws_config().await;
        let action_type = args.action.action_type();
        if args.sources.sources.is_empty() && args.sources.sources_file.is_none() {
            aws_checks(&sdk_config, &action_type, &mut checklist).await;
        } else {
            let sources = args.sources.resolve(
                sdk_config.region().map(|r| r.as_ref()),
                &args.action.versions(),
            )?;
            for source in &sources {
                source_checks(&sdk_config, source, &action_type, &mut checklist).await;
            }
        }
    }
    let settings = Settings::load(&args.registry, &[])?;
    check_registry::registry_checks(&settings, &args.registry, &mut checklist).await;
    print!("{}", checklist.render());
    Ok(if checklist.failed() == 0 { 0 } else { 1 })
}

/// The checks of one configured source: its credentials (the role assumed) and each version.
async fn source_checks(
    sdk_config: &aws_config::SdkConfig,
    source: &Source,
    action_type: &ActionTypeId,
    checklist: &mut Checklist,
) {
    let config = source_config(sdk_config, &source.access("pipeline-publisher-check")).await;
    let versions = source.action_types(action_type);
    let prefix = format!("[{}] ", source.name);
    checks(&config, &versions, &prefix, checklist).await;
}

/// Region, identity and action type.
pub async fn aws_checks(
    sdk_config: &aws_config::SdkConfig,
    action_type: &ActionTypeId,
    checklist: &mut Checklist,
) {
    checks(sdk_config, std::slice::from_ref(action_type), "", checklist).await;
}

/// Region, identity and each action type; every detail starts with `prefix`.
async fn checks(
    sdk_config: &aws_config::SdkConfig,
    action_types: &[ActionTypeId],
    prefix: &str,
    checklist: &mut Checklist,
) {
    let mut checklist = Prefixed { prefix, checklist };
    let checklist = &mut checklist;
    let Some(region) = sdk_config.region().map(ToString::to_string) else {
        checklist.fail(
            "AWS region",
            "no region is configured",
            "set AWS_REGION to the region of your pipelines (or a region in the AWS_PROFILE's config)",
        );
        return;
    };
    checklist.pass("AWS region", region.clone());

    let sts = aws_sdk_sts::Client::new(sdk_config);
    match sts.get_caller_identity().send().await {
        Ok(identity) => checklist.pass(
            "AWS identity",
            format!(
                "{} (account {})",
                identity.arn().unwrap_or("unknown ARN"),
                identity.account().unwrap_or("unknown")
            ),
        ),
        Err(error) => {
            let (problem, code) = describe(&error);
            let fix = if code.contains("UnrecognizedClient")
                || code.contains("InvalidClientTokenId")
                || code.contains("ExpiredToken")
                || code.contains("SignatureDoesNotMatch")
            {
                "the credentials were not accepted: refresh them (aws sso login, a new session) or \
                 check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY"
            } else {
                "configure credentials: AWS_PROFILE, AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY, or \
                 an instance profile / task role; check network access to STS"
            };
            checklist.fail("AWS identity", problem, fix);
        }
    }

    let client = aws_sdk_codepipeline::Client::new(sdk_config);
    for action_type in action_types {
        action_type_check(&client, action_type, &region, checklist).await;
    }
}

/// A checklist whose every detail starts with a source's name.
struct Prefixed<'a> {
    prefix: &'a str,
    checklist: &'a mut Checklist,
}

impl Prefixed<'_> {
    fn pass(&mut self, name: &'static str, detail: impl Into<String>) {
        self.checklist
            .pass(name, format!("{}{}", self.prefix, detail.into()));
    }

    fn fail(&mut self, name: &'static str, problem: impl Into<String>, fix: impl Into<String>) {
        self.checklist
            .fail(name, format!("{}{}", self.prefix, problem.into()), fix);
    }
}

async fn action_type_check(
    client: &aws_sdk_codepipeline::Client,
    action_type: &ActionTypeId,
    region: &str,
    checklist: &mut Prefixed<'_>,
) {
    match find_action_type(client, action_type).await {
        Ok((true, _)) => checklist.pass("action type", format!("{action_type} exists in {region}")),
        Ok((false, others)) => checklist.fail(
            "action type",
            format!(
                "{action_type} does not exist in {region} ({} other {} action type{} there)",
                others,
                action_type.owner,
                if others == 1 { "" } else { "s" }
            ),
            format!(
                "create it with `aws codepipeline create-custom-action-type --cli-input-json \
                 file://action-definition.json --region {region}`, or set AWS_REGION to the \
                 pipeline's region (action types are per region), or fix --category / --provider / \
                 --action-version"
            ),
        ),
        Err(error) => {
            let (problem, code) = describe(&error);
            let fix = if code.contains("AccessDenied") || problem.contains("not authorized") {
                "allow codepipeline:ListActionTypes for this identity (only check needs it; the \
                 worker does not), or run check with a profile that has it"
            } else if problem.contains("scoped to a valid region") {
                "the endpoint belongs to another region than AWS_REGION: set AWS_REGION to the \
                 pipeline's region"
            } else {
                "check the credentials and network access to CodePipeline in this region"
            };
            checklist.fail("action type", problem, fix);
        }
    }
}

/// Whether the action type exists, and how many others of its owner there are.
async fn find_action_type(
    client: &aws_sdk_codepipeline::Client,
    wanted: &ActionTypeId,
) -> Result<
    (bool, usize),
    SdkError<aws_sdk_codepipeline::operation::list_action_types::ListActionTypesError>,
> {
    let mut next_token = None;
    let mut others = 0;
    // CodePipeline pages action types; a bounded number of pages covers any real account.
    for _page in 0..50 {
        let output = client
            .list_action_types()
            .action_owner_filter(ActionOwner::from(wanted.owner.as_str()))
            .set_next_token(next_token.take())
            .send()
            .await?;
        for action_type in output.action_types() {
            let Some(id) = action_type.id() else { continue };
            if id.category().as_str() == wanted.category
                && id.owner().as_str() == wanted.owner
                && id.provider() == wanted.provider
                && id.version() == wanted.version
            {
                return Ok((true, others));
            }
            others += 1;
        }
        match output.next_token() {
            Some(token) if !token.is_empty() => next_token = Some(token.to_owned()),
            _ => break,
        }
    }
    Ok((false, others))
}

/// `(message, error code)` of an SDK error: the service's code and message when it answered,
/// the transport chain otherwise.
fn describe<E, R>(error: &SdkError<E, R>) -> (String, String)
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match error {
        SdkError::ServiceError(context) => {
            let code = context.err().code().unwrap_or("Unknown").to_owned();
            let message = context.err().message().unwrap_or("").trim().to_owned();
            (format!("{code}: {message}"), code)
        }
        other => (inline_chain(other), String::new()),
    }
}
