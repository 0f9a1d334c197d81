//! The pipeline view's HTML: one section per pipeline, one card per action run with its status,
//! summary or failure, output variables and the entity and execution links. Server-rendered,
//! a small inline stylesheet, no script; every value escaped.

use std::fmt::Write;

use super::console::{ActionView, ConsoleStatus, Link, PIPELINES_PATH};
use super::html::{escape, path_segment};

/// What one page shows.
pub(crate) struct Page<'a> {
    pub(crate) region: &'a str,
    pub(crate) account_id: &'a str,
    /// `Some` for one pipeline's view, `None` for all of them.
    pub(crate) pipeline: Option<&'a str>,
    /// The actions to show, in the order they were queued.
    pub(crate) actions: &'a [ActionView],
}

const STYLESHEET: &str = "
body{margin:0;font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#16191f;background:#f2f3f3}
header.top{background:#232f3e;color:#fff;padding:10px 24px;display:flex;gap:16px;align-items:baseline}
header.top a{color:#fff;font-weight:600;text-decoration:none}
header.top .where{color:#d5dbdb;font-size:13px}
main{max-width:1100px;margin:0 auto;padding:16px 24px 48px}
h1{font-size:22px;margin:8px 0 16px}
h2{font-size:18px;margin:24px 0 8px}
h2 a{color:#16191f}
.muted{color:#5f6b7a}
article.action{background:#fff;border:1px solid #d5dbdb;border-left:6px solid #879596;border-radius:4px;padding:12px 16px;margin:0 0 12px}
article.succeeded{border-left-color:#1d8102}
article.failed{border-left-color:#d13212}
article.inprogress{border-left-color:#0073bb}
.head{display:flex;flex-wrap:wrap;gap:8px 16px;align-items:baseline}
.head h3{margin:0;font-size:16px}
.status{font-weight:600;padding:1px 8px;border-radius:10px;background:#eaeded}
.succeeded .status{color:#1d8102;background:#e9f5e4}
.failed .status{color:#d13212;background:#fdecea}
.inprogress .status{color:#0073bb;background:#e6f2fa}
a{color:#0073bb}
dl{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px;margin:10px 0 0}
dt{color:#5f6b7a}
dd{margin:0;overflow-wrap:anywhere}
code,pre{font:13px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
pre.message{margin:0;white-space:pre-wrap;background:#fdf3f1;padding:6px 8px;border-radius:3px}
table{border-collapse:collapse;margin-top:4px}
th,td{text-align:left;padding:2px 12px 2px 0;vertical-align:top;overflow-wrap:anywhere}
th{color:#5f6b7a;font-weight:600}
.no-link{color:#5f6b7a}
details{margin-top:8px}
summary{cursor:pointer;color:#5f6b7a}
";

/// The whole page.
pub(crate) fn render(page: &Page<'_>) -> String {
    let title = match page.pipeline {
        Some(name) => format!("{name} – CodePipeline"),
        None => "Pipelines – CodePipeline".to_owned(),
    };
    let mut html = String::new();
    html.push_str("<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    html.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    // Refresh by itself while a worker is still busy, so the page settles without a script.
    if page.actions.iter().any(|action| {
        matches!(
            action.status,
            ConsoleStatus::Queued | ConsoleStatus::InProgress
        )
    }) {
        html.push_str("<meta http-equiv=\"refresh\" content=\"2\">\n");
    }
    push(
        &mut html,
        format_args!("<title>{}</title>\n", escape(&title)),
    );
    push(
        &mut html,
        format_args!("<style>{STYLESHEET}</style>\n</head>\n<body>\n"),
    );
    push(
        &mut html,
        format_args!(
            "<header class=\"top\"><a href=\"{PIPELINES_PATH}\">CodePipeline</a>\
             <span class=\"where\">local stand-in · {} · account {}</span></header>\n<main>\n",
            escape(page.region),
            escape(page.account_id)
        ),
    );
    match page.pipeline {
        Some(name) => push(
            &mut html,
            format_args!(
                "<p class=\"muted\"><a href=\"{PIPELINES_PATH}\">Pipelines</a> › {}</p>\n<h1>{}</h1>\n",
                escape(name),
                escape(name)
            ),
        ),
        None => html.push_str("<h1>Pipelines</h1>\n"),
    }
    if page.actions.is_empty() {
        html.push_str("<p class=\"muted\">No jobs have been queued.</p>\n");
    }
    let mut pipelines: Vec<&str> = Vec::new();
    for action in page.actions {
        if !pipelines.contains(&action.pipeline_name.as_str()) {
            pipelines.push(&action.pipeline_name);
        }
    }
    for pipeline in pipelines {
        let segment = path_segment(pipeline);
        push(
            &mut html,
            format_args!(
                "<section class=\"pipeline\" id=\"pipeline-{segment}\">\n\
                 <h2><a href=\"{PIPELINES_PATH}/{segment}/view\">{}</a></h2>\n",
                escape(pipeline)
            ),
        );
        for action in page
            .actions
            .iter()
            .filter(|action| action.pipeline_name == pipeline)
        {
            render_action(&mut html, action);
        }
        html.push_str("</section>\n");
    }
    html.push_str("</main>\n</body>\n</html>\n");
    html
}

fn render_action(html: &mut String, action: &ActionView) {
    let status = action.status.as_str();
    push(
        html,
        format_args!(
            "<article class=\"action {}\" data-job-id=\"{}\">\n<div class=\"head\">\
             <h3>{} › {}</h3><span class=\"status\">{status}</span>",
            status.to_ascii_lowercase(),
            escape(&action.job_id),
            escape(&action.stage_name),
            escape(&action.action_name),
        ),
    );
    // The console names the provider under the action and links it to the entity URL.
    render_link(
        html,
        &action.entity_link,
        &action.action_type.provider,
        "entity-link",
    );
    render_link(html, &action.execution_link, "Details", "execution-link");
    html.push_str("</div>\n<dl>\n");
    if let Some(summary) = &action.summary {
        dd(html, "Summary", &escape(summary));
    }
    if let Some((failure_type, message)) = &action.failure {
        dd(
            html,
            "Failure type",
            &format!("<code>{}</code>", escape(failure_type)),
        );
        dd(
            html,
            "Message",
            &format!("<pre class=\"message\">{}</pre>", escape(message)),
        );
    }
    if let Some(external) = &action.external_execution_id {
        dd(
            html,
            "External execution ID",
            &format!("<code>{}</code>", escape(external)),
        );
    }
    for (label, link) in [
        ("Entity URL", &action.entity_link),
        ("Execution URL", &action.execution_link),
    ] {
        let shown = match link {
            Link::Follow(url) | Link::NotFollowable(url) => format!("<code>{}</code>", escape(url)),
            Link::Unavailable(why) => {
                format!("<span class=\"no-link\">none: {}</span>", escape(why))
            }
        };
        dd(html, label, &shown);
    }
    dd(
        html,
        "Pipeline execution ID",
        &format!("<code>{}</code>", escape(&action.pipeline_execution_id)),
    );
    dd(
        html,
        "Job ID",
        &format!("<code>{}</code>", escape(&action.job_id)),
    );
    let id = &action.action_type;
    dd(
        html,
        "Action provider",
        &escape(&format!(
            "{} / {} / {} / {}",
            id.category, id.owner, id.provider, id.version
        )),
    );
    html.push_str("</dl>\n");
    if !action.output_variables.is_empty() {
        html.push_str(
            "<details open class=\"variables\"><summary>Output variables</summary>\n<table>\
             <tr><th>Key</th><th>Value</th></tr>\n",
        );
        for (name, value) in &action.output_variables {
            push(
                html,
                format_args!(
                    "<tr><td><code>{}</code></td><td>{}</td></tr>\n",
                    escape(name),
                    escape(value)
                ),
            );
        }
        html.push_str("</table></details>\n");
    }
    if !action.configuration.is_empty() {
        html.push_str(
            "<details class=\"configuration\"><summary>Action configuration</summary>\n<table>\n",
        );
        for (name, value) in &action.configuration {
            push(
                html,
                format_args!(
                    "<tr><th>{}</th><td><code>{}</code></td></tr>\n",
                    escape(name),
                    escape(value)
                ),
            );
        }
        html.push_str("</table></details>\n");
    }
    html.push_str("</article>\n");
}

fn render_link(html: &mut String, link: &Link, text: &str, class: &str) {
    match link {
        Link::Follow(url) => push(
            html,
            format_args!(
                "<a class=\"{class}\" href=\"{}\">{}</a>",
                escape(url),
                escape(text)
            ),
        ),
        Link::NotFollowable(_) | Link::Unavailable(_) => push(
            html,
            format_args!("<span class=\"{class} no-link\">{}</span>", escape(text)),
        ),
    }
}

fn dd(html: &mut String, term: &str, definition_html: &str) {
    push(
        html,
        format_args!("<dt>{term}</dt><dd>{definition_html}</dd>\n"),
    );
}

fn push(html: &mut String, arguments: std::fmt::Arguments<'_>) {
    // Writing to a String cannot fail.
    let _ = html.write_fmt(arguments);
}

/// The page for a console path that does not exist.
pub(crate) fn not_found(path: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Not found – \
         CodePipeline</title><style>{STYLESHEET}</style></head><body><main><h1>Not found</h1>\
         <p>No console page at <code>{}</code>. The pipelines are at \
         <a href=\"{PIPELINES_PATH}\">{PIPELINES_PATH}</a>.</p></main></body></html>\n",
        escape(path)
    )
}
