//! The optional HTTP listener of `worker --metrics-listen ADDR`: Prometheus text at `/metrics`,
//! liveness at `/healthz` (200 while the loop polls successfully, 503 with a one-line reason
//! otherwise), for Prometheus scrapes and systemd / container / load-balancer health checks.
//!
//! After the first line `/healthz` names each source on a line of its own (`source NAME: ok` or
//! `source NAME: unhealthy; …; last error: …`). One failing source (a member account whose
//! role cannot be assumed) does not make the worker unhealthy while the others poll: restarting
//! the worker would not fix it and would stop the others.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::metrics::Metrics;

/// What the listener serves from.
#[derive(Debug, Clone)]
pub struct HealthState {
    pub metrics: Arc<Metrics>,
    /// `/healthz` answers 503 when the last successful poll is older than this.
    pub max_poll_age: Duration,
}

/// The routes, ready to serve.
pub fn router(state: HealthState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .with_state(state)
}

async fn metrics(State(state): State<HealthState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        state.metrics.render(),
    )
}

async fn healthz(State(state): State<HealthState>) -> impl IntoResponse {
    let (status, mut body) = match state.metrics.health(state.max_poll_age) {
        Ok(detail) => (StatusCode::OK, format!("ok: {detail}\n")),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("unhealthy: {reason}\n"),
        ),
    };
    for source in state.metrics.sources_health(state.max_poll_age) {
        body.push_str(&format!("{source}\n"));
    }
    (status, body)
}

/// Binds `address` and serves in the background until the process exits. Binding happens
/// here, before the worker starts, so a port in use is an error at start-up, not a silent gap.
pub async fn spawn(address: SocketAddr, state: HealthState) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| {
            format!("could not listen on {address} for --metrics-listen (is the port in use?)")
        })?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router(state)).await {
            tracing::error!(%error, "the metrics listener stopped");
        }
    });
    Ok(bound)
}
