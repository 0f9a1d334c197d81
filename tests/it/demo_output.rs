//! `pipeline-publisher demo` as a new user runs it: the real binary, a summary that fits one
//! screen (one block per job, the files as a table, a hint about `--serve`), and `--verbose`
//! bringing back the full log and every detail.

use crate::support::{command, run, stderr, stdout};

/// A terminal screen a summary has to fit on, stdout and stderr together.
const SCREEN_LINES: usize = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_demo_prints_one_screen_with_a_block_per_job_and_the_files_table() {
    let home = tempfile::tempdir().unwrap();
    let output = run(command(home.path(), &[]), &["demo"]).await;
    let (out, err) = (stdout(&output), stderr(&output));
    assert!(output.status.success(), "demo failed:\n{out}\n{err}");
    let lines = out.lines().count() + err.lines().count();
    assert!(
        lines <= SCREEN_LINES,
        "demo printed {lines} lines, more than one screen:\n{out}\n--- stderr\n{err}"
    );
    assert!(
        !err.contains(" INFO "),
        "a plain demo logs at warn, got info lines:\n{err}"
    );

    let block = |label: &str| -> Vec<&str> {
        let mut lines = out.lines().skip_while(|line| !line.starts_with(label));
        let head = lines
            .next()
            .unwrap_or_else(|| panic!("no {label} block:\n{out}"));
        std::iter::once(head)
            .chain(lines.take_while(|line| line.starts_with("       ")))
            .collect()
    };
    let first = block("Job 1 ");
    assert!(first[0].contains("nestbox-firmware") && first[0].contains("Succeeded"));
    assert!(first[1].trim_start().starts_with("Published 3 files"));
    let second = block("Job 2 ");
    assert!(second[0].contains("Failed"), "{second:?}");
    assert!(second[1].contains("ConfigurationError: the action configuration has 2 problems"));
    assert!(
        second
            .iter()
            .any(|line| line.contains("RepoKey: is required but missing"))
    );
    let third = block("Job 3 ");
    assert!(third[0].contains("nestbox-camera") && third[0].contains("Succeeded"));
    for fact in [
        "Published 6 files",
        "npm @nestbox/camera-agent 1.3.0",
        "debian nestbox-camera-agent 1.3.0-1",
        "pypi nestbox-camera-agent 1.3.0",
        "publish-receipt.json (6 files) in the output artifact, encrypted with aws:kms",
    ] {
        assert!(
            third.iter().any(|line| line.contains(fact)),
            "{fact} missing: {third:?}"
        );
    }
    // The three blocks' columns line up.
    let status_column = |line: &str| line.find("Succeeded").or_else(|| line.find("Failed"));
    assert_eq!(status_column(first[0]), status_column(second[0]));
    assert_eq!(status_column(first[0]), status_column(third[0]));

    let header = out
        .lines()
        .find(|line| line.trim_start().starts_with("REPOSITORY"))
        .unwrap_or_else(|| panic!("no files table:\n{out}"));
    for column in ["PATH", "SIZE", "SHA256"] {
        assert!(header.contains(column), "{header}");
    }
    let rows: Vec<&str> = out
        .lines()
        .skip_while(|line| !line.trim_start().starts_with("REPOSITORY"))
        .skip(1)
        .take_while(|line| line.starts_with("  "))
        .collect();
    assert_eq!(
        rows.len(),
        10,
        "3 + 3 + 1 firmware files, .deb, .tgz, .whl:\n{out}"
    );
    // The version 2 job published with the worker's AWS identity and no password.
    let fourth = block("Job 4 ");
    assert!(
        fourth[0].contains("Succeeded") && fourth[0].contains("aws-iam"),
        "{fourth:?}"
    );
    assert!(fourth[0].contains("no password anywhere"), "{fourth:?}");
    // One worker serving two accounts, each job woken by the SQS queue.
    for (label, account) in [("Job 5 ", "222233334444"), ("Job 6 ", "111122223333")] {
        let fleet_job = block(label);
        assert!(
            fleet_job[0].contains("Succeeded")
                && fleet_job[0].contains(&format!("account {account}"))
                && fleet_job[0].contains("woken by SQS"),
            "{fleet_job:?}"
        );
    }
    assert_eq!(status_column(first[0]), status_column(fourth[0]));
    for (repo, path) in [
        (
            "firmware-releases",
            "nestbox-cam/9c1e5a2/nestbox-cam-2.4.1.img",
        ),
        (
            "firmware-releases",
            "nestbox-cam/4b7d0c9/nestbox-cam-2.4.1.img",
        ),
        (
            "camera-agent-debian",
            "pool/main/n/nestbox-camera-agent/nestbox-camera-agent_1.3.0-1_arm64.deb",
        ),
        (
            "camera-agent-npm",
            "@nestbox/camera-agent/-/@nestbox/camera-agent-1.3.0.tgz",
        ),
        (
            "camera-agent-pypi",
            "nestbox-camera-agent/1.3.0/nestbox_camera_agent-1.3.0-py3-none-any.whl",
        ),
    ] {
        assert!(
            rows.iter()
                .any(|row| row.contains(repo) && row.contains(path)),
            "no row for {repo} {path}:\n{out}"
        );
    }
    let path_column = header.find("PATH").unwrap();
    assert!(
        rows.iter()
            .all(|row| row[path_column..].starts_with(|c: char| c != ' '))
    );
    // The firmware image's row carries the start of its sha256.
    assert!(
        rows.iter()
            .any(|row| row.contains("nestbox-cam-2.4.1.img") && row.contains("1530372b03e1"))
    );
    assert!(
        out.lines()
            .last()
            .unwrap_or("")
            .contains("pipeline-publisher demo --serve"),
        "the last line hints at --serve:\n{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_verbose_restores_the_full_log_and_every_detail() {
    let home = tempfile::tempdir().unwrap();
    let output = run(command(home.path(), &[]), &["demo", "--verbose"]).await;
    let (out, err) = (stdout(&output), stderr(&output));
    assert!(
        output.status.success(),
        "demo --verbose failed:\n{out}\n{err}"
    );
    assert!(
        err.contains(" INFO ") && err.contains("job succeeded"),
        "{err}"
    );
    assert!(out.contains("output variable FirmwareSha256 = "), "{out}");
    assert!(out.contains("    properties: board=rpi-zero-2w;"), "{out}");
    assert!(out.contains("Job 3's publish-receipt.json"), "{out}");
}
