//! Per-source series and health: one worker serves several sources (account/region pairs), and
//! an operator must see which one is failing while the others work.
//!
//! Sources are known only once the worker has read its `--source` flags, after [`Metrics`] was
//! made, so the `source`-labelled series hold a list that grows at start-up
//! ([`Metrics::add_source`]) and is exposed in that order. Each source also keeps its own
//! liveness (last successful poll, last error), which `/healthz` lists line by line.
//!
//! [`Metrics`]: super::Metrics
//! [`Metrics::add_source`]: super::Metrics::add_source

use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};

use super::labels::KnownLabelSet;

/// The most of a source's poll error `/healthz` repeats.
const MAX_ERROR_CHARS: usize = 300;

/// The label set of the per-source series.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct SourceLabels {
    source: String,
}

/// One metric per source, in the order the sources were added. Shared: the registry holds a
/// clone.
#[derive(Debug)]
pub(super) struct PerSource<M> {
    series: Arc<RwLock<Vec<(SourceLabels, M)>>>,
}

impl<M> Clone for PerSource<M> {
    fn clone(&self) -> Self {
        Self {
            series: self.series.clone(),
        }
    }
}

impl<M: Default + Clone> PerSource<M> {
    pub(super) fn new() -> Self {
        Self {
            series: Arc::new(RwLock::new(Vec::new())),
        }
    }

    fn add(&self, name: &str) {
        self.series
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push((
                SourceLabels {
                    source: name.to_owned(),
                },
                M::default(),
            ));
    }

    /// The metric of source `index`; a no-op metric for an index never added (tests that run
    /// the loop with metrics they made themselves).
    pub(super) fn get(&self, index: usize) -> M {
        self.series
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(index)
            .map(|(_, metric)| metric.clone())
            .unwrap_or_default()
    }
}

impl<M: TypedMetric> TypedMetric for PerSource<M> {
    const TYPE: MetricType = M::TYPE;
}

impl<M: EncodeMetric + TypedMetric> EncodeMetric for PerSource<M> {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), fmt::Error> {
        for (labels, metric) in self
            .series
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            metric.encode(encoder.encode_family(labels)?)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        M::TYPE
    }
}

/// What happened to a message of the wake-up queue: the values of the `outcome` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
pub enum WakeOutcome {
    /// A STARTED event of our action type in a known source: that source was polled at once.
    Woke,
    /// A CodePipeline event, but not a STARTED job of our action type: deleted.
    Ignored,
    /// Not a CodePipeline action execution event at all: deleted.
    NotCodePipeline,
    /// A STARTED event of our action type in an account/region no source serves: deleted.
    UnknownSource,
}

/// The labels of `pipeline_publisher_wake_messages_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct WakeLabels {
    outcome: WakeOutcome,
}

impl WakeLabels {
    pub(super) const fn of(outcome: WakeOutcome) -> Self {
        Self { outcome }
    }
}

impl KnownLabelSet for WakeLabels {
    const ALL: &'static [Self] = &[
        Self::of(WakeOutcome::Ignored),
        Self::of(WakeOutcome::NotCodePipeline),
        Self::of(WakeOutcome::UnknownSource),
        Self::of(WakeOutcome::Woke),
    ];

    fn position(&self) -> usize {
        match self.outcome {
            WakeOutcome::Ignored => 0,
            WakeOutcome::NotCodePipeline => 1,
            WakeOutcome::UnknownSource => 2,
            WakeOutcome::Woke => 3,
        }
    }
}

/// The per-source series and liveness, registered once by [`super::exposition`].
#[derive(Debug, Clone)]
pub(super) struct SourceSeries {
    pub(super) up: PerSource<Gauge>,
    pub(super) polls: PerSource<Counter>,
    pub(super) poll_errors: PerSource<Counter>,
    pub(super) jobs: PerSource<Counter>,
    liveness: Arc<RwLock<Vec<SourceLiveness>>>,
}

#[derive(Debug)]
struct SourceLiveness {
    name: String,
    last_ok: Option<Instant>,
    last_error: Option<String>,
}

impl SourceSeries {
    pub(super) fn new() -> Self {
        Self {
            up: PerSource::new(),
            polls: PerSource::new(),
            poll_errors: PerSource::new(),
            jobs: PerSource::new(),
            liveness: Arc::new(RwLock::new(Vec::new())),
        }
    }

    /// Adds a source; returns its index.
    pub(super) fn add(&self, name: &str) -> usize {
        for family in [&self.polls, &self.poll_errors, &self.jobs] {
            family.add(name);
        }
        self.up.add(name);
        self.up.get(self.len() - 1).set(1);
        let mut liveness = self
            .liveness
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        liveness.push(SourceLiveness {
            name: name.to_owned(),
            last_ok: None,
            last_error: None,
        });
        liveness.len() - 1
    }

    fn len(&self) -> usize {
        self.up
            .series
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub(super) fn poll_succeeded(&self, index: usize) {
        self.polls.get(index).inc();
        self.up.get(index).set(1);
        if let Some(source) = self
            .liveness
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(index)
        {
            source.last_ok = Some(Instant::now());
            source.last_error = None;
        }
    }

    /// A failed poll; `down` when it was not mere throttling.
    pub(super) fn poll_failed(&self, index: usize, reason: &str, down: bool) {
        self.polls.get(index).inc();
        self.poll_errors.get(index).inc();
        if down {
            self.up.get(index).set(0);
        }
        if let Some(source) = self
            .liveness
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(index)
        {
            source.last_error = Some(reason.chars().take(MAX_ERROR_CHARS).collect());
        }
    }

    /// One entry per source, for `/healthz`.
    pub(super) fn health(&self, max_poll_age: Duration) -> Vec<SourceHealth> {
        let up: Vec<bool> = (0..self.len()).map(|i| self.up.get(i).get() == 1).collect();
        self.liveness
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .zip(up)
            .map(|(source, up)| {
                let age = source.last_ok.map(|at| at.elapsed());
                let healthy = up && age.is_none_or(|age| age <= max_poll_age);
                SourceHealth {
                    name: source.name.clone(),
                    healthy,
                    since_last_poll: age,
                    last_error: source.last_error.clone(),
                }
            })
            .collect()
    }
}

/// How one source is doing, as `/healthz` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceHealth {
    pub name: String,
    /// Its last poll did not fail (throttling aside) and it polled within the allowed age.
    pub healthy: bool,
    pub since_last_poll: Option<Duration>,
    pub last_error: Option<String>,
}

impl fmt::Display for SourceHealth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "source {}: {}",
            self.name,
            if self.healthy { "ok" } else { "unhealthy" }
        )?;
        match self.since_last_poll {
            Some(age) => write!(f, "; last successful poll {}s ago", age.as_secs())?,
            None => f.write_str("; no successful poll yet")?,
        }
        if let Some(error) = &self.last_error {
            write!(f, "; last error: {error}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_source_is_unhealthy_and_the_others_are_not() {
        let series = SourceSeries::new();
        assert_eq!(series.add("eu-west-1"), 0);
        assert_eq!(series.add("222233334444/us-east-1"), 1);
        series.poll_succeeded(0);
        series.poll_failed(1, "could not assume the role", true);
        let health = series.health(Duration::from_secs(60));
        assert!(health[0].healthy, "{}", health[0]);
        assert!(!health[1].healthy);
        assert_eq!(
            health[1].to_string(),
            "source 222233334444/us-east-1: unhealthy; no successful poll yet; last error: could \
             not assume the role"
        );
        series.poll_failed(0, "ThrottlingException", false);
        assert!(series.health(Duration::from_secs(60))[0].healthy);
        series.poll_succeeded(1);
        assert!(series.health(Duration::from_secs(60))[1].healthy);
    }

    #[test]
    fn wake_outcomes_have_their_own_counters() {
        for (index, labels) in WakeLabels::ALL.iter().enumerate() {
            assert_eq!(labels.position(), index, "{labels:?}");
        }
    }
}
