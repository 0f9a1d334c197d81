//! The files the worker packs from an npm package directory are the ones the real `npm pack`
//! packs: `.npmignore` (else `.gitignore`) rules, the files npm always includes and the ones it
//! never does.

use std::path::Path;
use std::process::Command;

use pipeline_publisher::publish::formats::npm_pack::{packed_files, read_directory_manifest};

/// What the real npm would pack from `dir`, sorted.
fn npm_pack_files(dir: &Path) -> Vec<String> {
    let npm_home = tempfile::tempdir().unwrap();
    std::fs::write(npm_home.path().join(".npmrc"), "").unwrap();
    let output = Command::new("npm")
        .args(["pack", "--dry-run", "--json", "--ignore-scripts"])
        .current_dir(dir)
        .env("npm_config_userconfig", npm_home.path().join(".npmrc"))
        .env("npm_config_cache", npm_home.path().join("cache"))
        .env("npm_config_logs_dir", npm_home.path().join("logs"))
        .env("npm_config_update_notifier", "false")
        .output()
        .expect("npm is installed");
    assert!(
        output.status.success(),
        "npm pack failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let mut files: Vec<String> = report[0]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|file| file["path"].as_str().unwrap().to_owned())
        .collect();
    files.sort();
    files
}

fn package(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

const MANIFEST: (&str, &str) = (
    "package.json",
    r#"{"name":"cam","version":"1.0.0","main":"lib/index.js"}"#,
);

#[test]
fn packed_files_match_npm_pack_for_ignore_files() {
    let layouts: Vec<(&str, Vec<(&str, &str)>)> = vec![
        (
            ".npmignore with directories, globs, anchors and negation",
            vec![
                MANIFEST,
                (
                    ".npmignore",
                    "# tests stay home\ntest/\n*.log\n!keep.log\n/build\ndocs/**/*.md\nsrc/*.ts\n",
                ),
                ("lib/index.js", ""),
                ("lib/build/x.js", ""),
                ("build/out.js", ""),
                ("test/a.js", ""),
                ("lib/test/b.js", ""),
                ("debug.log", ""),
                ("keep.log", ""),
                ("docs/guide.md", ""),
                ("docs/deep/more.md", ""),
                ("docs/deep/image.png", ""),
                ("src/a.ts", ""),
                ("src/sub/b.ts", ""),
                ("README.md", ""),
                ("LICENSE", ""),
                (".npmrc", "//registry/:_authToken=x"),
                ("node_modules/x/index.js", ""),
                ("package-lock.json", "{}"),
            ],
        ),
        (
            ".gitignore when there is no .npmignore",
            vec![
                MANIFEST,
                (".gitignore", "dist/\n*.tmp\n"),
                ("lib/index.js", ""),
                ("dist/bundle.js", ""),
                ("lib/cache.tmp", ""),
                ("notes.txt", ""),
            ],
        ),
        (
            ".npmignore wins over .gitignore",
            vec![
                MANIFEST,
                (".npmignore", "*.tmp\n"),
                (".gitignore", "dist/\n"),
                ("lib/index.js", ""),
                ("dist/bundle.js", ""),
                ("scratch.tmp", ""),
            ],
        ),
        (
            "no ignore file",
            vec![
                MANIFEST,
                ("lib/index.js", ""),
                ("lib/x.orig", ""),
                (".DS_Store", ""),
                ("CHANGELOG.md", ""),
            ],
        ),
    ];
    for (name, files) in layouts {
        let dir = package(&files);
        let manifest = read_directory_manifest(dir.path()).unwrap();
        assert_eq!(
            packed_files(dir.path(), &manifest).unwrap(),
            npm_pack_files(dir.path()),
            "{name}"
        );
    }
}
