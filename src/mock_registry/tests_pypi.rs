//! Tests of the PyPI API (legacy upload, PEP 503 simple index, downloads) against the real
//! server on 127.0.0.1, with forms shaped like the ones twine sends.

use sha2::Digest as _;

use super::MockRegistryConfig;
use super::test_support::{PASSWORD, USER, client, error_message, json_of, start};

const REPO: &str = "pypi-local";
const WHEEL: &str = "Camera_Agent-0.1.0-py3-none-any.whl";

/// A multipart/form-data body: text fields, then the file in part `content`.
fn form(fields: &[(&str, &str)], file_name: &str, content: &[u8]) -> (String, Vec<u8>) {
    let boundary = "mock-registry-test-boundary";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"content\"; filename=\"{file_name}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
    );
    body.extend_from_slice(content);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

fn twine_fields(content: &[u8]) -> Vec<(&'static str, String)> {
    vec![
        (":action", "file_upload".into()),
        ("protocol_version", "1".into()),
        ("metadata_version", "2.1".into()),
        ("name", "Camera_Agent".into()),
        ("version", "0.1.0".into()),
        ("filetype", "bdist_wheel".into()),
        ("pyversion", "py3".into()),
        ("summary", "Camera agent".into()),
        ("requires_python", ">=3.8".into()),
        ("classifiers", "Programming Language :: Python :: 3".into()),
        ("classifiers", "Operating System :: POSIX :: Linux".into()),
        ("sha256_digest", hex::encode(sha2::Sha256::digest(content))),
        ("md5_digest", hex::encode(md5::Md5::digest(content))),
    ]
}

async fn upload(
    base: &str,
    fields: &[(&str, String)],
    file_name: &str,
    content: &[u8],
) -> (u16, serde_json::Value) {
    let fields: Vec<(&str, &str)> = fields
        .iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect();
    let (content_type, body) = form(&fields, file_name, content);
    let response = client()
        .post(format!("{base}/artifactory/api/pypi/{REPO}"))
        .basic_auth(USER, Some(PASSWORD))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("sent");
    json_of(response).await
}

async fn text(url: &str) -> (u16, String) {
    let response = client().get(url).send().await.expect("sent");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

#[tokio::test]
async fn upload_index_download_and_duplicates() {
    let server = start(MockRegistryConfig::default()).await;
    let base = &server.base_url;
    let wheel = b"PK pretend wheel".to_vec();
    let (status, body) = upload(base, &twine_fields(&wheel), WHEEL, &wheel).await;
    assert_eq!(status, 201, "{body}");
    let path = format!("camera-agent/0.1.0/{WHEEL}");
    assert_eq!(body["path"], format!("/{path}"));

    let stored = server.registry.artifact(REPO, &path).expect("stored");
    assert_eq!(stored.properties["pypi.name"], vec!["Camera_Agent"]);
    assert_eq!(stored.properties["pypi.version"], vec!["0.1.0"]);
    assert_eq!(
        stored.properties["pypi.normalized.name"],
        vec!["camera-agent"]
    );
    assert_eq!(
        server.registry.pypi_files(REPO, "camera.agent"),
        vec![stored.clone()]
    );

    let (status, root) = text(&format!("{base}/artifactory/api/pypi/{REPO}/simple/")).await;
    assert_eq!(status, 200, "{root}");
    assert!(
        root.contains("<a href=\"camera-agent/\">camera-agent</a>"),
        "{root}"
    );

    let (status, page) = text(&format!(
        "{base}/artifactory/api/pypi/{REPO}/simple/Camera_Agent/"
    ))
    .await;
    assert_eq!(status, 200, "{page}");
    let link = format!(
        "<a href=\"{base}/artifactory/api/pypi/{REPO}/{path}#sha256={}\" data-requires-python=\"&gt;=3.8\">{WHEEL}</a>",
        stored.sha256
    );
    assert!(page.contains(&link), "{page}");
    let download = client()
        .get(format!("{base}/artifactory/api/pypi/{REPO}/{path}"))
        .send()
        .await
        .expect("sent");
    assert_eq!(download.status(), 200);
    assert_eq!(
        download.bytes().await.expect("body").as_ref(),
        wheel.as_slice()
    );

    let (status, body) = upload(base, &twine_fields(&wheel), WHEEL, &wheel).await;
    assert_eq!(status, 200, "an identical duplicate is a success: {body}");
    let other = b"PK a different wheel".to_vec();
    let (status, body) = upload(base, &twine_fields(&other), WHEEL, &other).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        error_message(403, &body),
        format!(
            "Not enough permissions to delete/overwrite artifact '{REPO}:{path}' (user: '{USER}' needs DELETE permission)."
        )
    );

    let (status, _) = text(&format!(
        "{base}/artifactory/api/pypi/{REPO}/simple/unknown/"
    ))
    .await;
    assert_eq!(status, 404);
}

/// A refused upload: case, form fields, file name, expected part of the message.
type BadUpload = (
    &'static str,
    Vec<(&'static str, String)>,
    &'static str,
    &'static str,
);

#[tokio::test]
async fn bad_uploads_are_rejected() {
    let server = start(MockRegistryConfig::default()).await;
    let base = &server.base_url;
    let wheel = b"PK wheel".to_vec();
    let with = |name: &'static str, value: &str| {
        let mut fields = twine_fields(&wheel);
        fields.retain(|(field, _)| *field != name);
        fields.push((name, value.to_string()));
        fields
    };
    let cases: Vec<BadUpload> = vec![
        (
            "sha256",
            with("sha256_digest", &"0".repeat(64)),
            WHEEL,
            "sha256_digest supplied",
        ),
        (
            "md5",
            with("md5_digest", &"0".repeat(32)),
            WHEEL,
            "md5_digest supplied",
        ),
        (
            "action",
            with(":action", "submit"),
            WHEEL,
            "Unsupported :action",
        ),
        (
            "protocol",
            with("protocol_version", "2"),
            WHEEL,
            "protocol_version",
        ),
        ("no version", with("version", ""), WHEEL, "'version'"),
        (
            "file name",
            twine_fields(&wheel),
            "../evil-0.1.0.whl",
            "Invalid file name",
        ),
        (
            "other project",
            twine_fields(&wheel),
            "other-0.1.0-py3-none-any.whl",
            "does not start with",
        ),
    ];
    for (case, fields, file_name, expected) in cases {
        let (status, body) = upload(base, &fields, file_name, &wheel).await;
        assert_eq!(status, 400, "{case}: {body}");
        assert!(
            error_message(400, &body).contains(expected),
            "{case}: {body}"
        );
    }
    let not_multipart = client()
        .post(format!("{base}/artifactory/api/pypi/{REPO}"))
        .basic_auth(USER, Some(PASSWORD))
        .body("name=x")
        .send()
        .await
        .expect("sent");
    assert_eq!(not_multipart.status(), 400);
    let anonymous = client()
        .post(format!("{base}/artifactory/api/pypi/{REPO}/"))
        .body("x")
        .send()
        .await
        .expect("sent");
    assert_eq!(anonymous.status(), 401);
    assert!(server.registry.artifacts(REPO).is_empty());
}
