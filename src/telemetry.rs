//! Logging: human-readable lines by default, JSON lines with `--log-format json`.
//!
//! Every line logged inside a job carries the job's span (job id, pipeline, stage, action,
//! execution id), in both formats.

use std::io::IsTerminal;

use tracing::Level;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::FilterFn;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Layer, SubscriberExt};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Builds the subscriber for `format` and `filter` (e.g. `info` or `pipeline_publisher=debug`),
/// writing to `writer` (with colours when `ansi`). Tests pass their own writer to capture logs.
pub fn subscriber<W>(
    format: LogFormat,
    filter: &str,
    writer: W,
    ansi: bool,
) -> anyhow::Result<Box<dyn tracing::Subscriber + Send + Sync>>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(filter).map_err(|error| {
        anyhow::anyhow!(
            "--log-level `{filter}` is not a valid filter ({error}); try `info` or `debug`"
        )
    })?;
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_target(true)
        .with_ansi(ansi);
    let layer = match format {
        LogFormat::Text => layer.boxed(),
        LogFormat::Json => layer
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .flatten_event(true)
            .boxed(),
    };
    Ok(Box::new(tracing_subscriber::registry().with(
        layer.with_filter(filter).with_filter(payload_guard()),
    )))
}

/// The AWS SDK's orchestrator logs whole responses at TRACE — for `PollForJobs` that includes
/// the action's secret properties in plain text. Those events are dropped whatever the filter
/// says, so even `--log-level trace` cannot leak a password.
fn payload_guard() -> FilterFn {
    FilterFn::new(|metadata| {
        !(*metadata.level() == Level::TRACE && metadata.target().starts_with("aws_smithy_runtime"))
    })
}

/// Installs the process-wide subscriber, logging to standard error.
pub fn init(format: LogFormat, filter: &str) -> anyhow::Result<()> {
    let ansi = std::io::stderr().is_terminal();
    let subscriber = subscriber(format, filter, std::io::stderr, ansi)?;
    tracing::subscriber::set_global_default(subscriber)?;
    Ok(())
}
