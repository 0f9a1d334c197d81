//! Safe extraction of an input artifact (a zip) into the job's private directory.
//!
//! An artifact is build output, and build output can be hostile or broken. Before any byte is
//! written, every entry name is checked (no absolute or drive-letter paths, no `..`, no
//! backslashes, no symlinks); while writing, bytes are *counted as they are read* rather than
//! trusted from headers, so a zip bomb stops at the cap however it lies. Each file's checksums
//! are computed in the same pass that writes it.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use zip::ZipArchive;
use zip::result::ZipError;

use super::arrivals::{AbandonOnDrop, Arrivals};
use super::growing::{GROWING_MIN_BYTES, GrowingFile};
use super::zip_fetch::{ArchiveView, RoutedEntry};
use crate::checksum::{Checksums, hash_stream};

/// Caps that bound what one artifact may expand to.
#[derive(Debug, Clone, Copy)]
pub struct ExtractLimits {
    /// Most entries (files and directories) one archive may hold.
    pub max_entries: usize,
    /// Most bytes all files of one archive may expand to.
    pub max_total_bytes: u64,
    /// Highest expansion ratio allowed for an entry larger than [`RATIO_FLOOR_BYTES`].
    pub max_ratio: u64,
}

impl Default for ExtractLimits {
    fn default() -> Self {
        Self {
            max_entries: 10_000,
            max_total_bytes: 16 * 1024 * 1024 * 1024,
            // Deflate cannot exceed ~1032:1; zero-padded disk images reach a few hundred.
            max_ratio: 1_000,
        }
    }
}

/// Entries smaller than this are not ratio-checked: a tiny text file of repeated characters
/// compresses extremely well and harms nobody.
pub const RATIO_FLOOR_BYTES: u64 = 1024 * 1024;

/// A file written by extraction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtractedFile {
    /// Path inside the artifact, `/`-separated.
    pub relative_path: String,
    pub path: PathBuf,
    pub size: u64,
    pub checksums: Checksums,
}

/// Why an archive was refused.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error("it is not a readable zip archive; the build must produce a zip artifact")]
    NotAZip(#[source] ZipError),
    #[error("entry `{entry}` could not be read; the archive is corrupt or truncated")]
    Corrupt {
        entry: String,
        #[source]
        source: io::Error,
    },
    #[error("entry `{entry}` has an unsafe path ({reason}); nothing was published")]
    UnsafePath { entry: String, reason: &'static str },
    #[error("entry `{entry}` is a symbolic link, which is not allowed in artifacts")]
    Symlink { entry: String },
    #[error("entry `{entry}` is encrypted; publish unencrypted build output")]
    Encrypted { entry: String },
    #[error("an entry name appears twice in the archive, so its content is ambiguous{}", entry.as_ref().map(|e| format!(" (`{e}`)")).unwrap_or_default())]
    Duplicate { entry: Option<String> },
    #[error("entries share their compressed data, a zip-bomb technique")]
    Overlapping,
    #[error(
        "the archive has more than {limit} entries (raise --max-archive-entries if this is expected)"
    )]
    TooManyEntries { limit: usize },
    #[error(
        "the archive expands to more than {limit} bytes (raise --max-extracted-bytes if this is expected)"
    )]
    TooLarge { limit: u64 },
    #[error(
        "entry `{entry}` expands more than {limit}:1, like a zip bomb (raise --max-compression-ratio if this is expected)"
    )]
    RatioExceeded { entry: String, limit: u64 },
    #[error("the archive contains no files")]
    Empty,
    /// The worker's own disk failed, not the artifact.
    #[error(
        "the worker could not write `{path}` in its work directory; check --work-dir and its free \
         disk space"
    )]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl ExtractError {
    /// Whether the worker's own disk is at fault (so the job failed, not the configuration).
    pub fn is_worker_io(&self) -> bool {
        matches!(self, ExtractError::Write { .. })
    }
}

/// Extracts `archive` into `destination` (which must exist and be private) and returns the
/// files written, sorted by path. Blocking: run it on a blocking thread.
pub fn extract_zip(
    archive: &Path,
    destination: &Path,
    limits: ExtractLimits,
) -> Result<Vec<ExtractedFile>, ExtractError> {
    extract_zip_routed(archive, destination, limits, &[])
}

/// [`extract_zip`] for an archive downloaded with some stored entries routed to files of their
/// own ([`crate::artifacts::zip_fetch`]): the archive is read through [`ArchiveView`], so every
/// check sees the object's own bytes, and a routed entry is hashed in that pass and its file
/// linked into place rather than written again.
pub fn extract_zip_routed(
    archive: &Path,
    destination: &Path,
    limits: ExtractLimits,
    routed: &[RoutedEntry],
) -> Result<Vec<ExtractedFile>, ExtractError> {
    extract_view(archive, destination, limits, routed, None, &mut |_| {})
}

/// [`extract_zip_routed`] while the archive is still downloading: every read waits until its
/// bytes have arrived (`arrivals`), so each entry is checked, inflated and hashed as soon as
/// its bytes are there, with exactly the checks of an extraction after the download.
pub fn extract_zip_following(
    archive: &Path,
    destination: &Path,
    limits: ExtractLimits,
    routed: &[RoutedEntry],
    arrivals: Arc<Arrivals>,
) -> Result<Vec<ExtractedFile>, ExtractError> {
    extract_view(
        archive,
        destination,
        limits,
        routed,
        Some(arrivals),
        &mut |_| {},
    )
}

/// What [`extract_zip_reporting`] tells as it goes, so that a caller can act on a file before
/// the whole archive is extracted.
#[derive(Debug, Clone, Copy)]
pub enum ExtractionEvent<'a> {
    /// The central directory passed every check made before any entry is read (names,
    /// symlinks, encryption, duplicates, entry count, what it shows of overlaps); these are the
    /// paths of the files extraction will place, in archive order. Told once, before any file.
    Checked(&'a [String]),
    /// A file of at least [`GROWING_MIN_BYTES`] (as declared) is being extracted; its bytes
    /// can be read as they arrive, unchecked until it is placed. Told before its `Placed`.
    Begun(&'a GrowingFile),
    /// A file was placed and hashed: its CRC and every check on it passed.
    Placed(&'a ExtractedFile),
}

/// [`extract_zip_following`] that tells `report` when the central directory has passed its
/// checks and each time a file is placed. Everything after [`ExtractionEvent::Checked`] can
/// still fail (a later entry's CRC, the caps, its local header, the download, the disk).
pub fn extract_zip_reporting(
    archive: &Path,
    destination: &Path,
    limits: ExtractLimits,
    routed: &[RoutedEntry],
    arrivals: Arc<Arrivals>,
    report: &mut dyn FnMut(ExtractionEvent<'_>),
) -> Result<Vec<ExtractedFile>, ExtractError> {
    extract_view(archive, destination, limits, routed, Some(arrivals), report)
}

fn extract_view(
    archive: &Path,
    destination: &Path,
    limits: ExtractLimits,
    routed: &[RoutedEntry],
    arrivals: Option<Arc<Arrivals>>,
    report: &mut dyn FnMut(ExtractionEvent<'_>),
) -> Result<Vec<ExtractedFile>, ExtractError> {
    let view = ArchiveView::open(archive, routed).map_err(|source| ExtractError::Write {
        path: archive.to_owned(),
        source,
    })?;
    // A routed entry's bytes arrive with the archive's; once it is whole, they all have.
    let routed_arrivals = arrivals.clone().unwrap_or_else(Arrivals::whole);
    let view = match arrivals {
        Some(arrivals) => view.following(arrivals),
        None => view,
    };
    let mut zip = ZipArchive::new(io::BufReader::new(view)).map_err(ExtractError::NotAZip)?;
    if zip.len() > limits.max_entries {
        return Err(ExtractError::TooManyEntries {
            limit: limits.max_entries,
        });
    }
    // The zip crate keeps one of several same-named entries; which one is a matter of parser
    // choice, so the archive means different things to different tools: refuse it.
    if zip.has_duplicate_names() {
        return Err(ExtractError::Duplicate { entry: None });
    }
    // Entries sharing compressed data let a small archive expand many times over. What the
    // central directory shows is refused now; the rest of the test needs each entry's local
    // header, which is checked as the entry is reached (see `Layout`).
    let layout = Layout::of(&zip)?;

    // Check every name first, so a bad entry late in the archive leaves nothing behind. Only
    // the central directory is read here, so this does not wait for the download.
    let mut plan = Vec::with_capacity(zip.len());
    let mut seen = std::collections::HashSet::new();
    let mut files = 0;
    for index in 0..zip.len() {
        let entry = zip.by_index_data(index).map_err(ExtractError::NotAZip)?;
        let name = String::from_utf8_lossy(entry.name_raw()).into_owned();
        if entry.is_symlink() {
            return Err(ExtractError::Symlink { entry: name });
        }
        if entry.encrypted() {
            return Err(ExtractError::Encrypted { entry: name });
        }
        let relative = safe_relative_path(&name)?;
        if entry.is_dir() {
            plan.push((index, None));
            continue;
        }
        // `a/b` and `./a/b` are different names for the same file.
        if !seen.insert(relative.clone()) {
            return Err(ExtractError::Duplicate { entry: Some(name) });
        }
        files += 1;
        plan.push((index, Some((name, relative))));
    }
    if files == 0 {
        return Err(ExtractError::Empty);
    }
    let names: Vec<String> = plan
        .iter()
        .filter_map(|(_, file)| file.as_ref().map(|(_, relative)| relative.clone()))
        .collect();
    report(ExtractionEvent::Checked(&names));
    let mut budget = limits.max_total_bytes;
    let mut extracted = Vec::with_capacity(files);
    for (index, file) in plan {
        let Some((name, relative)) = file else {
            // A directory: nothing to write, but its header still counts for overlaps.
            let entry = zip.by_index_raw(index).map_err(ExtractError::NotAZip)?;
            layout.check(index, entry.data_start())?;
            continue;
        };
        let mut entry = zip.by_index(index).map_err(ExtractError::NotAZip)?;
        layout.check(index, entry.data_start())?;
        let compressed = entry.compressed_size().max(1);
        // A routed entry's bytes are already in a file of their own, where the zip crate
        // agrees they are (otherwise the entry is written out as any other).
        let routed_file = routed
            .iter()
            .find(|routed| {
                routed.index == index
                    && entry.compression() == zip::CompressionMethod::Stored
                    && entry.data_start() == Some(routed.data_start)
                    && entry.compressed_size() == routed.size
            })
            .map(|routed| (routed.file.clone(), routed.data_start));
        let (routed_file, routed_start) = match routed_file {
            Some((file, start)) => (Some(file), start),
            None => (None, 0),
        };
        let path = destination.join(&relative);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|source| ExtractError::Write {
                path: parent.to_owned(),
                source,
            })?;
        }
        let mut output = match routed_file {
            Some(_) => None,
            None => Some(
                OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&path)
                    .map_err(|source| ExtractError::Write {
                        path: path.clone(),
                        source,
                    })?,
            ),
        };
        // The guard releases a reader of a written entry should the entry fail.
        let growth = announce_growing(
            &relative,
            entry.size(),
            routed_file.as_deref().map(|file| (file, routed_start)),
            &routed_arrivals,
            &path,
            report,
        )?
        .filter(|_| output.is_some())
        .map(AbandonOnDrop);
        let mut size = 0u64;
        let (_, checksums) = hash_stream(
            &mut entry,
            |chunk| {
                size += chunk.len() as u64;
                if size > budget {
                    return Err(ExtractError::TooLarge {
                        limit: limits.max_total_bytes,
                    });
                }
                if size > RATIO_FLOOR_BYTES && size / compressed > limits.max_ratio {
                    return Err(ExtractError::RatioExceeded {
                        entry: name.clone(),
                        limit: limits.max_ratio,
                    });
                }
                let Some(output) = output.as_mut() else {
                    return Ok(());
                };
                output
                    .write_all(chunk)
                    .map_err(|source| ExtractError::Write {
                        path: path.clone(),
                        source,
                    })?;
                if let Some(AbandonOnDrop(growth)) = &growth {
                    growth.arrived(size - chunk.len() as u64, size);
                }
                Ok(())
            },
            |source| ExtractError::Corrupt {
                entry: name.clone(),
                source,
            },
        )?;
        drop(entry);
        if let Some(AbandonOnDrop(growth)) = &growth {
            growth.finish();
        }
        let placed = match (&output, &routed_file) {
            (Some(output), _) => output.sync_all(),
            // Hashed and checked (CRC included) through the view: now it takes its place.
            (None, Some(file)) => place(file, &path),
            (None, None) => Ok(()),
        };
        placed.map_err(|source| ExtractError::Write {
            path: path.clone(),
            source,
        })?;
        budget -= size;
        let file = ExtractedFile {
            relative_path: relative,
            path,
            size,
            checksums,
        };
        report(ExtractionEvent::Placed(&file));
        extracted.push(file);
    }
    extracted.sort_by(|a, b| a.relative_path.cmp(&b.relative_path));
    Ok(extracted)
}

/// Where each entry's bytes may lie, from the central directory: the test of
/// `ZipArchive::has_overlapping_entries` (no entry's header and data reach into the next
/// entry's header or the central directory), split so that it does not need every local
/// header before the first file is written — which, during a download, would mean waiting for
/// headers spread over the whole archive.
///
/// [`Layout::of`] refuses what the directory alone proves: two entries starting at one offset,
/// or an entry whose header's fixed part and data already reach the next start (an entry's
/// true extent is at least that long). [`Layout::check`] then makes the exact test for one
/// entry once its local header has fixed where its data starts, before its data is read. With
/// distinct starts, "every entry ends by the next start" is exactly the zip crate's test.
struct Layout {
    /// Header starts, by entry index.
    starts: Vec<u64>,
    /// Compressed sizes, by entry index.
    sizes: Vec<u64>,
    /// All header starts, ascending.
    sorted: Vec<u64>,
    directory_start: u64,
}

/// A local header's fixed part: signature and 26 bytes of fields.
const LOCAL_HEADER_FIXED: u64 = 30;

impl Layout {
    fn of<R: io::Read + io::Seek>(zip: &ZipArchive<R>) -> Result<Self, ExtractError> {
        let mut layout = Layout {
            starts: Vec::with_capacity(zip.len()),
            sizes: Vec::with_capacity(zip.len()),
            sorted: Vec::new(),
            directory_start: zip.central_directory_start(),
        };
        for index in 0..zip.len() {
            let entry = zip.by_index_data(index).map_err(ExtractError::NotAZip)?;
            layout.starts.push(entry.header_start());
            layout.sizes.push(entry.compressed_size());
        }
        layout.sorted = layout.starts.clone();
        layout.sorted.sort_unstable();
        let shortest_end = |index: usize| {
            layout.starts[index]
                .saturating_add(LOCAL_HEADER_FIXED)
                .saturating_add(layout.sizes[index])
        };
        let same_start = layout.sorted.windows(2).any(|pair| pair[0] == pair[1]);
        let reaches_next =
            (0..layout.starts.len()).any(|index| shortest_end(index) > layout.limit(index));
        if same_start || reaches_next {
            return Err(ExtractError::Overlapping);
        }
        Ok(layout)
    }

    /// Where entry `index` must end: the next entry's header, or the central directory.
    fn limit(&self, index: usize) -> u64 {
        let start = self.starts[index];
        let next = self.sorted.partition_point(|&other| other <= start);
        self.sorted
            .get(next)
            .map_or(self.directory_start, |&next| next.min(self.directory_start))
    }

    /// The exact test for entry `index`, whose data starts at `data_start` (as its local header
    /// says; the zip crate has just read it).
    fn check(&self, index: usize, data_start: Option<u64>) -> Result<(), ExtractError> {
        let end = data_start.and_then(|start| start.checked_add(self.sizes[index]));
        match end {
            Some(end) if end <= self.limit(index) => Ok(()),
            _ => Err(ExtractError::Overlapping),
        }
    }
}

/// Moves a routed entry's file to its place without writing its bytes again: a hard link (which,
/// like `create_new`, refuses a path that exists), or a rename where links are not supported.
/// Announces a file of at least [`GROWING_MIN_BYTES`] as it begins, so that its upload can
/// start while it grows, and returns the record of its bytes: a routed entry's arrive with the
/// archive's, a written entry's are recorded by the caller as they land. `None` for a smaller
/// file.
fn announce_growing(
    relative: &str,
    declared_size: u64,
    routed: Option<(&Path, u64)>,
    routed_arrivals: &Arc<Arrivals>,
    path: &Path,
    report: &mut dyn FnMut(ExtractionEvent<'_>),
) -> Result<Option<Arc<Arrivals>>, ExtractError> {
    if declared_size < GROWING_MIN_BYTES {
        return Ok(None);
    }
    let (source, arrivals, offset) = match routed {
        Some((file, start)) => (file, routed_arrivals.clone(), start),
        None => (path, Arrivals::with(&[]), 0),
    };
    let file = fs::File::open(source).map_err(|error| ExtractError::Write {
        path: source.to_owned(),
        source: error,
    })?;
    let growing = GrowingFile::new(
        relative.to_owned(),
        declared_size,
        file,
        arrivals.clone(),
        offset,
    );
    report(ExtractionEvent::Begun(&growing));
    Ok(Some(arrivals))
}

fn place(file: &Path, path: &Path) -> io::Result<()> {
    match fs::hard_link(file, path) {
        Ok(()) => fs::remove_file(file),
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => Err(error),
        Err(_) if fs::symlink_metadata(path).is_ok() => Err(io::ErrorKind::AlreadyExists.into()),
        Err(_) => fs::rename(file, path),
    }
}

/// Turns an entry name into a safe relative `/`-separated path, or says why it is unsafe.
pub(super) fn safe_relative_path(name: &str) -> Result<String, ExtractError> {
    let unsafe_path = |reason| ExtractError::UnsafePath {
        entry: name.to_owned(),
        reason,
    };
    if name.contains('\0') {
        return Err(unsafe_path("contains a NUL byte"));
    }
    if name.contains('\\') {
        return Err(unsafe_path("contains a backslash"));
    }
    if name.starts_with('/') {
        return Err(unsafe_path("is absolute"));
    }
    let bytes = name.as_bytes();
    if bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':' {
        return Err(unsafe_path("starts with a drive letter"));
    }
    let mut parts = Vec::new();
    for component in Path::new(name).components() {
        match component {
            Component::Normal(part) => match part.to_str() {
                Some(part) if part.chars().any(char::is_control) => {
                    return Err(unsafe_path("contains control characters"));
                }
                Some(part) => parts.push(part),
                None => return Err(unsafe_path("is not valid UTF-8")),
            },
            Component::CurDir => {}
            Component::ParentDir => return Err(unsafe_path("contains `..`")),
            Component::RootDir | Component::Prefix(_) => return Err(unsafe_path("is absolute")),
        }
    }
    if parts.is_empty() {
        return Err(unsafe_path("is empty"));
    }
    Ok(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;
    use zip::write::SimpleFileOptions;

    fn zip_with(entries: &[(&str, &[u8])]) -> tempfile::NamedTempFile {
        let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, body) in entries {
            writer
                .start_file(*name, SimpleFileOptions::default())
                .unwrap();
            writer.write_all(body).unwrap();
        }
        let bytes = writer.finish().unwrap().into_inner();
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(&bytes).unwrap();
        file
    }

    #[test]
    fn extracts_files_with_their_checksums() {
        let archive = zip_with(&[("fw/image.bin", b"abc"), ("notes.md", b"hello")]);
        let out = tempfile::tempdir().unwrap();
        let files = extract_zip(archive.path(), out.path(), ExtractLimits::default()).unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].relative_path, "fw/image.bin");
        assert_eq!(
            files[0].checksums.sha1,
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(fs::read(out.path().join("notes.md")).unwrap(), b"hello");
    }

    #[test]
    fn reports_the_checked_names_before_each_file_it_places_and_nothing_for_a_refused_archive() {
        let archive = zip_with(&[("notes.md", b"hello"), ("fw/image.bin", b"abc")]);
        let out = tempfile::tempdir().unwrap();
        let mut events = Vec::new();
        let files = extract_zip_reporting(
            archive.path(),
            out.path(),
            ExtractLimits::default(),
            &[],
            Arrivals::whole(),
            &mut |event| {
                events.push(match event {
                    ExtractionEvent::Checked(names) => format!("checked {}", names.join(" ")),
                    ExtractionEvent::Begun(file) => format!("begun {}", file.relative_path),
                    ExtractionEvent::Placed(file) => {
                        assert!(file.path.exists(), "{} is in place", file.relative_path);
                        format!("placed {}", file.relative_path)
                    }
                })
            },
        )
        .unwrap();
        assert_eq!(
            events,
            [
                "checked notes.md fw/image.bin",
                "placed notes.md",
                "placed fw/image.bin"
            ]
        );
        assert_eq!(files.len(), 2);

        let refused = zip_with(&[("good.txt", b"fine"), ("../evil", b"x")]);
        let out = tempfile::tempdir().unwrap();
        let mut told = 0;
        let result = extract_zip_reporting(
            refused.path(),
            out.path(),
            ExtractLimits::default(),
            &[],
            Arrivals::whole(),
            &mut |_| told += 1,
        );
        assert!(matches!(result, Err(ExtractError::UnsafePath { .. })));
        assert_eq!(told, 0);
    }

    #[test]
    fn refuses_unsafe_names_before_writing_anything() {
        for name in ["../evil", "/etc/passwd", "C:/x", "a\\..\\b", "ok/../../x"] {
            let archive = zip_with(&[("good.txt", b"fine"), (name, b"x")]);
            let out = tempfile::tempdir().unwrap();
            let error =
                extract_zip(archive.path(), out.path(), ExtractLimits::default()).unwrap_err();
            assert!(
                matches!(error, ExtractError::UnsafePath { .. }),
                "{name}: {error}"
            );
            assert_eq!(fs::read_dir(out.path()).unwrap().count(), 0, "{name}");
        }
    }

    #[test]
    fn stops_at_the_byte_cap_counted_while_reading() {
        let archive = zip_with(&[("big.bin", &[0u8; 4096])]);
        let out = tempfile::tempdir().unwrap();
        let limits = ExtractLimits {
            max_total_bytes: 1000,
            ..ExtractLimits::default()
        };
        let error = extract_zip(archive.path(), out.path(), limits).unwrap_err();
        assert!(matches!(error, ExtractError::TooLarge { limit: 1000 }));
    }

    #[test]
    fn refuses_non_zips_and_empty_archives() {
        let mut not_zip = tempfile::NamedTempFile::new().unwrap();
        not_zip.write_all(b"just text").unwrap();
        let out = tempfile::tempdir().unwrap();
        assert!(matches!(
            extract_zip(not_zip.path(), out.path(), ExtractLimits::default()),
            Err(ExtractError::NotAZip(_))
        ));
        let empty = zip_with(&[]);
        assert!(matches!(
            extract_zip(empty.path(), out.path(), ExtractLimits::default()),
            Err(ExtractError::Empty)
        ));
    }

    /// `bytes` with the 4-byte field at `field` of central-directory entry `entry` set to `value`.
    fn with_central_field(mut bytes: Vec<u8>, entry: usize, field: usize, value: u32) -> Vec<u8> {
        let central: Vec<usize> = (0..bytes.len() - 4)
            .filter(|&at| bytes[at..at + 4] == [0x50, 0x4b, 0x01, 0x02])
            .collect();
        let at = central[entry] + field;
        bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
        bytes
    }

    #[test]
    fn the_overlap_test_made_entry_by_entry_agrees_with_the_zip_crates() {
        let stored =
            SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
        let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, body) in [
            ("a.bin", &[1u8; 5000][..]),
            ("b.bin", &[2; 3000]),
            ("c.bin", &[3; 10]),
        ] {
            writer.start_file(name, stored).unwrap();
            writer.write_all(body).unwrap();
        }
        writer.add_directory("d/", stored).unwrap();
        let good = writer.finish().unwrap().into_inner();
        let (offset, compressed) = (42, 20);
        let cases = [
            good.clone(),
            // b's header offset is a's: both start at one offset.
            with_central_field(good.clone(), 1, offset, 0),
            // a's data runs 10 bytes into b's header: the directory alone shows it.
            with_central_field(good.clone(), 0, compressed, 5010),
            // One byte: only a's local header (its name's length) shows it.
            with_central_field(good.clone(), 0, compressed, 5001),
            // The directory entry's one byte of data would be the central directory's first.
            with_central_field(good.clone(), 3, compressed, 1),
        ];
        let count = cases.len();
        let mut compared = 0;
        for (n, bytes) in cases.into_iter().enumerate() {
            let mut zip = ZipArchive::new(Cursor::new(bytes)).unwrap();
            // An offset that lands on no local header is unreadable, not overlapping.
            let Ok(theirs) = zip.has_overlapping_entries() else {
                continue;
            };
            compared += 1;
            let ours = match Layout::of(&zip) {
                Err(_) => true,
                Ok(layout) => (0..zip.len()).any(|index| {
                    let entry = zip.by_index_raw(index);
                    let data_start = entry.ok().and_then(|entry| entry.data_start());
                    layout.check(index, data_start).is_err()
                }),
            };
            assert_eq!(ours, theirs, "case {n}");
            assert_eq!(theirs, n != 0, "case {n} is a real test");
        }
        assert_eq!(compared, count);
    }
}
