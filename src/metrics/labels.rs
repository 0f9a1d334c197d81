//! The label sets of the labelled series, as types: a misspelt operation or failure type is a
//! compile error, not a series that silently never moves.
//!
//! Every label value is known in advance, so [`CounterFamily`] holds one counter per value from
//! the start: each series is exposed (at 0) before its first event, which lets a dashboard's
//! `rate()` see the first increment, and the series come out in one fixed order.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use prometheus_client::encoding::{
    EncodeLabelSet, EncodeLabelValue, EncodeMetric, LabelValueEncoder, MetricEncoder,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::{MetricType, TypedMetric};

use crate::pipeline::FailureType;

/// The job-API operations the worker makes: the values of the `operation` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
pub enum JobApiOperation {
    PollForJobs,
    AcknowledgeJob,
    GetJobDetails,
    PutJobSuccessResult,
    PutJobFailureResult,
}

/// The `failure_type` label is the name CodePipeline knows the failure type by.
impl EncodeLabelValue for FailureType {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), fmt::Error> {
        fmt::Write::write_str(encoder, self.as_str())
    }
}

/// The labels of `pipeline_publisher_jobs_failed_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct FailureLabels {
    pub(super) failure_type: FailureType,
}

/// The labels of the `pipeline_publisher_job_api_*_total` series.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct OperationLabels {
    pub(super) operation: JobApiOperation,
}

/// A label set whose every value is known in advance.
pub(super) trait KnownLabelSet:
    EncodeLabelSet + Clone + fmt::Debug + Send + Sync + 'static
{
    /// Every label set, in the order they are exposed (alphabetical by value).
    const ALL: &'static [Self];

    /// Where `self` is in [`Self::ALL`]. Written as an exhaustive `match`, so a new failure
    /// type or operation does not compile until it has its place.
    fn position(&self) -> usize;
}

impl KnownLabelSet for FailureLabels {
    const ALL: &'static [Self] = &[
        Self::of(FailureType::ConfigurationError),
        Self::of(FailureType::JobFailed),
        Self::of(FailureType::PermissionError),
        Self::of(FailureType::RevisionOutOfSync),
        Self::of(FailureType::RevisionUnavailable),
        Self::of(FailureType::SystemUnavailable),
    ];

    fn position(&self) -> usize {
        match self.failure_type {
            FailureType::ConfigurationError => 0,
            FailureType::JobFailed => 1,
            FailureType::PermissionError => 2,
            FailureType::RevisionOutOfSync => 3,
            FailureType::RevisionUnavailable => 4,
            FailureType::SystemUnavailable => 5,
        }
    }
}

impl FailureLabels {
    pub(super) const fn of(failure_type: FailureType) -> Self {
        Self { failure_type }
    }
}

impl KnownLabelSet for OperationLabels {
    const ALL: &'static [Self] = &[
        Self::of(JobApiOperation::AcknowledgeJob),
        Self::of(JobApiOperation::GetJobDetails),
        Self::of(JobApiOperation::PollForJobs),
        Self::of(JobApiOperation::PutJobFailureResult),
        Self::of(JobApiOperation::PutJobSuccessResult),
    ];

    fn position(&self) -> usize {
        match self.operation {
            JobApiOperation::AcknowledgeJob => 0,
            JobApiOperation::GetJobDetails => 1,
            JobApiOperation::PollForJobs => 2,
            JobApiOperation::PutJobFailureResult => 3,
            JobApiOperation::PutJobSuccessResult => 4,
        }
    }
}

impl OperationLabels {
    pub(super) const fn of(operation: JobApiOperation) -> Self {
        Self { operation }
    }
}

/// One counter per label set of `S`, all present from the start, exposed in `S::ALL` order.
///
/// prometheus-client's own `Family` creates series on first use and exposes them in hash
/// order; with a closed set of values, a fixed array is both complete and stable.
#[derive(Debug)]
pub(super) struct CounterFamily<S> {
    /// `counters[i]` counts `S::ALL[i]`. Shared: the registry holds a clone.
    counters: Arc<[Counter]>,
    labels: PhantomData<S>,
}

impl<S> Clone for CounterFamily<S> {
    fn clone(&self) -> Self {
        Self {
            counters: self.counters.clone(),
            labels: PhantomData,
        }
    }
}

impl<S: KnownLabelSet> CounterFamily<S> {
    pub(super) fn new() -> Self {
        Self {
            counters: S::ALL.iter().map(|_| Counter::default()).collect(),
            labels: PhantomData,
        }
    }

    pub(super) fn get(&self, labels: &S) -> &Counter {
        // In bounds: `position` is an index into `S::ALL`, which has one counter per entry
        // (checked for every label set by `every_label_set_has_its_own_counter`).
        &self.counters[labels.position()]
    }
}

impl<S> TypedMetric for CounterFamily<S> {
    const TYPE: MetricType = MetricType::Counter;
}

impl<S: KnownLabelSet> EncodeMetric for CounterFamily<S> {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), fmt::Error> {
        for (labels, counter) in S::ALL.iter().zip(self.counters.iter()) {
            counter.encode(encoder.encode_family(labels)?)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn positions_match<S: KnownLabelSet>() {
        for (index, labels) in S::ALL.iter().enumerate() {
            assert_eq!(labels.position(), index, "{labels:?}");
        }
    }

    #[test]
    fn every_label_set_has_its_own_counter() {
        positions_match::<FailureLabels>();
        positions_match::<OperationLabels>();
    }

    #[test]
    fn a_family_counts_each_label_set_apart() {
        let family = CounterFamily::<OperationLabels>::new();
        family
            .get(&OperationLabels::of(JobApiOperation::PollForJobs))
            .inc();
        let counts: Vec<u64> = OperationLabels::ALL
            .iter()
            .map(|labels| family.get(labels).get())
            .collect();
        assert_eq!(counts, [0, 0, 1, 0, 0]);
    }
}
