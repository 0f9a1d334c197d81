//! Downloading a zip artifact so that its large stored (uncompressed) entries are never copied.
//!
//! The zip's central directory is at its end, so the download starts there: a ranged GET of
//! the tail (and of more of it when the directory is larger, or zip64 records sit elsewhere;
//! the `zip` crate itself parses it, through [`SparseArchive`], a reader that says which bytes
//! it still lacks). A stored entry of at least [`ROUTE_MIN_BYTES`] then has its local header
//! read, which fixes where its data starts; while the rest of the object downloads, the bytes
//! of that data go straight to a file of its own ("routed") instead of into the archive.
//! Extraction reads the object through [`ArchiveView`] — the archive with the routed files
//! laid back over their spans, byte for byte the object S3 holds — so every check (names,
//! symlinks, duplicates, overlaps, caps counted while reading, CRC) runs on exactly the bytes it
//! ran on before; a routed entry is hashed in that pass and its file linked into place instead
//! of written a second time. It does not wait for the download: once the routes are set, it
//! runs alongside the remaining ranges, each read waiting until its bytes have arrived
//! ([`super::arrivals`]), so an entry is checked, inflated and hashed as soon as its bytes
//! are there.
//!
//! Anything unusual in the central directory (a name or entry that extraction would refuse, an
//! unreadable directory, a prefixed archive) routes nothing: the object is then downloaded whole
//! and extraction reports the problem exactly as it always did.

use std::collections::BTreeMap;
use std::fs::File;
use std::future::Future;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tracing::info;
use zip::{CompressionMethod, ZipArchive};

use super::arrivals::Arrivals;
use super::download::{ArtifactStore, DownloadError};
use super::extract::{ExtractLimits, safe_relative_path};
use super::follow::FollowError;
use super::ranged::{CredentialSource, Download, DownloadSettings, Route};
use crate::pipeline::job::Artifact;

/// Stored entries at least this large get a file of their own during the download.
pub const ROUTE_MIN_BYTES: u64 = 256 * 1024;
/// At most this many entries are routed (the largest first); the rest are extracted as usual.
const MAX_ROUTED: usize = 64;
/// The first read: the end-of-central-directory record with the longest comment fits.
const TAIL_BYTES: u64 = 128 * 1024;
/// Reads of a local header: its fixed part plus room for its name and extra field.
const LOCAL_HEADER_READ: u64 = 30 + 4096;
/// Rounds of "parse, learn which bytes are missing, fetch them".
const DIRECTORY_ROUNDS: usize = 8;

/// A downloaded zip and where its routed entries are.
#[derive(Debug, Clone, Default)]
pub struct FetchedZip {
    pub bytes: u64,
    pub routed: Vec<RoutedEntry>,
}

/// A stored entry whose data was downloaded to a file of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutedEntry {
    /// The entry's index in the central directory.
    pub index: usize,
    /// The file holding the entry's data.
    pub file: PathBuf,
    /// Where the data starts in the archive.
    pub data_start: u64,
    pub size: u64,
}

impl ArtifactStore {
    /// Downloads the zip `artifact` to `archive` (see the module docs); routed entries' files
    /// are created next to it. As soon as the routes are known, `follow` is given them and the
    /// record of which bytes have arrived, and the future it returns (extraction, reading the
    /// archive through [`ArchiveView::following`]) runs alongside the rest of the download
    /// ([`super::follow`] decides which failure counts). Returns the object's size and routed
    /// entries, and what `follow` produced.
    #[allow(clippy::too_many_arguments)]
    pub async fn download_zip<T, E, F, Fut>(
        &self,
        artifact: &Artifact,
        credentials: &dyn CredentialSource,
        region: Option<&str>,
        archive: &Path,
        settings: DownloadSettings,
        limits: ExtractLimits,
        follow: F,
    ) -> Result<(FetchedZip, T), FollowError<E>>
    where
        F: FnOnce(&FetchedZip, Arc<Arrivals>) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let write_error = |source| {
            FollowError::Download(DownloadError::Write {
                path: archive.to_owned(),
                source,
            })
        };
        let file = File::create(archive).map_err(write_error)?;
        let download = Download::new(self, artifact, credentials, region, archive, file);
        let downloaded = |fetched: &FetchedZip| {
            info!(
                artifact = %artifact.name,
                bytes = fetched.bytes,
                stored_in_place = fetched.routed.len(),
                "downloaded input artifact"
            );
        };
        let tail = download
            .read_tail(TAIL_BYTES.max(1))
            .await
            .map_err(FollowError::Download)?;
        if tail.start == 0 {
            let fetched = FetchedZip {
                bytes: tail.total,
                routed: Vec::new(),
            };
            downloaded(&fetched);
            let value = follow(&fetched, Arrivals::whole())
                .await
                .map_err(FollowError::Reader)?;
            return Ok((fetched, value));
        }
        let (total, etag) = (tail.total, tail.etag.as_deref());
        let part = settings.part_size.max(1);
        let concurrency = settings.concurrency.max(1);
        let mut present = vec![(tail.start, total)];
        let routed = route_stored_entries(
            &download,
            archive,
            &mut present,
            total,
            etag,
            settings,
            limits,
        )
        .await
        .map_err(FollowError::Download)?;

        // Everything in `present` is where the view reads it (routed spans were copied into
        // their files); from here on each span is reported once written.
        let arrivals = Arrivals::with(&present);
        download.report_to(arrivals.clone());
        let mut spans = Vec::new();
        for (from, to) in missing(&present, total) {
            let mut first = from;
            while first < to {
                let last = (first + part).min(to) - 1;
                spans.push((first, last));
                first = last + 1;
            }
        }
        let fetched = FetchedZip {
            bytes: total,
            routed,
        };
        let rest = async {
            download
                .fetch_spans(spans, total, etag, concurrency)
                .await
                .inspect(|()| downloaded(&fetched))
        };
        let reader = follow(&fetched, arrivals.clone());
        let value = super::follow::follow(rest, arrivals, reader).await?;
        Ok((fetched, value))
    }
}

/// Reads the central directory and, when extraction would not refuse it for what it shows,
/// routes its large stored entries (see the module docs); `present` gains what was read.
async fn route_stored_entries(
    download: &Download<'_>,
    archive: &Path,
    present: &mut Vec<(u64, u64)>,
    total: u64,
    etag: Option<&str>,
    settings: DownloadSettings,
    limits: ExtractLimits,
) -> Result<Vec<RoutedEntry>, DownloadError> {
    let write_error = |source| DownloadError::Write {
        path: archive.to_owned(),
        source,
    };
    let concurrency = settings.concurrency.max(1);
    let mut routed = Vec::new();
    let directory = loop_directory(download, archive, present, total, etag, settings)
        .await?
        .filter(|directory| directory.usable(limits));
    let Some(directory) = directory else {
        return Ok(routed);
    };
    let candidates = directory.candidates();
    let header_span = |candidate: &Candidate| {
        let first = candidate.header_start;
        (first, (first + LOCAL_HEADER_READ).min(total) - 1)
    };
    // The local headers, all at once: they fix where each entry's data starts.
    download
        .fetch_spans(
            candidates.iter().map(header_span).collect(),
            total,
            etag,
            concurrency,
        )
        .await?;
    let mut located = Vec::new();
    for candidate in candidates {
        let (first, last) = header_span(&candidate);
        if let Some(data_start) = local_data_start(archive, first, last)? {
            located.push((candidate, data_start));
        }
    }
    let spans = disjoint_spans(located, directory.central_directory_start);
    let mut routes = Vec::new();
    for (n, (candidate, data_start)) in spans.into_iter().enumerate() {
        let path = routed_path(archive, n);
        let file = File::create(&path).map_err(|source| DownloadError::Write {
            path: path.clone(),
            source,
        })?;
        let end = data_start + candidate.size;
        // Bytes of the span already in the archive (its tail end, read first) move over.
        for &(from, to) in present.iter() {
            let (from, to) = (from.max(data_start), to.min(end));
            if from < to {
                copy_span(archive, &file, from, to, data_start).map_err(write_error)?;
            }
        }
        routes.push(Route {
            start: data_start,
            end,
            file: Arc::new(file),
        });
        routed.push(RoutedEntry {
            index: candidate.index,
            file: path,
            data_start,
            size: candidate.size,
        });
    }
    download.set_routes(routes);
    Ok(routed)
}

/// Parses the central directory through the sparse archive, fetching what it lacks, until it
/// parses; `None` when it cannot be parsed at all (extraction will say why).
async fn loop_directory(
    download: &Download<'_>,
    archive: &Path,
    present: &mut Vec<(u64, u64)>,
    total: u64,
    etag: Option<&str>,
    settings: DownloadSettings,
) -> Result<Option<Directory>, DownloadError> {
    for _ in 0..DIRECTORY_ROUNDS {
        let path = archive.to_owned();
        let regions = present.clone();
        let parsed = tokio::task::spawn_blocking(move || Directory::read(&path, regions))
            .await
            .map_err(|error| DownloadError::Write {
                path: archive.to_owned(),
                source: io::Error::other(error),
            })?;
        match parsed {
            Parsed::Directory(directory) => return Ok(Some(directory)),
            Parsed::Unusable => return Ok(None),
            Parsed::Missing(offset) => {
                let until = present
                    .iter()
                    .map(|&(from, _)| from)
                    .filter(|&from| from > offset)
                    .min()
                    .unwrap_or(total);
                let mut spans = Vec::new();
                let mut first = offset;
                while first < until {
                    let last = (first + settings.part_size.max(1)).min(until) - 1;
                    spans.push((first, last));
                    first = last + 1;
                }
                download
                    .fetch_spans(spans, total, etag, settings.concurrency)
                    .await?;
                present.push((offset, until));
            }
        }
    }
    Ok(None)
}

enum Parsed {
    Directory(Directory),
    Missing(u64),
    Unusable,
}

/// What the central directory says, as far as routing needs it.
#[derive(Debug)]
struct Directory {
    entries: usize,
    duplicate_names: bool,
    prefixed: bool,
    /// Entries extraction refuses outright (symlink, encrypted, unsafe name).
    refused: bool,
    central_directory_start: u64,
    stored: Vec<Candidate>,
}

#[derive(Debug, Clone, Copy)]
struct Candidate {
    index: usize,
    header_start: u64,
    size: u64,
}

impl Directory {
    fn read(path: &Path, present: Vec<(u64, u64)>) -> Parsed {
        let Ok(file) = File::open(path) else {
            return Parsed::Unusable;
        };
        let reader = SparseArchive {
            file,
            present,
            position: 0,
        };
        let zip = match ZipArchive::new(reader) {
            Ok(zip) => zip,
            Err(zip::result::ZipError::Io(error)) => {
                return match error.get_ref().and_then(|e| e.downcast_ref::<Missing>()) {
                    Some(Missing(offset)) => Parsed::Missing(*offset),
                    None => Parsed::Unusable,
                };
            }
            Err(_) => return Parsed::Unusable,
        };
        let mut directory = Directory {
            entries: zip.len(),
            duplicate_names: zip.has_duplicate_names(),
            prefixed: zip.offset() != 0,
            refused: false,
            central_directory_start: zip.central_directory_start(),
            stored: Vec::new(),
        };
        for index in 0..zip.len() {
            let Ok(entry) = zip.by_index_data(index) else {
                directory.refused = true;
                break;
            };
            let name = String::from_utf8_lossy(entry.name_raw()).into_owned();
            if entry.is_symlink() || entry.encrypted() || safe_relative_path(&name).is_err() {
                directory.refused = true;
                break;
            }
            if !entry.is_dir()
                && entry.compression() == CompressionMethod::Stored
                && entry.compressed_size() == entry.size()
                && entry.size() >= ROUTE_MIN_BYTES
            {
                directory.stored.push(Candidate {
                    index,
                    header_start: entry.header_start(),
                    size: entry.size(),
                });
            }
        }
        Parsed::Directory(directory)
    }

    /// Whether routing may go ahead: extraction would not refuse the archive for what the
    /// directory alone shows.
    fn usable(&self, limits: ExtractLimits) -> bool {
        self.entries <= limits.max_entries
            && !self.duplicate_names
            && !self.prefixed
            && !self.refused
            && !self.stored.is_empty()
    }

    /// The largest stored entries, at most [`MAX_ROUTED`].
    fn candidates(&self) -> Vec<Candidate> {
        let mut stored = self.stored.clone();
        stored.sort_by_key(|candidate| std::cmp::Reverse(candidate.size));
        stored.truncate(MAX_ROUTED);
        stored
    }
}

/// Where an entry's data starts, from its local header in the archive (bytes `first..=last`
/// were just fetched); `None` when the header is not one or does not fit what was read.
fn local_data_start(archive: &Path, first: u64, last: u64) -> Result<Option<u64>, DownloadError> {
    let mut header = [0u8; 30];
    let read = (|| -> io::Result<()> {
        let mut file = File::open(archive)?;
        file.seek(SeekFrom::Start(first))?;
        file.read_exact(&mut header)
    })();
    if read.is_err() || last < first + 29 {
        return Ok(None);
    }
    if header[..4] != [0x50, 0x4b, 0x03, 0x04] {
        return Ok(None);
    }
    let name = u64::from(u16::from_le_bytes([header[26], header[27]]));
    let extra = u64::from(u16::from_le_bytes([header[28], header[29]]));
    let data_start = first + 30 + name + extra;
    Ok((data_start <= last + 1).then_some(data_start))
}

/// Keeps spans that end before the central directory and overlap no span kept before them.
fn disjoint_spans(mut located: Vec<(Candidate, u64)>, directory: u64) -> Vec<(Candidate, u64)> {
    located.sort_by_key(|(_, start)| *start);
    let mut kept: Vec<(Candidate, u64)> = Vec::new();
    for (candidate, start) in located {
        let end = start + candidate.size;
        let after_previous = kept
            .last()
            .is_none_or(|(previous, previous_start)| previous_start + previous.size <= start);
        if end <= directory && after_previous {
            kept.push((candidate, start));
        }
    }
    kept
}

fn routed_path(archive: &Path, n: usize) -> PathBuf {
    let mut name = archive.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".stored-{n}"));
    archive.with_file_name(name)
}

/// Copies archive bytes `from..to` into `file` at `from - base`.
fn copy_span(archive: &Path, file: &File, from: u64, to: u64, base: u64) -> io::Result<()> {
    let mut source = File::open(archive)?;
    source.seek(SeekFrom::Start(from))?;
    let mut buffer = vec![0u8; 64 * 1024];
    let mut position = from;
    while position < to {
        let take = buffer.len().min((to - position) as usize);
        source.read_exact(&mut buffer[..take])?;
        std::os::unix::fs::FileExt::write_all_at(file, &buffer[..take], position - base)?;
        position += take as u64;
    }
    Ok(())
}

/// The gaps `0..total` minus `present`, in order.
fn missing(present: &[(u64, u64)], total: u64) -> Vec<(u64, u64)> {
    let mut regions = present.to_vec();
    regions.sort_unstable();
    let mut gaps = Vec::new();
    let mut cursor = 0;
    for (from, to) in regions {
        if from > cursor {
            gaps.push((cursor, from));
        }
        cursor = cursor.max(to);
    }
    if cursor < total {
        gaps.push((cursor, total));
    }
    gaps
}

/// A read of bytes not downloaded yet.
#[derive(Debug)]
struct Missing(u64);

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "byte {} has not been downloaded yet", self.0)
    }
}

impl std::error::Error for Missing {}

/// The archive file while only `present` regions of it have arrived.
struct SparseArchive {
    file: File,
    present: Vec<(u64, u64)>,
    position: u64,
}

impl Read for SparseArchive {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        if buffer.is_empty() {
            return Ok(0);
        }
        let position = self.position;
        let Some(&(_, to)) = self
            .present
            .iter()
            .find(|&&(from, to)| from <= position && position < to)
        else {
            let length = self.file.metadata()?.len();
            if position >= length {
                return Ok(0);
            }
            return Err(io::Error::other(Missing(position)));
        };
        let take = buffer.len().min((to - position) as usize);
        self.file.seek(SeekFrom::Start(position))?;
        let read = self.file.read(&mut buffer[..take])?;
        self.position += read as u64;
        Ok(read)
    }
}

impl Seek for SparseArchive {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let length = self.file.metadata()?.len();
        let position = match to {
            SeekFrom::Start(offset) => Some(offset),
            SeekFrom::End(delta) => length.checked_add_signed(delta),
            SeekFrom::Current(delta) => self.position.checked_add_signed(delta),
        };
        self.position = position
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        Ok(self.position)
    }
}

/// The object as S3 holds it: the archive file with each routed entry's file laid over its
/// span. Extraction reads through this, so every check sees the original bytes; while the
/// download is still running ([`ArchiveView::following`]), a read waits until its first byte
/// has arrived and returns no byte past the span that has.
pub struct ArchiveView {
    archive: File,
    /// Routed spans by start: (end, file).
    routes: BTreeMap<u64, (u64, File)>,
    position: u64,
    length: u64,
    /// The download's record of arrived bytes; `None` once the archive is whole.
    arrivals: Option<Arc<Arrivals>>,
}

impl ArchiveView {
    pub fn open(archive: &Path, routed: &[RoutedEntry]) -> io::Result<Self> {
        let archive = File::open(archive)?;
        let length = archive.metadata()?.len();
        let mut routes = BTreeMap::new();
        for entry in routed {
            routes.insert(
                entry.data_start,
                (entry.data_start + entry.size, File::open(&entry.file)?),
            );
        }
        Ok(Self {
            archive,
            routes,
            position: 0,
            length,
            arrivals: None,
        })
    }

    /// The view of an archive still downloading: reads wait for `arrivals`.
    pub fn following(mut self, arrivals: Arc<Arrivals>) -> Self {
        self.arrivals = Some(arrivals);
        self
    }
}

impl Read for ArchiveView {
    fn read(&mut self, mut buffer: &mut [u8]) -> io::Result<usize> {
        let position = self.position;
        if buffer.is_empty() || position >= self.length {
            return Ok(0);
        }
        if let Some(arrivals) = &self.arrivals {
            let ready = arrivals.ready_from(position)?.min(self.length);
            let take = buffer.len().min((ready - position) as usize);
            buffer = &mut buffer[..take];
        }
        let inside = self
            .routes
            .range(..=position)
            .next_back()
            .filter(|(_, (end, _))| position < *end);
        let read = match inside {
            Some((&start, (end, file))) => {
                let take = buffer.len().min((end - position) as usize);
                std::os::unix::fs::FileExt::read_at(file, &mut buffer[..take], position - start)?
            }
            None => {
                let next = self
                    .routes
                    .range(position..)
                    .next()
                    .map_or(self.length, |(&start, _)| start);
                let take = buffer
                    .len()
                    .min((next.min(self.length) - position) as usize);
                std::os::unix::fs::FileExt::read_at(&self.archive, &mut buffer[..take], position)?
            }
        };
        self.position += read as u64;
        Ok(read)
    }
}

impl Seek for ArchiveView {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let position = match to {
            SeekFrom::Start(offset) => Some(offset),
            SeekFrom::End(delta) => self.length.checked_add_signed(delta),
            SeekFrom::Current(delta) => self.position.checked_add_signed(delta),
        };
        self.position = position
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        Ok(self.position)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_are_what_is_not_present() {
        assert_eq!(missing(&[(90, 100)], 100), vec![(0, 90)]);
        assert_eq!(
            missing(&[(10, 20), (50, 100)], 100),
            vec![(0, 10), (20, 50)]
        );
        assert_eq!(missing(&[(0, 100)], 100), vec![]);
    }

    #[test]
    fn the_view_lays_routed_files_over_the_archive() {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("a.zip");
        let mut bytes = b"0123456789".to_vec();
        bytes[3..7].copy_from_slice(&[0; 4]);
        std::fs::write(&archive, &bytes).unwrap();
        let routed = dir.path().join("a.zip.stored-0");
        std::fs::write(&routed, b"3456").unwrap();
        let mut view = ArchiveView::open(
            &archive,
            &[RoutedEntry {
                index: 0,
                file: routed,
                data_start: 3,
                size: 4,
            }],
        )
        .unwrap();
        let mut all = Vec::new();
        view.read_to_end(&mut all).unwrap();
        assert_eq!(all, b"0123456789");
        view.seek(SeekFrom::Start(5)).unwrap();
        let mut two = [0u8; 2];
        view.read_exact(&mut two).unwrap();
        assert_eq!(&two, b"56");
    }
}

#[cfg(test)]
mod routed_extraction_tests {
    use super::*;
    use crate::artifacts::extract::{ExtractError, extract_zip, extract_zip_routed};
    use std::io::Write;
    use zip::write::SimpleFileOptions;

    /// A zip of a stored image and a deflated note, and the image's data span.
    fn stored_zip(dir: &Path, image: &[u8]) -> (PathBuf, u64) {
        let mut writer = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
        writer
            .start_file("notes.md", SimpleFileOptions::default())
            .unwrap();
        writer.write_all(b"release notes").unwrap();
        writer
            .start_file(
                "fw/image.bin",
                SimpleFileOptions::default().compression_method(CompressionMethod::Stored),
            )
            .unwrap();
        writer.write_all(image).unwrap();
        let bytes = writer.finish().unwrap().into_inner();
        let path = dir.join("artifact.zip");
        std::fs::write(&path, &bytes).unwrap();
        let mut zip = ZipArchive::new(File::open(&path).unwrap()).unwrap();
        let data_start = zip.by_index(1).unwrap().data_start().unwrap();
        (path, data_start)
    }

    /// Moves the image's bytes out of the archive into a file of their own, as the download does.
    fn route(archive: &Path, data_start: u64, size: u64) -> RoutedEntry {
        let file = routed_path(archive, 0);
        let mut bytes = std::fs::read(archive).unwrap();
        let span = data_start as usize..(data_start + size) as usize;
        std::fs::write(&file, &bytes[span.clone()]).unwrap();
        bytes[span].fill(0);
        std::fs::write(archive, &bytes).unwrap();
        RoutedEntry {
            index: 1,
            file,
            data_start,
            size,
        }
    }

    #[test]
    fn a_routed_entry_is_hashed_through_the_view_and_linked_not_copied() {
        use std::os::unix::fs::MetadataExt;
        let image: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let plain = tempfile::tempdir().unwrap();
        let (archive, _) = stored_zip(plain.path(), &image);
        let out = plain.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let expected = extract_zip(&archive, &out, ExtractLimits::default()).unwrap();

        let dir = tempfile::tempdir().unwrap();
        let (archive, data_start) = stored_zip(dir.path(), &image);
        let routed = route(&archive, data_start, image.len() as u64);
        let inode = std::fs::metadata(&routed.file).unwrap().ino();
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let files = extract_zip_routed(
            &archive,
            &out,
            ExtractLimits::default(),
            std::slice::from_ref(&routed),
        )
        .unwrap();
        let strip = |files: &[crate::artifacts::ExtractedFile]| {
            files
                .iter()
                .map(|file| {
                    (
                        file.relative_path.clone(),
                        file.size,
                        file.checksums.clone(),
                    )
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(strip(&files), strip(&expected));
        let placed = out.join("fw/image.bin");
        assert_eq!(std::fs::read(&placed).unwrap(), image);
        assert_eq!(
            std::fs::metadata(&placed).unwrap().ino(),
            inode,
            "linked, not copied"
        );
        assert!(!routed.file.exists());
    }

    #[test]
    fn a_routed_entry_whose_bytes_differ_fails_its_crc_check() {
        let image = vec![7u8; 300_000];
        let dir = tempfile::tempdir().unwrap();
        let (archive, data_start) = stored_zip(dir.path(), &image);
        let routed = route(&archive, data_start, image.len() as u64);
        let mut tampered = std::fs::read(&routed.file).unwrap();
        tampered[1000] ^= 1;
        std::fs::write(&routed.file, &tampered).unwrap();
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let error =
            extract_zip_routed(&archive, &out, ExtractLimits::default(), &[routed]).unwrap_err();
        assert!(matches!(error, ExtractError::Corrupt { .. }), "{error}");
        assert!(!out.join("fw/image.bin").exists());
    }

    #[test]
    fn the_byte_cap_still_counts_a_routed_entry_while_reading() {
        let image = vec![1u8; 300_000];
        let dir = tempfile::tempdir().unwrap();
        let (archive, data_start) = stored_zip(dir.path(), &image);
        let routed = route(&archive, data_start, image.len() as u64);
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let limits = ExtractLimits {
            max_total_bytes: 100_000,
            ..ExtractLimits::default()
        };
        let error = extract_zip_routed(&archive, &out, limits, &[routed]).unwrap_err();
        assert!(matches!(error, ExtractError::TooLarge { .. }), "{error}");
    }

    #[test]
    fn extraction_following_a_download_writes_each_entry_as_its_bytes_arrive() {
        use crate::artifacts::arrivals::Arrivals;
        use crate::artifacts::extract::extract_zip_following;
        let image: Vec<u8> = (0..400_000u32).map(|i| (i * 13 % 251) as u8).collect();
        let dir = tempfile::tempdir().unwrap();
        let (archive, data_start) = stored_zip(dir.path(), &image);
        let length = std::fs::metadata(&archive).unwrap().len();
        let expected = {
            let out = dir.path().join("expected");
            std::fs::create_dir(&out).unwrap();
            extract_zip(&archive, &out, ExtractLimits::default()).unwrap()
        };

        // The tail (read first, as the download does) and everything before the image's data
        // have arrived.
        let tail = length - TAIL_BYTES;
        assert!(tail > data_start + 1000);
        let arrivals = Arrivals::with(&[(0, data_start), (tail, length)]);
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let extraction = {
            let (archive, out, arrivals) = (archive.clone(), out.clone(), arrivals.clone());
            std::thread::spawn(move || {
                extract_zip_following(&archive, &out, ExtractLimits::default(), &[], arrivals)
            })
        };
        let waiting = arrivals.reader_waits(std::time::Duration::from_secs(30));
        assert_eq!(
            waiting,
            Some(data_start),
            "waits for the image's first byte"
        );
        // The note came first in the archive: it is written and synced already.
        assert_eq!(
            std::fs::read(out.join("notes.md")).unwrap(),
            b"release notes"
        );
        // The image's bytes land out of order, the way parallel ranges finish.
        let middle = data_start + 200_000;
        arrivals.arrived(middle, tail);
        arrivals.arrived(data_start, middle);
        let files = extraction.join().unwrap().unwrap();
        let strip = |files: &[crate::artifacts::ExtractedFile]| {
            files
                .iter()
                .map(|file| (file.relative_path.clone(), file.checksums.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(strip(&files), strip(&expected));
        assert_eq!(std::fs::read(out.join("fw/image.bin")).unwrap(), image);
    }

    #[test]
    fn a_corrupt_entry_fails_as_soon_as_its_bytes_arrive_not_when_the_download_ends() {
        use crate::artifacts::arrivals::Arrivals;
        use crate::artifacts::extract::extract_zip_following;
        let image = vec![3u8; 300_000];
        let dir = tempfile::tempdir().unwrap();
        let (archive, data_start) = stored_zip(dir.path(), &image);
        let mut bytes = std::fs::read(&archive).unwrap();
        bytes[data_start as usize + 100] ^= 1;
        std::fs::write(&archive, &bytes).unwrap();
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        // Every byte is there, but the download has not said it is done.
        let arrivals = Arrivals::with(&[(0, bytes.len() as u64)]);
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let result =
                extract_zip_following(&archive, &out, ExtractLimits::default(), &[], arrivals);
            let _ = sender.send(result);
        });
        let result = receiver
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("extraction ends without the download ending");
        assert!(
            matches!(result, Err(ExtractError::Corrupt { ref entry, .. }) if entry == "fw/image.bin"),
            "{result:?}"
        );
    }
}
