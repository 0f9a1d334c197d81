//! Property-based tests: no generated archive writes outside its directory or past the caps;
//! no configuration string makes the parser panic or a target path escape the repository;
//! failure messages always fit the API and never carry a secret.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use pipeline_publisher::artifacts::{ExtractLimits, extract_zip};
use pipeline_publisher::pipeline::config::{
    ActionConfig, ConfigPolicy, expand_target_path, parse_properties,
};
use pipeline_publisher::pipeline::failure::{MAX_FAILURE_MESSAGE_CHARS, trim_to_chars};
use pipeline_publisher::pipeline::job::{ActionConfiguration, Artifact, JobData, PipelineContext};
use pipeline_publisher::pipeline::{FailureType, JobFailure};
use pipeline_publisher::secret::{Redactor, SecretString};
use proptest::prelude::*;

/// Path pieces that stress every rule of entry-name checking.
fn entry_name() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("..".to_owned()),
        Just(".".to_owned()),
        Just("".to_owned()),
        Just("C:".to_owned()),
        Just("\\..".to_owned()),
        Just("%2e%2e".to_owned()),
        "[a-z]{1,6}",
        "[a-zA-Z0-9 ._-]{1,8}",
    ];
    (any::<bool>(), prop::collection::vec(piece, 1..5)).prop_map(|(absolute, pieces)| {
        let joined = pieces.join("/");
        if absolute {
            format!("/{joined}")
        } else {
            joined
        }
    })
}

fn build_zip(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, body) in entries {
        // The writer refuses some names (e.g. duplicates); such entries are simply left out.
        if writer.start_file(name.as_str(), options).is_ok() {
            writer.write_all(body).unwrap();
        }
    }
    writer.finish().unwrap().into_inner()
}

fn files_under(root: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let kind = entry.file_type().unwrap();
            assert!(!kind.is_symlink(), "no symlink is ever created");
            if kind.is_dir() {
                pending.push(entry.path());
            } else {
                found.push(entry.path());
            }
        }
    }
    found
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn extraction_never_writes_outside_its_directory_or_past_the_caps(
        entries in prop::collection::vec((entry_name(), prop::collection::vec(any::<u8>(), 0..4096)), 0..12),
        max_total_bytes in 1u64..20_000,
        max_entries in 1usize..10,
    ) {
        let sandbox = tempfile::tempdir().unwrap();
        let destination = sandbox.path().join("out");
        std::fs::create_dir(&destination).unwrap();
        let archive = sandbox.path().join("artifact.zip");
        std::fs::write(&archive, build_zip(&entries)).unwrap();
        let limits = ExtractLimits { max_entries, max_total_bytes, max_ratio: 1000 };

        let result = extract_zip(&archive, &destination, limits);

        // Only the archive and the destination exist beside each other: nothing escaped.
        let mut siblings: Vec<_> = std::fs::read_dir(sandbox.path()).unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        siblings.sort();
        prop_assert_eq!(siblings, vec!["artifact.zip".to_owned(), "out".to_owned()]);
        let written = files_under(&destination);
        let total: u64 = written.iter().map(|path| std::fs::metadata(path).unwrap().len()).sum();
        prop_assert!(total <= max_total_bytes, "{} bytes written past the {} cap", total, max_total_bytes);
        if let Ok(files) = result {
            prop_assert!(files.len() <= max_entries);
            for file in &files {
                prop_assert!(file.path.starts_with(&destination));
                prop_assert!(!file.relative_path.split('/').any(|part| part == ".." || part.is_empty()));
            }
        }
    }

    #[test]
    fn any_configuration_parses_or_fails_without_panicking(
        values in prop::collection::btree_map(
            prop::sample::select(vec![
                "ArtifactoryHost", "RepoKey", "UserName", "Password", "TypeOfArtifact",
                "EmailAddress", "TargetPath", "Properties", "Unknown",
            ]),
            any::<String>(),
            0..9,
        ),
        allow_insecure_http in any::<bool>(),
    ) {
        let data = JobData {
            configuration: ActionConfiguration(
                values.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            ),
            ..JobData::default()
        };
        if let Ok(config) = ActionConfig::from_job(&data, ConfigPolicy { allow_insecure_http }) {
            prop_assert!(!config.target_path.starts_with('/'));
            prop_assert!(!config.target_path.split('/').any(|part| part == ".." || part == "."));
            prop_assert!(matches!(config.host.scheme(), "http" | "https"));
        }
    }

    #[test]
    fn expanded_target_paths_stay_inside_the_repository(
        template in "[a-z{}/.\\\\]{0,24}",
        pipeline_name in "[A-Za-z0-9.@_-]{1,12}",
        revision in proptest::option::of("[0-9a-f.]{1,40}"),
    ) {
        let data = JobData {
            pipeline: PipelineContext {
                pipeline_name,
                execution_id: "e1".into(),
                ..PipelineContext::default()
            },
            input_artifacts: vec![Artifact {
                name: "BuildOutput".into(),
                revision,
                bucket: "b".into(),
                key: "k".into(),
            }],
            ..JobData::default()
        };
        if let Ok(path) = expand_target_path(&template, &data) {
            prop_assert!(!path.starts_with('/') && !path.ends_with('/'));
            prop_assert!(!path.contains('\\'));
            prop_assert!(path.is_empty() || !path.split('/').any(|part| part == ".." || part == "." || part.is_empty()));
        }
    }

    #[test]
    fn properties_round_trip(
        properties in prop::collection::btree_map("[a-z][a-z.]{0,8}", prop::collection::vec("[A-Za-z0-9_-]{1,8}", 1..3), 0..5),
    ) {
        let text = properties
            .iter()
            .map(|(key, values)| format!("{key}={}", values.join(",")))
            .collect::<Vec<_>>()
            .join(";");
        let parsed: BTreeMap<String, Vec<String>> = parse_properties(&text).unwrap();
        prop_assert_eq!(parsed, properties);
    }

    #[test]
    fn failure_messages_fit_the_api_and_never_carry_a_secret(
        prefix in any::<String>(),
        suffix in ".{0,6000}",
        secret in "[!-~]{8,40}",
        repeat in 1usize..50,
    ) {
        let redactor = Redactor::new();
        redactor.add(&SecretString::from(secret.clone()));
        let message = format!("{prefix}{}{suffix}", format!(" {secret} ").repeat(repeat));
        let failure = JobFailure::new(FailureType::JobFailed, &message, &redactor);
        let length = failure.message.chars().count();
        prop_assert!((1..=MAX_FAILURE_MESSAGE_CHARS).contains(&length));
        prop_assert!(!failure.message.contains(&secret));
        let trimmed = trim_to_chars(&message, 100);
        prop_assert!(trimmed.chars().count() <= 100);
        prop_assert!(message.starts_with(trimmed.trim_end_matches("\n… (truncated)")));
    }
}
