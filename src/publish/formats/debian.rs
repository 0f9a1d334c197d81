//! Debian packages: the `Package`, `Version` and `Architecture` of a `.deb`, and where the
//! package goes in a repository's pool.
//!
//! A `.deb` is an `ar` archive: `debian-binary`, then `control.tar[.gz|.xz|.zst]` (dpkg-deb
//! 1.21 compresses it with xz by default, Ubuntu's with zstd), then the data. Only the control
//! member is read; the data is never unpacked.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek};
use std::path::Path;

use flate2::read::GzDecoder;

use crate::publish::formats::{
    MAX_METADATA_BYTES, MetadataError, WorkspaceError, WorkspaceFailure, read_limited,
};

/// What the repository indexer needs from a package's control file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebianControl {
    pub package: String,
    pub version: String,
    pub architecture: String,
}

/// Why the control file of a `.deb` cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum DebianError {
    #[error(transparent)]
    Workspace(#[from] WorkspaceError),
    #[error("it is too short to be a Debian package")]
    TooShort,
    #[error("it is not an ar archive, so not a Debian package")]
    NotAr,
    #[error("its ar archive is corrupt")]
    Corrupt(#[source] io::Error),
    #[error("it has no control.tar member")]
    NoControlMember,
    #[error("its control member `{member}` uses an unknown compression")]
    UnknownCompression { member: String },
    #[error("its control.tar.xz is corrupt")]
    Xz(#[source] lzma_rs::error::Error),
    #[error("its control.tar.zst is corrupt")]
    Zstd(#[source] ruzstd::decoding::errors::FrameDecoderError),
    #[error("its control.tar is unreadable")]
    ControlTar(#[source] io::Error),
    #[error(transparent)]
    ControlUnreadable(#[from] MetadataError),
    #[error("its control file is not UTF-8")]
    NotUtf8(#[source] std::string::FromUtf8Error),
    #[error("its control.tar has no control file")]
    NoControlFile,
    #[error(transparent)]
    Control(#[from] ControlError),
}

impl WorkspaceFailure for DebianError {
    fn into_workspace(self) -> Result<WorkspaceError, Self> {
        match self {
            DebianError::Workspace(error)
            | DebianError::ControlUnreadable(MetadataError::Workspace(error)) => Ok(error),
            other => Err(other),
        }
    }
}

/// What is missing or wrong in a control paragraph.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    #[error("its control file has no {field} field")]
    MissingField { field: &'static str },
    #[error(
        "its package name `{name}` is not valid (at least two characters of a-z, 0-9, `+`, `-` \
         and `.`)"
    )]
    InvalidPackageName { name: String },
    #[error("its Version or Architecture contains `/` or spaces; fix the control file")]
    InvalidVersionOrArchitecture,
}

const AR_MAGIC: &[u8; 8] = b"!<arch>\n";

/// Reads the control file of the `.deb` at `path`.
pub fn read_control(path: &Path) -> Result<DebianControl, DebianError> {
    let read_error = |source| WorkspaceError::new("read", path, source);
    let file = File::open(path).map_err(|source| WorkspaceError::new("open", path, source))?;
    let mut reader = BufReader::new(file);
    // Checked here rather than left to the ar reader so that the message says what the file
    // is not.
    let mut magic = [0u8; 8];
    match reader.read_exact(&mut magic) {
        Ok(()) if &magic == AR_MAGIC => {}
        Ok(()) => return Err(DebianError::NotAr),
        Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => {
            return Err(DebianError::TooShort);
        }
        Err(error) => return Err(read_error(error).into()),
    }
    reader.rewind().map_err(read_error)?;
    let mut archive = ar::Archive::new(reader);
    while let Some(member) = archive.next_entry() {
        let member = member.map_err(|error| match error.kind() {
            io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof => {
                DebianError::Corrupt(error)
            }
            _ => read_error(error).into(),
        })?;
        let name = String::from_utf8_lossy(member.header().identifier())
            .trim_end()
            .trim_end_matches('/')
            .to_owned();
        let control = match name.as_str() {
            "control.tar" => control_from_tar(member),
            "control.tar.gz" => control_from_tar(GzDecoder::new(member)),
            "control.tar.xz" => decompress_xz(member).and_then(|tar| control_from_tar(&tar[..])),
            "control.tar.zst" => ruzstd::decoding::StreamingDecoder::new(member)
                .map_err(DebianError::Zstd)
                .and_then(control_from_tar),
            other if other.starts_with("control.tar") => {
                return Err(DebianError::UnknownCompression {
                    member: other.to_owned(),
                });
            }
            // Dropping the member skips its data.
            _ => continue,
        };
        return Ok(parse_control(&control?)?);
    }
    Err(DebianError::NoControlMember)
}

fn decompress_xz(member: impl Read) -> Result<Vec<u8>, DebianError> {
    let mut compressed = BufReader::new(member);
    let mut tar = Vec::new();
    lzma_rs::xz_decompress(&mut compressed, &mut tar).map_err(DebianError::Xz)?;
    Ok(tar)
}

fn control_from_tar(reader: impl Read) -> Result<String, DebianError> {
    let mut archive = tar::Archive::new(reader);
    let entries = archive.entries().map_err(DebianError::ControlTar)?;
    for entry in entries {
        let entry = entry.map_err(DebianError::ControlTar)?;
        let is_control = entry
            .path()
            .map(|path| path.to_string_lossy().trim_start_matches("./") == "control")
            .unwrap_or(false);
        if is_control {
            let bytes = read_limited(entry, MAX_METADATA_BYTES, "control file")?;
            return String::from_utf8(bytes).map_err(DebianError::NotUtf8);
        }
    }
    Err(DebianError::NoControlFile)
}

/// Reads `Package`, `Version` and `Architecture` from a deb822 control paragraph.
pub fn parse_control(text: &str) -> Result<DebianControl, ControlError> {
    let field = |name: &'static str| {
        text.lines()
            .filter(|line| !line.starts_with([' ', '\t']))
            .find_map(|line| {
                let (key, value) = line.split_once(':')?;
                key.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| value.trim().to_owned())
            })
            .filter(|value| !value.is_empty())
            .ok_or(ControlError::MissingField { field: name })
    };
    let control = DebianControl {
        package: field("Package")?,
        version: field("Version")?,
        architecture: field("Architecture")?,
    };
    let valid_package = control.package.len() >= 2
        && control
            .package
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '+' | '-' | '.'));
    if !valid_package {
        return Err(ControlError::InvalidPackageName {
            name: control.package,
        });
    }
    if control.version.contains(['/', ' ']) || control.architecture.contains(['/', ' ']) {
        return Err(ControlError::InvalidVersionOrArchitecture);
    }
    Ok(control)
}

/// `pool/{component}/{prefix}/{package}/{file}`, where the prefix is the package's first letter,
/// or its first four for `lib*` packages (as Debian's archive does: `libc6` → `libc`).
pub fn pool_path(component: &str, package: &str, file_name: &str) -> String {
    let prefix: String = if package.starts_with("lib") && package.len() > 3 {
        package.chars().take(4).collect()
    } else {
        package.chars().take(1).collect()
    };
    format!("pool/{component}/{prefix}/{package}/{file_name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_fields_and_pool_paths() {
        let control = parse_control(
            "Package: nestbox-camera-agent\nVersion: 1.3.0-1\nArchitecture: armhf\nDescription: x\n more\n",
        )
        .unwrap();
        assert_eq!(control.package, "nestbox-camera-agent");
        assert_eq!(control.architecture, "armhf");
        assert!(parse_control("Package: x\n").is_err());
        assert_eq!(
            pool_path("main", "nestbox-camera-agent", "a.deb"),
            "pool/main/n/nestbox-camera-agent/a.deb"
        );
        assert_eq!(
            pool_path("main", "libcamera0", "b.deb"),
            "pool/main/libc/libcamera0/b.deb"
        );
    }

    /// A `.deb` with `members` in order, as `(name, bytes)`.
    fn deb(members: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut builder = ar::Builder::new(Vec::new());
        for (name, bytes) in members {
            let header = ar::Header::new(name.as_bytes().to_vec(), bytes.len() as u64);
            builder.append(&header, &bytes[..]).unwrap();
        }
        builder.into_inner().unwrap()
    }

    fn control_tar_gz(control: &str) -> Vec<u8> {
        let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::default(),
        ));
        let mut header = tar::Header::new_gnu();
        header.set_size(control.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, "./control", control.as_bytes())
            .unwrap();
        tar.into_inner().unwrap().finish().unwrap()
    }

    #[test]
    fn the_control_member_is_found_after_odd_sized_members() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.deb");
        let control = "Package: nestbox-camera-agent\nVersion: 1.3.0-1\nArchitecture: arm64\n";
        std::fs::write(
            &path,
            deb(&[
                ("debian-binary", b"2.0\n".to_vec()),
                // An odd size makes the ar reader skip a padding byte before the next member.
                ("_signature", b"odd".to_vec()),
                ("control.tar.gz", control_tar_gz(control)),
                ("data.tar.xz", vec![0; 7]),
            ]),
        )
        .unwrap();
        let read = read_control(&path).unwrap();
        assert_eq!(
            (read.package.as_str(), read.architecture.as_str()),
            ("nestbox-camera-agent", "arm64")
        );

        std::fs::write(
            &path,
            deb(&[
                ("debian-binary", b"2.0\n".to_vec()),
                ("control.tar.lz4", vec![1, 2, 3]),
            ]),
        )
        .unwrap();
        assert!(
            read_control(&path)
                .unwrap_err()
                .to_string()
                .contains("`control.tar.lz4` uses an unknown compression")
        );
    }

    #[test]
    fn a_file_that_is_not_an_ar_archive_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.deb");
        std::fs::write(&path, b"definitely not a deb").unwrap();
        assert!(
            read_control(&path)
                .unwrap_err()
                .to_string()
                .contains("not an ar archive")
        );
    }
}
