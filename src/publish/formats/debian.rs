//! Debian packages: the `Package`, `Version` and `Architecture` of a `.deb`, and where the
//! package goes in a repository's pool.
//!
//! A `.deb` is an `ar` archive: `debian-binary`, then `control.tar[.gz|.xz|.zst]` (dpkg-deb
//! 1.21 compresses it with xz by default, Ubuntu's with zstd), then the data. Only the control
//! member is read; the data is never unpacked.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use flate2::read::GzDecoder;

use crate::publish::formats::{MAX_METADATA_BYTES, read_limited};

/// What the repository indexer needs from a package's control file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebianControl {
    pub package: String,
    pub version: String,
    pub architecture: String,
}

const AR_MAGIC: &[u8; 8] = b"!<arch>\n";
const AR_HEADER_LEN: usize = 60;

/// Reads the control file of the `.deb` at `path`.
pub fn read_control(path: &Path) -> Result<DebianControl, String> {
    let file = File::open(path).map_err(|error| format!("could not open it: {error}"))?;
    let mut reader = BufReader::new(file);
    let mut magic = [0u8; 8];
    reader
        .read_exact(&mut magic)
        .map_err(|_| "it is too short to be a Debian package".to_owned())?;
    if &magic != AR_MAGIC {
        return Err("it is not an ar archive, so not a Debian package".into());
    }
    loop {
        let mut header = [0u8; AR_HEADER_LEN];
        match reader.read_exact(&mut header) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => {
                return Err("it has no control.tar member".into());
            }
            Err(error) => return Err(format!("could not read it: {error}")),
        }
        if &header[58..60] != b"`\n" {
            return Err("its ar archive is corrupt (bad member header)".into());
        }
        let name = String::from_utf8_lossy(&header[0..16])
            .trim_end()
            .trim_end_matches('/')
            .to_owned();
        let size: u64 = String::from_utf8_lossy(&header[48..58])
            .trim()
            .parse()
            .map_err(|_| "its ar archive is corrupt (bad member size)".to_owned())?;
        let member = (&mut reader).take(size);
        let control = match name.as_str() {
            "control.tar" => Some(control_from_tar(member)),
            "control.tar.gz" => Some(control_from_tar(GzDecoder::new(member))),
            "control.tar.xz" => {
                Some(decompress_xz(member).and_then(|tar| control_from_tar(&tar[..])))
            }
            "control.tar.zst" => Some(
                ruzstd::decoding::StreamingDecoder::new(member)
                    .map_err(|error| format!("its control.tar.zst is corrupt ({error})"))
                    .and_then(control_from_tar),
            ),
            other if other.starts_with("control.tar") => {
                return Err(format!(
                    "its control member `{other}` uses an unknown compression"
                ));
            }
            _ => None,
        };
        if let Some(control) = control {
            return parse_control(&control?);
        }
        // Skip the member and its padding to an even offset.
        let skip = size + size % 2;
        io::copy(&mut (&mut reader).take(skip), &mut io::sink())
            .map_err(|error| format!("could not read it: {error}"))?;
    }
}

fn decompress_xz(member: impl Read) -> Result<Vec<u8>, String> {
    let mut compressed = BufReader::new(member);
    let mut tar = Vec::new();
    lzma_rs::xz_decompress(&mut compressed, &mut tar)
        .map_err(|error| format!("its control.tar.xz is corrupt ({error})"))?;
    Ok(tar)
}

fn control_from_tar(reader: impl Read) -> Result<String, String> {
    let mut archive = tar::Archive::new(reader);
    let entries = archive
        .entries()
        .map_err(|error| format!("its control.tar is unreadable ({error})"))?;
    for entry in entries {
        let entry = entry.map_err(|error| format!("its control.tar is unreadable ({error})"))?;
        let is_control = entry
            .path()
            .map(|path| path.to_string_lossy().trim_start_matches("./") == "control")
            .unwrap_or(false);
        if is_control {
            let bytes = read_limited(entry, MAX_METADATA_BYTES, "control file")?;
            return String::from_utf8(bytes)
                .map_err(|_| "its control file is not UTF-8".to_owned());
        }
    }
    Err("its control.tar has no control file".into())
}

/// Reads `Package`, `Version` and `Architecture` from a deb822 control paragraph.
pub fn parse_control(text: &str) -> Result<DebianControl, String> {
    let field = |name: &str| {
        text.lines()
            .filter(|line| !line.starts_with([' ', '\t']))
            .find_map(|line| {
                let (key, value) = line.split_once(':')?;
                key.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| value.trim().to_owned())
            })
            .filter(|value| !value.is_empty())
            .ok_or_else(|| format!("its control file has no {name} field"))
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
        return Err(format!(
            "its package name `{}` is not valid",
            control.package
        ));
    }
    if control.version.contains(['/', ' ']) || control.architecture.contains(['/', ' ']) {
        return Err("its Version or Architecture contains `/` or spaces".into());
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

    #[test]
    fn a_file_that_is_not_an_ar_archive_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.deb");
        std::fs::write(&path, b"definitely not a deb").unwrap();
        assert!(
            read_control(&path)
                .unwrap_err()
                .contains("not an ar archive")
        );
    }
}
