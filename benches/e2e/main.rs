//! End-to-end benchmarks of issue 7, each scenario beside its baseline in the same run:
//!
//! ```text
//! cargo bench --bench e2e                 # every scenario (about 20 minutes)
//! cargo bench --bench e2e -- 1 3          # only scenarios 1 and 3
//! cargo bench --bench e2e -- 8            # multipart vs single PUT (issue 13)
//! cargo bench --bench e2e -- --quick      # small sizes: checks the harness, figures not comparable
//! cargo bench --bench e2e -- 7            # issue 13: ranged S3 downloads at 90 MB/s per connection
//! cargo bench --bench e2e -- 9 10 11      # issue 14: wake-up queue, fairness, 4 workers x 3 accounts
//! ```
//!
//! The stand-ins (CodePipeline job API + S3, the mock registry) and the proxies run in this
//! process on 127.0.0.1; the worker is the release binary run as a child process, so its
//! memory and CPU are its own. Scratch data (1 GiB images, the stand-ins' storage, the
//! workers' work dirs) goes to `$BENCH_TMPDIR`, else `/dev/shm` when it has room, else the
//! system temp dir, and is removed at the end. Results are printed as a Markdown table and
//! written to `target/tmp/e2e-results.md`.

mod accounts;
mod cloud_download;
mod data;
mod fleet;
mod large;
mod multipart;
mod polling;
mod proxies;
mod report;
mod small_files;
mod support;
mod wake;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use report::Report;
use support::Bench;

/// Scratch space the full suite needs at its peak (scenario 3: two 1 GiB objects, the
/// registry's copy and the worker's download and extraction).
const SCRATCH_NEEDED: u64 = 8 << 30;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|arg| arg == "--quick");
    let mut selected: Vec<u8> = args
        .iter()
        .filter_map(|arg| arg.trim_start_matches('s').parse().ok())
        .filter(|number| (1..=11).contains(number))
        .collect();
    if selected.is_empty() {
        selected = (1..=11).collect();
    }

    let root = scratch_root();
    // SAFETY: no other thread exists yet; the stand-ins' temp dirs then land in the scratch
    // directory, which is removed at the end.
    unsafe { std::env::set_var("TMPDIR", &root) };
    let _cleanup = RemoveOnDrop(root.clone());

    let bin = PathBuf::from(
        std::env::var_os("PIPELINE_PUBLISHER_BIN")
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_pipeline-publisher").into()),
    );
    let help = Command::new(&bin)
        .args(["worker", "--help"])
        .output()
        .expect("the worker binary runs");
    let bench = Arc::new(Bench {
        root: root.clone(),
        bin,
        quick,
        has_upload_concurrency: String::from_utf8_lossy(&help.stdout)
            .contains("--upload-concurrency"),
        python: Some(PathBuf::from(
            shell("python3 -c 'import boto3, sys; print(sys.executable)' 2>/dev/null").trim(),
        ))
        .filter(|path| !path.as_os_str().is_empty()),
        clock_ticks: shell("getconf CLK_TCK").trim().parse().unwrap_or(100),
    });
    let machine_before = machine();
    eprintln!("{machine_before}");
    eprintln!("worker binary: {}", bench.bin.display());
    eprintln!("scratch: {}", root.display());

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let started = Instant::now();
    let mut report = Report {
        rows: Vec::new(),
        notes: Vec::new(),
    };
    runtime.block_on(async {
        // The idle worker of scenario 6 runs alongside the others: it only waits, and it
        // saves a minute.
        let idle = selected.contains(&6).then(|| {
            let bench = bench.clone();
            tokio::spawn(async move {
                let mut report = Report {
                    rows: Vec::new(),
                    notes: Vec::new(),
                };
                polling::scenario_6(&bench, &mut report).await;
                report
            })
        });
        for scenario in [4, 2, 1, 3, 5, 7, 8, 9, 10, 11] {
            if !selected.contains(&scenario) {
                continue;
            }
            let at = Instant::now();
            match scenario {
                1 => large::scenario_1(&bench, &mut report).await,
                2 => small_files::scenario_2(&bench, &mut report).await,
                3 => large::scenario_3(&bench, &mut report).await,
                4 => polling::scenario_4(&bench, &mut report).await,
                5 => fleet::scenario_5(&bench, &mut report).await,
                7 => cloud_download::scenario_7(&bench, &mut report).await,
                8 => multipart::scenario_8(&bench, &mut report).await,
                9 => wake::scenario_9(&bench, &mut report).await,
                10 => wake::scenario_10(&bench, &mut report).await,
                11 => accounts::scenario_11(&bench, &mut report).await,
                _ => unreachable!(),
            }
            eprintln!(
                "    (scenario {scenario} took {:.0} s; {})",
                at.elapsed().as_secs_f64(),
                load()
            );
        }
        if let Some(idle) = idle {
            let idle_report = idle.await.expect("scenario 6");
            report.rows.extend(idle_report.rows);
            report.notes.extend(idle_report.notes);
        }
    });
    report.rows.sort_by(|a, b| a.scenario.cmp(&b.scenario));
    if quick {
        report.note(
            "--quick: reduced sizes; these figures are not comparable with the targets".into(),
        );
    }
    if !bench.bin.to_string_lossy().contains("/release/") {
        report.note(format!(
            "worker binary is not a release build: {}",
            bench.bin.display()
        ));
    }
    report.note(format!(
        "suite took {:.0} s; {}",
        started.elapsed().as_secs_f64(),
        load()
    ));
    let markdown = format!("{machine_before}\n\n{}", report.markdown());
    println!("\n{markdown}");
    let results = Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e-results.md");
    if std::fs::write(&results, &markdown).is_ok() {
        eprintln!("written to {}", results.display());
    }
    drop(runtime);
}

/// A fresh scratch directory named after this process; leftovers of dead runs are removed.
fn scratch_root() -> PathBuf {
    let base = std::env::var_os("BENCH_TMPDIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let shm = Path::new("/dev/shm");
            if available_bytes(shm) >= SCRATCH_NEEDED {
                shm.to_owned()
            } else {
                std::env::temp_dir()
            }
        });
    if available_bytes(&base) < SCRATCH_NEEDED {
        eprintln!(
            "warning: {} has less than {} GiB free; the 1 GiB scenarios may fail",
            base.display(),
            SCRATCH_NEEDED >> 30
        );
    }
    const PREFIX: &str = "pipeline-publisher-bench-";
    if let Ok(entries) = std::fs::read_dir(&base) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix(PREFIX)
                && !Path::new("/proc").join(pid).exists()
            {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    let root = base.join(format!("{PREFIX}{}", std::process::id()));
    std::fs::create_dir_all(&root).expect("scratch directory");
    root
}

fn available_bytes(path: &Path) -> u64 {
    let output = shell(&format!(
        "df -B1 --output=avail '{}' | tail -1",
        path.display()
    ));
    output.trim().parse().unwrap_or(0)
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn shell(command: &str) -> String {
    Command::new("sh")
        .args(["-c", command])
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).into_owned())
        .unwrap_or_default()
}

fn load() -> String {
    format!(
        "load average {}",
        shell("cut -d' ' -f1-3 /proc/loadavg").trim()
    )
}

fn machine() -> String {
    format!(
        "Machine: {} cores ({}), {} RAM; {} UTC; {} at start",
        shell("nproc").trim(),
        shell("lscpu | sed -n 's/^Model name: *//p'").trim(),
        shell("free -h | awk '/^Mem:/ {print $2}'").trim(),
        shell("date -u '+%Y-%m-%d %H:%M'").trim(),
        load()
    )
}
