//! Hostile and broken inputs, each refused with a typed failure: nothing published, the job's
//! temporary space removed, and one result per job. All cases run as jobs through the real
//! worker loop against the stand-ins on 127.0.0.1.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use pipeline_publisher::artifacts::ExtractLimits;
use pipeline_publisher::demo::{DEMO_REPO, FIRMWARE_EXAMPLE, LocalEnvironment, zip_entries};
use pipeline_publisher::pipeline::properties;
use pipeline_publisher::publish::PublisherSettings;
use pipeline_publisher::sandbox::{ArtifactSpec, JobResult, SandboxConfig};

/// What the input artifact object holds.
enum Object {
    Bytes(Vec<u8>),
    Missing,
}

struct Case {
    name: &'static str,
    object: Object,
    /// Changes to the valid firmware configuration: `None` removes the property.
    configuration: Vec<(&'static str, Option<String>)>,
    failure_type: &'static str,
    /// Text the failure message must contain (what a person needs to fix it).
    message_contains: &'static str,
}

fn case(
    name: &'static str,
    object: Object,
    failure_type: &'static str,
    message: &'static str,
) -> Case {
    Case {
        name,
        object,
        configuration: Vec::new(),
        failure_type,
        message_contains: message,
    }
}

fn config_case(
    name: &'static str,
    property: &'static str,
    value: Option<&str>,
    message: &'static str,
) -> Case {
    Case {
        configuration: vec![(property, value.map(str::to_owned))],
        ..case(name, firmware(), "ConfigurationError", message)
    }
}

fn firmware() -> Object {
    Object::Bytes(zip_entries(FIRMWARE_EXAMPLE).unwrap())
}

fn zip(entries: &[(&str, &[u8])]) -> Object {
    Object::Bytes(zip_entries(entries).unwrap())
}

fn zip_with_symlink() -> Object {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default();
    writer.start_file("image.img", options).unwrap();
    writer.write_all(b"firmware").unwrap();
    writer
        .add_symlink("config", "/etc/shadow", options)
        .unwrap();
    Object::Bytes(writer.finish().unwrap().into_inner())
}

/// Points the second central-directory entry at the first entry's data.
fn zip_with_overlapping_entries() -> Object {
    let zeros = vec![0u8; 256 * 1024];
    let mut bytes = zip_entries(&[("a.img", &zeros), ("b.img", &zeros)]).unwrap();
    let mut central = Vec::new();
    for offset in 0..bytes.len().saturating_sub(4) {
        if bytes[offset..offset + 4] == [0x50, 0x4b, 0x01, 0x02] {
            central.push(offset);
        }
    }
    assert_eq!(central.len(), 2);
    let first_local = bytes[central[0] + 42..central[0] + 46].to_vec();
    bytes[central[1] + 42..central[1] + 46].copy_from_slice(&first_local);
    Object::Bytes(bytes)
}

/// Two entries renamed to the same path.
fn zip_with_duplicate_entries() -> Object {
    let mut bytes = zip_entries(&[("fw/a.img", b"one"), ("fw/b.img", b"two")]).unwrap();
    for offset in 0..bytes.len() - 8 {
        if &bytes[offset..offset + 8] == b"fw/b.img" {
            bytes[offset..offset + 8].copy_from_slice(b"fw/a.img");
        }
    }
    Object::Bytes(bytes)
}

fn corrupt_zip() -> Object {
    let data: Vec<u8> = (0..64 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut bytes = zip_entries(&[("image.img", &data)]).unwrap();
    let middle = bytes.len() / 3;
    for byte in &mut bytes[middle..middle + 64] {
        *byte ^= 0x5a;
    }
    Object::Bytes(bytes)
}

fn incompressible(size: usize, seed: u32) -> Vec<u8> {
    let mut state = seed;
    (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect()
}

/// A one-route server that answers every request with `response` and counts what it saw.
async fn scripted_registry(
    response: impl Fn() -> axum::response::Response + Clone + Send + Sync + 'static,
) -> (String, Arc<AtomicUsize>) {
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    let app = axum::Router::new().fallback(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        let response = response.clone();
        async move { response() }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}"), seen)
}

#[tokio::test]
async fn every_bad_input_is_refused_with_a_typed_failure_and_nothing_is_published() {
    let environment = LocalEnvironment::start().await.unwrap();

    // Where a redirect would lead: it must never see a request (credentials stay home).
    let (elsewhere, elsewhere_hits) =
        scripted_registry(|| axum::response::IntoResponse::into_response("nothing here")).await;
    let location = format!("{elsewhere}/access/api/v1/tokens");
    let (redirecting, _) = scripted_registry(move || {
        axum::response::IntoResponse::into_response((
            axum::http::StatusCode::FOUND,
            [(axum::http::header::LOCATION, location.clone())],
        ))
    })
    .await;
    let (html_500, _) = scripted_registry(|| {
        let page = format!(
            "<html><body>{}</body></html>",
            "Internal error. ".repeat(400_000)
        );
        axum::response::IntoResponse::into_response((
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            page,
        ))
    })
    .await;

    let cases = vec![
        case(
            "zip slip with ../",
            zip(&[("../../etc/cron.d/evil", b"x")]),
            "ConfigurationError",
            "contains `..`",
        ),
        case(
            "absolute entry path",
            zip(&[("/etc/passwd", b"x")]),
            "ConfigurationError",
            "is absolute",
        ),
        case(
            "drive-letter entry path",
            zip(&[("C:/Windows/evil.dll", b"x")]),
            "ConfigurationError",
            "drive letter",
        ),
        case(
            "backslash entry path",
            zip(&[("..\\..\\evil", b"x")]),
            "ConfigurationError",
            "backslash",
        ),
        case(
            "symlink entry",
            zip_with_symlink(),
            "ConfigurationError",
            "symbolic link",
        ),
        case(
            "high-ratio zip bomb",
            zip(&[("disk.img", &vec![0u8; 8 * 1024 * 1024])]),
            "ConfigurationError",
            "expands more than 100:1",
        ),
        case(
            "overlapping entries",
            zip_with_overlapping_entries(),
            "ConfigurationError",
            "share their compressed data",
        ),
        case(
            "many tiny entries",
            Object::Bytes({
                let names: Vec<String> = (0..60).map(|i| format!("f{i}.txt")).collect();
                let entries: Vec<(&str, &[u8])> =
                    names.iter().map(|n| (n.as_str(), &b"x"[..])).collect();
                zip_entries(&entries).unwrap()
            }),
            "ConfigurationError",
            "more than 50 entries",
        ),
        case(
            "expands past the byte cap",
            zip(&[
                ("a.bin", &incompressible(3 << 20, 1)),
                ("b.bin", &incompressible(3 << 20, 2)),
            ]),
            "ConfigurationError",
            "expands to more than",
        ),
        case(
            "duplicate entries",
            zip_with_duplicate_entries(),
            "ConfigurationError",
            "appears twice",
        ),
        case(
            "corrupt zip",
            corrupt_zip(),
            "ConfigurationError",
            "corrupt",
        ),
        case(
            "truncated zip",
            Object::Bytes({
                let bytes = zip_entries(FIRMWARE_EXAMPLE).unwrap();
                bytes[..bytes.len() / 2].to_vec()
            }),
            "ConfigurationError",
            "not a readable zip",
        ),
        case(
            "empty zip",
            zip(&[]),
            "ConfigurationError",
            "contains no files",
        ),
        case(
            "not a zip",
            Object::Bytes(b"just an image, not a zip".to_vec()),
            "ConfigurationError",
            "not a readable zip",
        ),
        case(
            "missing artifact object",
            Object::Missing,
            "JobFailed",
            "does not exist",
        ),
        config_case(
            "missing ArtifactoryHost",
            properties::ARTIFACTORY_HOST,
            None,
            "ArtifactoryHost: is required",
        ),
        config_case(
            "missing RepoKey",
            properties::REPO_KEY,
            None,
            "RepoKey: is required",
        ),
        config_case(
            "missing UserName",
            properties::USER_NAME,
            None,
            "UserName: is required",
        ),
        config_case(
            "missing Password",
            properties::PASSWORD,
            None,
            "Password: is required",
        ),
        config_case(
            "host without scheme",
            properties::ARTIFACTORY_HOST,
            Some("acme.jfrog.io"),
            "is not a URL",
        ),
        config_case(
            "host not http(s)",
            properties::ARTIFACTORY_HOST,
            Some("ftp://acme.jfrog.io"),
            "must be an http(s) URL",
        ),
        config_case(
            "plain http to a remote host",
            properties::ARTIFACTORY_HOST,
            Some("http://acme.jfrog.io"),
            "plain http",
        ),
        config_case(
            "host with credentials",
            properties::ARTIFACTORY_HOST,
            Some("https://ci:hunter2@acme.jfrog.io"),
            "must not contain credentials",
        ),
        config_case(
            "repository key with traversal",
            properties::REPO_KEY,
            Some("../etc"),
            "not a repository key",
        ),
        config_case(
            "unknown artifact type",
            properties::TYPE_OF_ARTIFACT,
            Some("maven"),
            "not a known type",
        ),
        config_case(
            "target path escaping the repository",
            properties::TARGET_PATH,
            Some("releases/../../x"),
            "must stay inside the repository",
        ),
        config_case(
            "unknown target path placeholder",
            properties::TARGET_PATH,
            Some("{Branch}/x"),
            "unknown placeholder {Branch}",
        ),
        config_case(
            "malformed properties",
            properties::PROPERTIES,
            Some("board"),
            "is not key=value",
        ),
        config_case(
            "malformed e-mail address",
            properties::EMAIL_ADDRESS,
            Some("cameras at example"),
            "not an e-mail address",
        ),
        Case {
            configuration: vec![(properties::ARTIFACTORY_HOST, Some(redirecting.clone()))],
            ..case(
                "registry redirecting elsewhere",
                firmware(),
                "JobFailed",
                "redirects are never followed",
            )
        },
        Case {
            configuration: vec![(properties::ARTIFACTORY_HOST, Some(html_500.clone()))],
            ..case(
                "huge non-JSON error body",
                firmware(),
                "JobFailed",
                "answered 500: <html><body>Internal error.",
            )
        },
    ];
    assert!(cases.len() >= 20);

    let bucket = SandboxConfig::default().artifact_bucket;
    let mut jobs = Vec::new();
    for (index, case) in cases.iter().enumerate() {
        let key = format!("bad-inputs/{index}/Artifact");
        if let Object::Bytes(bytes) = &case.object {
            environment
                .sandbox
                .sandbox
                .put_object(&bucket, &key, bytes)
                .unwrap();
        }
        let mut configuration: BTreeMap<String, String> = environment.firmware_configuration();
        for (property, value) in &case.configuration {
            match value {
                Some(value) => configuration.insert((*property).to_owned(), value.clone()),
                None => configuration.remove(*property),
            };
        }
        let artifact = ArtifactSpec {
            name: "BuildOutput".into(),
            revision: Some("0123456789abcdef".into()),
            bucket: bucket.clone(),
            key,
        };
        jobs.push(environment.queue_job("nestbox-firmware", configuration, vec![artifact]));
    }

    let work_dir = tempfile::tempdir().unwrap();
    let publisher = environment
        .publisher(PublisherSettings {
            work_dir: Some(work_dir.path().to_owned()),
            extract_limits: ExtractLimits {
                max_entries: 50,
                max_total_bytes: 4 * 1024 * 1024,
                max_ratio: 100,
            },
            ..PublisherSettings::default()
        })
        .unwrap();
    let report = environment
        .run_worker(publisher, cases.len() as u64)
        .await
        .unwrap();

    let mut problems = Vec::new();
    for (case, job_id) in cases.iter().zip(&jobs) {
        let record = environment.sandbox.sandbox.job(job_id).unwrap();
        match record.results.as_slice() {
            [
                JobResult::Failure {
                    failure_type,
                    message,
                    ..
                },
            ] => {
                if failure_type != case.failure_type || !message.contains(case.message_contains) {
                    problems.push(format!(
                        "{}: got {failure_type}, expected {} containing {:?}:\n{message}",
                        case.name, case.failure_type, case.message_contains
                    ));
                }
                if message.chars().count() > 5000 {
                    problems.push(format!(
                        "{}: message longer than 5000 characters",
                        case.name
                    ));
                }
            }
            other => problems.push(format!(
                "{}: expected one failure, got {other:?}",
                case.name
            )),
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
    assert_eq!(report.failed, cases.len() as u64, "{report:?}");

    assert!(
        environment
            .registry
            .registry
            .artifacts(DEMO_REPO)
            .is_empty(),
        "nothing was published"
    );
    // A refusal found before any upload could begin mints no token; one found while the
    // artifact was still downloading (uploads begin early) may have minted one, which the job
    // revoked: no credential outlives a refused job.
    let live: Vec<_> = environment
        .registry
        .registry
        .tokens()
        .into_iter()
        .filter(|token| !token.revoked)
        .collect();
    assert!(live.is_empty(), "tokens left valid: {live:?}");
    assert_eq!(
        elsewhere_hits.load(Ordering::SeqCst),
        0,
        "the redirect was not followed"
    );
    let left: Vec<_> = std::fs::read_dir(work_dir.path()).unwrap().collect();
    assert!(left.is_empty(), "temporary space was cleaned: {left:?}");
}
