//! pipeline-publisher: an AWS CodePipeline job worker that publishes build outputs to
//! Artifactory-compatible registries.
//!
//! Map of the crate, in the order a job flows through it:
//!
//! - [`worker`] — the poll loop: claims jobs, runs several at once, ends every claimed job with
//!   exactly one result, drains on shutdown. It is handed its control plane as a trait.
//! - [`pipeline`] — the CodePipeline side: the job model, the typed action configuration, the
//!   job API trait and its AWS SDK implementation, and failure classification.
//! - [`artifacts`] — downloads input artifacts with the job's own credentials and unzips them
//!   safely, hashing each file while it is written.
//! - [`publish`] — turns a job into a plan (which file goes where, with which properties) and
//!   carries it out; implements the worker's [`worker::JobHandler`].
//! - [`registry`] — the Artifactory-compatible REST client: short-lived tokens (renewed once),
//!   generic and Debian deploys, npm and PyPI uploads, build info, one retry policy for all.
//! - [`secret`] — secret values and the scrubber that keeps them out of messages.
//! - [`mock_registry`] and [`sandbox`] — local stand-ins for Artifactory, CodePipeline and S3,
//!   shared by `demo` and the tests.
//! - [`metrics`], [`health`], [`progress`] — what an operator sees of a running worker:
//!   Prometheus counters, `/healthz`, upload progress (bars on a terminal, lines in logs).
//! - [`commands`] — `publish PATH` and `check`, the one-shot commands.
//! - [`demo`], [`cli`], [`telemetry`] — the command-line edge.

pub mod app;
pub mod artifacts;
pub mod cli;
pub mod commands;
pub mod demo;
pub mod health;
pub mod metrics;
pub mod mock_registry;
pub mod pipeline;
pub mod progress;
pub mod publish;
pub mod registry;
pub mod sandbox;
pub mod secret;
pub mod telemetry;
pub mod worker;
