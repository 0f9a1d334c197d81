//! The Prometheus text exposition (format 0.0.4): `# HELP`, `# TYPE`, then the samples.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{DURATION_BUCKETS, LabelledCounter, Metrics};

impl Metrics {
    /// The Prometheus text exposition (format 0.0.4) of every series.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let single = |out: &mut String, name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        single(
            &mut out,
            "pipeline_publisher_jobs_claimed_total",
            "counter",
            "Jobs acknowledged by this worker (AcknowledgeJob answered InProgress).",
            load(&self.jobs_claimed),
        );
        single(
            &mut out,
            "pipeline_publisher_jobs_succeeded_total",
            "counter",
            "Jobs ended with an accepted PutJobSuccessResult.",
            load(&self.jobs_succeeded),
        );
        labelled(
            &mut out,
            "pipeline_publisher_jobs_failed_total",
            "Jobs ended with an accepted PutJobFailureResult, by failure type.",
            "failure_type",
            &self.jobs_failed,
        );
        single(
            &mut out,
            "pipeline_publisher_jobs_lost_claims_total",
            "counter",
            "Polled jobs another worker acknowledged first (dropped without a result, as required).",
            load(&self.lost_claims),
        );
        single(
            &mut out,
            "pipeline_publisher_job_results_undelivered_total",
            "counter",
            "Jobs whose acknowledgement or result call could not be made.",
            load(&self.results_undelivered),
        );
        single(
            &mut out,
            "pipeline_publisher_jobs_in_flight",
            "gauge",
            "Jobs being worked on now; the Auto Scaling metric (average per instance).",
            self.jobs_in_flight(),
        );
        single(
            &mut out,
            "pipeline_publisher_published_files_total",
            "counter",
            "Files that landed in a registry (uploaded or checksum-deployed).",
            load(&self.published_files),
        );
        single(
            &mut out,
            "pipeline_publisher_published_bytes_total",
            "counter",
            "Bytes of the files that landed in a registry.",
            load(&self.published_bytes),
        );
        self.render_histogram(&mut out);
        labelled(
            &mut out,
            "pipeline_publisher_job_api_errors_total",
            "CodePipeline job-API calls that failed (not counting throttling), by operation.",
            "operation",
            &self.job_api_errors,
        );
        labelled(
            &mut out,
            "pipeline_publisher_job_api_throttles_total",
            "CodePipeline job-API calls answered with throttling, by operation.",
            "operation",
            &self.job_api_throttles,
        );
        single(
            &mut out,
            "pipeline_publisher_registry_retries_total",
            "counter",
            "Registry requests retried after a transient failure.",
            load(&self.registry_retries),
        );
        single(
            &mut out,
            "pipeline_publisher_last_successful_poll_timestamp_seconds",
            "gauge",
            "Unix time of the last successful PollForJobs (0: none yet).",
            load(&self.last_poll_ok_unix),
        );
        out
    }

    fn render_histogram(&self, out: &mut String) {
        let name = "pipeline_publisher_job_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time from AcknowledgeJob to the job's result, for jobs that ended with a result."
        );
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut cumulative = 0;
        for (index, bound) in DURATION_BUCKETS.iter().enumerate() {
            cumulative += self.job_duration.buckets[index].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        cumulative += self.job_duration.buckets[DURATION_BUCKETS.len()].load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
        let sum = self.job_duration.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(
            out,
            "{name}_count {}",
            self.job_duration.count.load(Ordering::Relaxed)
        );
    }
}

fn labelled(out: &mut String, name: &str, help: &str, label: &str, counter: &LabelledCounter) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    for value in counter.values.keys() {
        let _ = writeln!(out, "{name}{{{label}=\"{value}\"}} {}", counter.get(value));
    }
}
