//! The pipeline view: the jobs queued on the sandbox shown as CodePipeline's console shows the
//! action, at the console's paths (`/codesuite/codepipeline/pipelines` and
//! `/codesuite/codepipeline/pipelines/{name}/view`), read-only and unauthenticated, for a
//! person's browser. The links come from the action type's URL templates (see
//! [`super::url_templates`]); the page itself is drawn by [`super::console_page`].

use std::collections::BTreeMap;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::Sandbox;
use super::action_types::ActionTypeDefinition;
use super::console_page;
use super::model::{ActionTypeId, JobResult, JobStatus};
use super::state::{Job, State as SandboxState};
use super::url_templates::{self, TemplateInputs};

/// Where the console's pages live, as on the real console.
pub const CONSOLE_PREFIX: &str = "/codesuite/codepipeline";
/// The list of pipelines and their actions: the page `demo --serve` points to.
pub const PIPELINES_PATH: &str = "/codesuite/codepipeline/pipelines";

/// A browser's request for a console page: a GET under the console's prefix that carries no
/// AWS signature (S3 requests always do, so a bucket of that name still reaches S3).
pub(crate) fn is_console_request(request: &Request) -> bool {
    let path = request.uri().path();
    let under_prefix = path == CONSOLE_PREFIX || path.starts_with(&format!("{CONSOLE_PREFIX}/"));
    let signed = request.headers().contains_key(header::AUTHORIZATION)
        || request
            .uri()
            .query()
            .is_some_and(|query| query.contains("X-Amz-Signature="));
    under_prefix && !signed && matches!(*request.method(), Method::GET | Method::HEAD)
}

/// Serves the console pages.
pub(crate) async fn handle(State(sandbox): State<Sandbox>, request: Request) -> Response {
    let path = request.uri().path().trim_end_matches('/');
    let pipeline = match path.strip_prefix(PIPELINES_PATH) {
        Some("") => None,
        Some(rest) => match rest
            .strip_prefix('/')
            .and_then(|rest| rest.strip_suffix("/view"))
            .filter(|name| !name.is_empty() && !name.contains('/'))
            .map(percent_decode)
        {
            Some(name) => Some(name),
            None => return not_found(path),
        },
        None if path == CONSOLE_PREFIX => None,
        None => return not_found(path),
    };
    let page = {
        let state = sandbox.inner.state();
        let config = &sandbox.inner.config;
        let actions: Vec<ActionView> = state
            .jobs
            .iter()
            .filter(|job| {
                pipeline
                    .as_ref()
                    .is_none_or(|name| &job.spec.pipeline_name == name)
            })
            .map(|job| action_view(&state, job))
            .collect();
        console_page::render(&console_page::Page {
            region: &config.region,
            account_id: &config.account_id,
            pipeline: pipeline.as_deref(),
            actions: &actions,
        })
    };
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        page,
    )
        .into_response()
}

fn not_found(path: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        console_page::not_found(path),
    )
        .into_response()
}

fn percent_decode(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8_lossy()
        .into_owned()
}

/// The action's status as the console names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ConsoleStatus {
    /// Created, no worker has it yet.
    Queued,
    InProgress,
    Succeeded,
    Failed,
}

impl ConsoleStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "Queued",
            Self::InProgress => "InProgress",
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
        }
    }
}

/// One console link: followed, shown as text, or absent with the reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Link {
    /// An http(s) URL the browser may follow.
    Follow(String),
    /// The template rendered to something a browser should not follow (not http(s)).
    NotFollowable(String),
    /// The template could not be rendered, or the action type has none.
    Unavailable(String),
}

/// Everything the page shows about one job, copied out of the state.
#[derive(Clone, Debug)]
pub(crate) struct ActionView {
    pub(crate) job_id: String,
    pub(crate) pipeline_name: String,
    pub(crate) stage_name: String,
    pub(crate) action_name: String,
    pub(crate) pipeline_execution_id: String,
    pub(crate) action_type: ActionTypeId,
    pub(crate) status: ConsoleStatus,
    pub(crate) summary: Option<String>,
    pub(crate) external_execution_id: Option<String>,
    /// `failureDetails`: (type, message).
    pub(crate) failure: Option<(String, String)>,
    pub(crate) output_variables: BTreeMap<String, String>,
    pub(crate) entity_link: Link,
    pub(crate) execution_link: Link,
    /// Declared properties with the pipeline's values, secrets masked as the console does.
    pub(crate) configuration: Vec<(String, String)>,
}

fn action_view(state: &SandboxState, job: &Job) -> ActionView {
    let definition = state.action_type_definitions.get(&job.spec.action_type);
    let (summary, external_execution_id, failure, output_variables) = match job.results.first() {
        Some(JobResult::Success {
            summary,
            external_execution_id,
            output_variables,
            ..
        }) => (
            summary.clone(),
            external_execution_id.clone(),
            None,
            output_variables.clone(),
        ),
        Some(JobResult::Failure {
            failure_type,
            message,
            external_execution_id,
        }) => (
            None,
            external_execution_id.clone(),
            Some((failure_type.clone(), message.clone())),
            BTreeMap::new(),
        ),
        None => (None, None, None, BTreeMap::new()),
    };
    let status = match job.status {
        JobStatus::Queued => ConsoleStatus::Queued,
        JobStatus::Dispatched | JobStatus::InProgress => ConsoleStatus::InProgress,
        JobStatus::Succeeded => ConsoleStatus::Succeeded,
        JobStatus::Failed => ConsoleStatus::Failed,
    };
    let link = |template: Option<&String>, external: Option<&str>| {
        let Some(definition) = definition else {
            return Link::Unavailable("the action type is not registered".to_owned());
        };
        let Some(template) = template else {
            return Link::Unavailable("the action type has no URL template for it".to_owned());
        };
        let inputs = TemplateInputs {
            definition,
            configuration: &job.spec.configuration,
            external_execution_id: external,
        };
        match url_templates::render(template, &inputs) {
            Ok(url) if url_templates::followable(&url).is_some() => Link::Follow(url),
            Ok(url) => Link::NotFollowable(url),
            Err(error) => Link::Unavailable(error.to_string()),
        }
    };
    let settings = definition.map(|definition| &definition.settings);
    // The console shows the entity link from the start, the execution link once the worker
    // has reported the external execution.
    let entity_link = link(settings.and_then(|s| s.entity_url_template.as_ref()), None);
    let execution_link = match (&external_execution_id, job.results.is_empty()) {
        (_, true) => Link::Unavailable("the action has not reported a result yet".to_owned()),
        (external, false) => link(
            settings.and_then(|s| s.execution_url_template.as_ref()),
            external.as_deref(),
        ),
    };
    ActionView {
        job_id: job.id.clone(),
        pipeline_name: job.spec.pipeline_name.clone(),
        stage_name: job.spec.stage_name.clone(),
        action_name: job.spec.action_name.clone(),
        pipeline_execution_id: job.pipeline_execution_id.clone(),
        action_type: job.spec.action_type.clone(),
        status,
        summary,
        external_execution_id,
        failure,
        output_variables,
        entity_link,
        execution_link,
        configuration: definition
            .map(|definition| shown_configuration(definition, &job.spec.configuration))
            .unwrap_or_default(),
    }
}

/// The declared properties the pipeline set, in declaration order; secret values masked.
fn shown_configuration(
    definition: &ActionTypeDefinition,
    configuration: &BTreeMap<String, String>,
) -> Vec<(String, String)> {
    definition
        .configuration_properties
        .iter()
        .filter_map(|property| {
            let value = configuration.get(&property.name)?;
            let shown = if property.secret {
                "****".to_owned()
            } else {
                value.clone()
            };
            Some((property.name.clone(), shown))
        })
        .collect()
}
