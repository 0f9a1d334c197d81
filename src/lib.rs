//! pipeline-publisher: an AWS CodePipeline job worker that publishes build outputs to
//! Artifactory-compatible registries.
//!
//! ## Map, in the order a job flows through it
//!
//! - [`worker`] — the poll loop: claims jobs, runs several at once, ends every claimed job with
//!   exactly one result, drains on shutdown. It is handed its control plane and its handler as
//!   traits, and knows of a handler's errors only how to classify and render them.
//! - [`pipeline`] — the CodePipeline side: the job model, the typed action configuration, the
//!   job API trait and its AWS SDK implementation, failure types and how failures are told.
//! - [`artifacts`] — downloads input artifacts with the job's own credentials and unzips them
//!   safely, hashing each file while it is written.
//! - [`publish`] — turns a job into a plan (which file goes where, with which properties) and
//!   carries it out in one publish run shared with `publish PATH`; implements the worker's
//!   [`worker::JobHandler`] and owns the job's error type.
//! - [`aws_identity`] — the worker's own AWS identity for passwordless registry logins: a
//!   signed STS `GetCallerIdentity`, STS web identity tokens, logins kept in Secrets Manager or
//!   SSM. It knows no registry and no pipeline.
//! - [`registry`] — the Artifactory-compatible REST client: short-lived tokens (renewed once),
//!   generic and Debian deploys, npm and PyPI uploads, build info; it owns the [`registry::Reporter`]
//!   trait its callers implement to show progress. It knows nothing of CodePipeline.
//! - [`metrics`], [`health`], [`progress`] — what an operator sees of a running worker:
//!   Prometheus series, `/healthz`, upload progress (bars on a terminal, lines in logs).
//! - Leaves everything uses: [`error`] (the one chain renderer, hints), [`retry`] (every retry
//!   policy as data, backoff), [`checksum`], [`secret`], [`telemetry`]; `netem` (rate caps on
//!   byte streams, compiled only with `stand-ins`) for the stand-ins and benches.
//! - [`commands`], [`cli`], [`app`], `demo` — the command-line edge.
//! - `mock_registry` and `sandbox` — local stand-ins for Artifactory, CodePipeline and S3,
//!   shared by `demo` and the tests; compiled only with the default `stand-ins` feature, so the
//!   production worker (`--no-default-features`) carries none of them.
//!
//! ## Layers
//!
//! Lowest first. A module may use the modules of the lines above its own, and those before it
//! on its own line; stand-ins may use leaves only. `tests/it/architecture.rs` reads every
//! `crate::` path in `src/` and fails on an edge against this order and on any cycle.
//!
//! ```text
//! leaves:    error, retry, checksum, secret, telemetry, netem
//! aws:       pipeline, artifacts, aws_identity
//! registry:  registry
//! observe:   metrics, health, progress
//! loop:      worker
//! work:      publish
//! stand-ins: mock_registry, sandbox
//! edges:     cli, app, commands, demo
//! ```

pub mod app;
pub mod artifacts;
pub mod aws_identity;
pub mod checksum;
pub mod cli;
pub mod commands;
#[cfg(feature = "stand-ins")]
pub mod demo;
pub mod error;
pub mod health;
pub mod metrics;
#[cfg(feature = "stand-ins")]
pub mod mock_registry;
#[cfg(feature = "stand-ins")]
pub mod netem;
pub mod pipeline;
pub mod progress;
pub mod publish;
pub mod registry;
pub mod retry;
#[cfg(feature = "stand-ins")]
pub mod sandbox;
pub mod secret;
pub mod telemetry;
pub mod worker;
