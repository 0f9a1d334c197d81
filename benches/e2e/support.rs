//! What every scenario shares: the bench's scratch directory, the stand-ins (sandbox + mock
//! registry), job specs, and the real worker binary run as a child process whose memory and CPU
//! are read from `/proc/<pid>` while it is still alive.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use pipeline_publisher::demo::{DEMO_PASSWORD, DEMO_REPO, DEMO_USER};
use pipeline_publisher::mock_registry::{MockRegistry, MockRegistryConfig, RunningMockRegistry};
use pipeline_publisher::pipeline::properties;
use pipeline_publisher::sandbox::{ArtifactSpec, JobSpec, RunningSandbox, Sandbox, SandboxConfig};

/// Settings of one run of the suite.
pub struct Bench {
    /// Scratch directory of this run (removed at the end); also `TMPDIR` of the stand-ins.
    pub root: PathBuf,
    /// The worker binary (the release build under `cargo bench`).
    pub bin: PathBuf,
    /// `--quick`: small sizes, for checking the harness itself; figures are not comparable.
    pub quick: bool,
    /// Whether `worker --help` lists `--upload-concurrency`.
    pub has_upload_concurrency: bool,
    /// A python3 that can `import boto3`, for the sample-style baseline (resolved past pyenv
    /// shims, since workers run with a cleared environment).
    pub python: Option<PathBuf>,
    /// Kernel clock ticks per second, for `/proc/<pid>/stat` CPU times.
    pub clock_ticks: u64,
}

impl Bench {
    /// A fresh sub-directory of the scratch directory.
    pub fn dir(&self, name: &str) -> PathBuf {
        let dir = self.root.join(name);
        std::fs::create_dir_all(&dir).expect("scratch directory");
        dir
    }
}

/// CodePipeline + S3 stand-in and a mock registry, private to one scenario. Their data lives in
/// temp dirs under the bench's `TMPDIR` and is removed when they are dropped.
pub struct Stage {
    pub sandbox: RunningSandbox,
    pub registry: RunningMockRegistry,
}

impl Stage {
    pub async fn start(config: SandboxConfig) -> Stage {
        let sandbox = Sandbox::start(config).await.expect("sandbox starts");
        let registry = MockRegistry::start(MockRegistryConfig {
            users: vec![(DEMO_USER.to_owned(), DEMO_PASSWORD.to_owned())],
            ..MockRegistryConfig::default()
        })
        .await
        .expect("mock registry starts");
        Stage { sandbox, registry }
    }

    pub fn config(&self) -> &SandboxConfig {
        self.sandbox.sandbox.config()
    }

    /// Stores the file at `source` as the object `key` (a streamed copy, off the runtime).
    pub async fn put_object_from_file(&self, key: &str, source: &Path) {
        let sandbox = self.sandbox.sandbox.clone();
        let bucket = self.config().artifact_bucket.clone();
        let key = key.to_owned();
        let source = source.to_owned();
        tokio::task::spawn_blocking(move || sandbox.put_object_from_file(&bucket, &key, &source))
            .await
            .expect("copy task")
            .expect("object stored");
    }

    /// A job publishing object `key` to `registry_url` (default: this stage's registry).
    pub fn job(&self, key: &str, registry_url: Option<&str>, target_path: Option<&str>) -> JobSpec {
        let config = self.config();
        let mut spec = JobSpec::new("nestbox-firmware");
        spec.input_artifacts = vec![ArtifactSpec {
            name: "BuildOutput".into(),
            revision: Some("0123456789abcdef0123456789abcdef01234567".into()),
            bucket: config.artifact_bucket.clone(),
            key: key.to_owned(),
        }];
        let host = registry_url.unwrap_or(&self.registry.base_url).to_owned();
        let mut configuration = vec![
            (properties::ARTIFACTORY_HOST, host),
            (properties::REPO_KEY, DEMO_REPO.to_owned()),
            (properties::USER_NAME, DEMO_USER.to_owned()),
            (properties::PASSWORD, DEMO_PASSWORD.to_owned()),
        ];
        if let Some(target_path) = target_path {
            configuration.push((properties::TARGET_PATH, target_path.to_owned()));
        }
        spec.configuration = configuration
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value))
            .collect();
        spec
    }

    /// Waits for the job's result; panics with the worker's log when it fails, times out, or
    /// the worker exits first.
    pub async fn expect_success(
        &self,
        job_id: &str,
        timeout: Duration,
        worker: &mut WorkerProcess,
    ) {
        let outcome = tokio::select! {
            result = self.sandbox.sandbox.wait_for_result(job_id, timeout) => format!("{result:?}"),
            status = worker.child.wait() => format!("the worker exited first: {status:?}"),
        };
        if !outcome.starts_with("Some(Success") {
            panic!(
                "job {job_id} did not succeed within {timeout:?}: {outcome}\nworker log (tail):\n{}",
                worker.log_tail()
            );
        }
    }
}

/// Where the worker finds its two AWS endpoints.
pub struct Endpoints<'a> {
    pub job_api: &'a str,
    pub s3: &'a str,
}

/// The worker binary, running.
pub struct WorkerProcess {
    child: tokio::process::Child,
    pub pid: u32,
    pub log: PathBuf,
    pub started: Instant,
}

/// Memory and CPU of a live process, from `/proc/<pid>/status` and `/proc/<pid>/stat`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcStats {
    /// Resident set size now (VmRSS), KiB.
    pub rss_kib: u64,
    /// Peak resident set size (VmHWM), KiB.
    pub peak_rss_kib: u64,
    /// Of `rss_kib`: anonymous memory (heap, stacks) and file-backed pages (mostly the binary).
    pub rss_anon_kib: u64,
    pub rss_file_kib: u64,
    /// User + system CPU time.
    pub cpu: Duration,
}

impl ProcStats {
    pub fn peak_mib(&self) -> f64 {
        self.peak_rss_kib as f64 / 1024.0
    }
    pub fn rss_mib(&self) -> f64 {
        self.rss_kib as f64 / 1024.0
    }
}

/// Starts `pipeline-publisher worker` with `extra_args`, configured like an operator would:
/// only standard AWS variables, its own state and work directories, logs to a file.
pub fn spawn_worker(
    bench: &Bench,
    stage: &Stage,
    name: &str,
    endpoints: Endpoints<'_>,
    extra_args: &[String],
) -> WorkerProcess {
    let mut args: Vec<String> = vec!["worker".into(), "--s3-force-path-style".into()];
    args.extend(extra_args.iter().cloned());
    spawn_process(bench, stage, name, endpoints, &bench.bin, &args, true)
}

/// Starts `program args` with the AWS environment of a worker (and, for our worker, its
/// `--state-dir` and `--work-dir`).
pub fn spawn_process(
    bench: &Bench,
    stage: &Stage,
    name: &str,
    endpoints: Endpoints<'_>,
    program: &Path,
    args: &[String],
    our_worker: bool,
) -> WorkerProcess {
    let home = bench.dir(&format!("worker-{name}"));
    let work_dir = home.join("work");
    std::fs::create_dir_all(&work_dir).expect("work dir");
    std::fs::write(home.join("config"), "").expect("aws config");
    std::fs::write(home.join("credentials"), "").expect("aws credentials");
    let log = home.join("worker.log");
    let log_file = std::fs::File::create(&log).expect("log file");
    let (access_key_id, secret_access_key) = stage.sandbox.sandbox.worker_credentials();
    let mut command = tokio::process::Command::new(program);
    command.args(args);
    if our_worker {
        command
            .arg("--state-dir")
            .arg(home.join("state"))
            .arg("--work-dir")
            .arg(&work_dir);
    }
    command.env_clear();
    // The SDK's retry mode (`standard` or `adaptive`), to compare them on one build.
    if let Some(mode) = std::env::var_os("AWS_RETRY_MODE") {
        command.env("AWS_RETRY_MODE", mode);
    }
    command
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &home)
        .env("TMPDIR", &work_dir)
        .env("AWS_CONFIG_FILE", home.join("config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", home.join("credentials"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_REGION", &stage.config().region)
        .env("AWS_DEFAULT_REGION", &stage.config().region)
        .env("AWS_ACCESS_KEY_ID", access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", secret_access_key)
        .env("AWS_ENDPOINT_URL_CODEPIPELINE", endpoints.job_api)
        // STS (AssumeRole) and SQS (the wake-up queue) of scenarios 7 and 8.
        .env("AWS_ENDPOINT_URL", endpoints.job_api)
        .env("AWS_ENDPOINT_URL_S3", endpoints.s3)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log_file))
        .kill_on_drop(true);
    let started = Instant::now();
    let child = command.spawn().expect("worker binary starts");
    let pid = child.id().expect("worker pid");
    WorkerProcess {
        child,
        pid,
        log,
        started,
    }
}

impl WorkerProcess {
    /// Memory and CPU so far (the process must still be running).
    pub fn stats(&self, bench: &Bench) -> ProcStats {
        read_proc_stats(self.pid, bench.clock_ticks).unwrap_or_default()
    }

    /// SIGTERM, then wait (at most 30 s, then SIGKILL). True when it exited 0.
    pub async fn stop(mut self) -> bool {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        match tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await {
            Ok(Ok(status)) => status.success(),
            _ => {
                let _ = self.child.kill().await;
                false
            }
        }
    }

    /// Where the job's time went, from the timestamps of the worker's own log lines:
    /// "download 1.50 s, extract+hash 4.10 s, token 0.01 s, upload 4.80 s" (phases whose
    /// messages are missing are left out, so a changed log wording degrades gracefully).
    pub fn phases(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let stamp = |line: &str| line.split_whitespace().next().and_then(seconds_of_day);
        let first = |needle: &str| {
            text.lines()
                .find(|line| line.contains(needle))
                .and_then(stamp)
        };
        let last = |needle: &str| {
            text.lines()
                .rfind(|line| line.contains(needle))
                .and_then(stamp)
        };
        // The last "published file" rather than "job succeeded": the harness may read the log
        // before the worker has written its final line.
        let marks = [
            ("start", first("worker started")),
            ("poll+ack+download", first("downloaded input artifact")),
            ("extract+hash", first("extracted input artifact")),
            ("token", first("publishing")),
            ("upload", last("published file")),
        ];
        let mut out = Vec::new();
        let mut previous: Option<f64> = None;
        for (name, mark) in marks {
            if let (Some(from), Some(to)) = (previous, mark) {
                out.push(format!("{name} {:.2} s", to - from));
            }
            if mark.is_some() {
                previous = mark;
            }
        }
        out.join(", ")
    }

    /// The last lines of the worker's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

/// `2026-11-26T08:19:28.165422Z` → seconds since that day's midnight.
fn seconds_of_day(stamp: &str) -> Option<f64> {
    let time = stamp.split_once('T')?.1.trim_end_matches('Z');
    let mut parts = time.split(':');
    let hours: f64 = parts.next()?.parse().ok()?;
    let minutes: f64 = parts.next()?.parse().ok()?;
    let seconds: f64 = parts.next()?.parse().ok()?;
    Some(hours * 3600.0 + minutes * 60.0 + seconds)
}

pub fn read_proc_stats(pid: u32, clock_ticks: u64) -> Option<ProcStats> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|line| line.starts_with(name))
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|value| value.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ProcStats {
        rss_kib: field("VmRSS:"),
        peak_rss_kib: field("VmHWM:"),
        rss_anon_kib: field("RssAnon:"),
        rss_file_kib: field("RssFile:"),
        cpu: Duration::from_secs_f64(ticks as f64 / clock_ticks.max(1) as f64),
    })
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A small deterministic generator (splitmix64): data and arrival times repeat run to run.
pub struct Prng(pub u64);

impl Prng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn fill(&mut self, buffer: &mut [u8]) {
        let mut chunks = buffer.chunks_exact_mut(8);
        for chunk in &mut chunks {
            chunk.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        let last = self.next_u64().to_le_bytes();
        rest.copy_from_slice(&last[..rest.len()]);
    }
}

pub fn secs(duration: Duration) -> f64 {
    duration.as_secs_f64()
}

/// Seconds from `queued` to the job's first acknowledgement (looked up every 2 ms, ≤ 120 s).
pub async fn pickup(sandbox: Sandbox, job_id: String, queued: Instant) -> Option<f64> {
    let deadline = queued + Duration::from_secs(120);
    while Instant::now() < deadline {
        if sandbox
            .job(&job_id)
            .is_some_and(|job| job.acknowledgements > 0)
        {
            return Some(queued.elapsed().as_secs_f64());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    None
}

/// A [`pickup`] watcher of one side of a pairwise run (0: ours, 1: the baseline).
pub type PickupWatcher = (usize, tokio::task::JoinHandle<Option<f64>>);

/// Each side's pickup latencies in the order the watchers were started, once both stages have
/// ended every job.
pub async fn pickups(watchers: Vec<PickupWatcher>, stages: [&Stage; 2]) -> [Vec<f64>; 2] {
    let mut latencies = [Vec::new(), Vec::new()];
    for (side, watcher) in watchers {
        let latency = watcher
            .await
            .expect("watcher")
            .expect("job acknowledged within 120 s");
        latencies[side].push(latency);
    }
    for stage in stages {
        assert!(
            stage
                .sandbox
                .sandbox
                .wait_until_idle(Duration::from_secs(120))
                .await,
            "all jobs ended"
        );
    }
    latencies
}

/// The median and the 95th percentile.
pub fn median_p95(latencies: &[f64]) -> (f64, f64) {
    let mut sorted = latencies.to_vec();
    sorted.sort_by(f64::total_cmp);
    (percentile(&sorted, 50.0), percentile(&sorted, 95.0))
}
