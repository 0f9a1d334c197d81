//! The help text of every command (each flag with its env var and default) and the error
//! chains at the command-line edge, as snapshots.

use crate::support::{assert_snapshot, command, run, stderr, stdout};

#[tokio::test]
async fn every_command_explains_its_flags_with_env_vars_and_defaults() {
    let home = tempfile::tempdir().unwrap();
    for (name, args) in [
        ("help_root", vec!["--help"]),
        ("help_worker", vec!["worker", "--help"]),
        ("help_publish", vec!["publish", "--help"]),
        ("help_check", vec!["check", "--help"]),
        ("help_mock_registry", vec!["mock-registry", "--help"]),
        ("help_demo", vec!["demo", "--help"]),
    ] {
        let output = run(command(home.path(), &[]), &args).await;
        assert!(output.status.success(), "{name}: {}", stderr(&output));
        let help = stdout(&output);
        assert_snapshot(name, &help);
        // Every flag but --help and --version names its environment variable.
        let flags = help
            .lines()
            .map(str::trim_start)
            .filter(|line| {
                line.starts_with("--") || line.starts_with("-h,") || line.starts_with("-V,")
            })
            .filter(|line| !line.contains("--help") && !line.contains("--version"))
            .count();
        assert_eq!(
            flags,
            help.matches("[env: ").count(),
            "{name}: a flag has no env var\n{help}"
        );
    }
}

#[tokio::test]
async fn errors_at_the_edge_render_as_a_chain_with_a_hint() {
    let home = tempfile::tempdir().unwrap();
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/firmware/build-output"
    );
    let cases: [(&str, Vec<&str>); 3] = [
        (
            "error_url_shape",
            vec![
                "publish",
                example,
                "--artifactory-host",
                "acme.jfrog.io/artifactory",
                "--repo-key",
                "firmware",
                "--user-name",
                "ci",
                "--dry-run",
            ],
        ),
        (
            "error_missing_revision",
            vec![
                "publish",
                example,
                "--artifactory-host",
                "https://acme.jfrog.io",
                "--repo-key",
                "firmware",
                "--user-name",
                "ci",
                "--target-path",
                "fw/{ShortRevision}",
                "--dry-run",
            ],
        ),
        ("error_no_region", vec!["worker"]),
    ];
    for (name, args) in cases {
        let output = run(command(home.path(), &[]), &args).await;
        assert_eq!(output.status.code(), Some(1), "{name}");
        assert_snapshot(name, &stderr(&output));
    }
    let output = run(command(home.path(), &[]), &["publish", "--no-such-flag"]).await;
    assert_eq!(
        output.status.code(),
        Some(64),
        "usage errors exit 64, apart from 2"
    );
}
