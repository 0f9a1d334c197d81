//! The camera-agent example as one combined build output: the firmware image, the agent's npm
//! package source, a `.deb` and a wheel, and the file spec that publishes them together.
//!
//! The `.deb` and the wheel are built here, in-process and offline, from the sources under
//! `examples/camera-agent/` (embedded), so `demo` needs no `dpkg-deb` or `pip`; the tests also
//! build the `.deb` with the real `dpkg-deb` to check both agree.

use std::io::Write;

use base64::Engine;
use flate2::Compression;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};

use crate::demo::FIRMWARE_EXAMPLE;

/// The agent's version in every form.
pub const AGENT_VERSION: &str = "1.3.0";
/// The npm package's name.
pub const NPM_NAME: &str = "@nestbox/camera-agent";
/// The Debian package's name, version and file.
pub const DEB_NAME: &str = "nestbox-camera-agent";
pub const DEB_VERSION: &str = "1.3.0-1";
pub const DEB_FILE: &str = "nestbox-camera-agent_1.3.0-1_arm64.deb";
/// The Python project and its wheel.
pub const PYPI_NAME: &str = "nestbox-camera-agent";
pub const WHEEL_FILE: &str = "nestbox_camera_agent-1.3.0-py3-none-any.whl";

/// The npm package source (path under `examples/camera-agent/npm/`, bytes, executable).
pub const NPM_SOURCE: &[(&str, &[u8], bool)] = &[
    (
        "package.json",
        include_bytes!("../../examples/camera-agent/npm/package.json"),
        false,
    ),
    (
        "index.js",
        include_bytes!("../../examples/camera-agent/npm/index.js"),
        false,
    ),
    (
        "bin/camera-agent.js",
        include_bytes!("../../examples/camera-agent/npm/bin/camera-agent.js"),
        true,
    ),
    (
        "README.md",
        include_bytes!("../../examples/camera-agent/npm/README.md"),
        false,
    ),
    (
        "LICENSE",
        include_bytes!("../../examples/camera-agent/npm/LICENSE"),
        false,
    ),
    (
        ".npmignore",
        include_bytes!("../../examples/camera-agent/npm/.npmignore"),
        false,
    ),
];

const DEB_CONTROL: &[u8] = include_bytes!("../../examples/camera-agent/debian/DEBIAN/control");
const DEB_BINARY: &[u8] =
    include_bytes!("../../examples/camera-agent/debian/usr/bin/nestbox-camera-agent");
const PY_INIT: &[u8] =
    include_bytes!("../../examples/camera-agent/python/nestbox_camera_agent/__init__.py");
const PY_MAIN: &[u8] =
    include_bytes!("../../examples/camera-agent/python/nestbox_camera_agent/__main__.py");
/// The example file spec.
pub const PUBLISH_SPEC: &[u8] = include_bytes!("../../examples/camera-agent/publish-spec.json");

/// The combined build output: `(path, bytes)` entries for an input artifact zip.
pub fn combined_build() -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut entries: Vec<(String, Vec<u8>)> =
        vec![("publish-spec.json".into(), PUBLISH_SPEC.to_vec())];
    for (name, bytes) in FIRMWARE_EXAMPLE {
        entries.push((format!("firmware/{name}"), bytes.to_vec()));
    }
    for (path, bytes, _) in NPM_SOURCE {
        entries.push((format!("agent/npm/{path}"), bytes.to_vec()));
    }
    entries.push((format!("agent/{DEB_FILE}"), debian_package()?));
    entries.push((format!("agent/{WHEEL_FILE}"), python_wheel()?));
    Ok(entries)
}

/// The `.deb`, as `dpkg-deb --build --root-owner-group` lays it out (gzip members).
pub fn debian_package() -> anyhow::Result<Vec<u8>> {
    let control = tar_gz(&[("./control", DEB_CONTROL, 0o644)])?;
    let data = tar_gz(&[("./usr/bin/nestbox-camera-agent", DEB_BINARY, 0o755)])?;
    let mut deb = b"!<arch>\n".to_vec();
    for (name, bytes) in [
        ("debian-binary", &b"2.0\n"[..]),
        ("control.tar.gz", &control),
        ("data.tar.gz", &data),
    ] {
        deb.extend_from_slice(
            format!(
                "{name:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
                0,
                0,
                0,
                "100644",
                bytes.len()
            )
            .as_bytes(),
        );
        deb.extend_from_slice(bytes);
        if bytes.len() % 2 == 1 {
            deb.push(b'\n');
        }
    }
    Ok(deb)
}

fn tar_gz(files: &[(&str, &[u8], u32)]) -> anyhow::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::default()));
    for (path, bytes, mode) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(*mode);
        header.set_mtime(0);
        builder.append_data(&mut header, path, *bytes)?;
    }
    Ok(builder.into_inner()?.finish()?)
}

/// The wheel `pip wheel` would build from `examples/camera-agent/python/`.
pub fn python_wheel() -> anyhow::Result<Vec<u8>> {
    let dist_info = format!("nestbox_camera_agent-{AGENT_VERSION}.dist-info");
    let metadata = format!(
        "Metadata-Version: 2.1\nName: {PYPI_NAME}\nVersion: {AGENT_VERSION}\nSummary: Nest-box camera agent: reports the camera's status\nLicense: MIT\nRequires-Python: >=3.9\n"
    );
    let wheel = "Wheel-Version: 1.0\nGenerator: pipeline-publisher demo\nRoot-Is-Purelib: true\nTag: py3-none-any\n";
    let mut files: Vec<(String, Vec<u8>)> = vec![
        ("nestbox_camera_agent/__init__.py".into(), PY_INIT.to_vec()),
        ("nestbox_camera_agent/__main__.py".into(), PY_MAIN.to_vec()),
        (format!("{dist_info}/METADATA"), metadata.into_bytes()),
        (format!("{dist_info}/WHEEL"), wheel.as_bytes().to_vec()),
    ];
    let mut record = String::new();
    for (path, bytes) in &files {
        let digest = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(bytes));
        record.push_str(&format!("{path},sha256={digest},{}\n", bytes.len()));
    }
    record.push_str(&format!("{dist_info}/RECORD,,\n"));
    files.push((format!("{dist_info}/RECORD"), record.into_bytes()));
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (path, bytes) in &files {
        writer.start_file(path.as_str(), options)?;
        writer.write_all(bytes)?;
    }
    Ok(writer.finish()?.into_inner())
}
