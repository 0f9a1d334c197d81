//! A large file that extraction is still producing, readable as its bytes arrive.
//!
//! A stored entry's bytes land in a file of their own while the download runs; a deflated
//! entry's are written as they are inflated. Either way the first bytes are on disk long before
//! the last, so an upload may start sending them ([`crate::publish::streamed`]). What it reads
//! here is *unchecked*: the entry's CRC, the caps and its overlap test are known only once
//! extraction reports the file placed. A reader must not let anything become visible before
//! that (the streamed upload holds back its last chunk until then).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use super::arrivals::Arrivals;

/// Entries whose central directory declares at least this many bytes are announced as they
/// begin ([`super::ExtractionEvent::Begun`]); below it, starting early gains little.
pub const GROWING_MIN_BYTES: u64 = 16 * 1024 * 1024;

/// A file being extracted: where its bytes are and which of them have arrived.
#[derive(Debug, Clone)]
pub struct GrowingFile {
    /// Path inside the artifact, `/`-separated.
    pub relative_path: String,
    /// The size the central directory declares; extraction checks it as it reads.
    pub declared_size: u64,
    /// Opened before extraction moves the file into place, so the handle outlives the move.
    file: Arc<File>,
    arrivals: Arc<Arrivals>,
    /// Where the file's first byte is in `arrivals`' coordinates (a routed entry's arrivals are
    /// the archive's).
    offset: u64,
}

impl GrowingFile {
    pub(super) fn new(
        relative_path: String,
        declared_size: u64,
        file: File,
        arrivals: Arc<Arrivals>,
        offset: u64,
    ) -> Self {
        Self {
            relative_path,
            declared_size,
            file: Arc::new(file),
            arrivals,
            offset,
        }
    }

    /// Reads bytes from `position` into `buffer`, waiting until the first of them has arrived;
    /// returns 0 at the declared end, and also when the file was finished short of it (the
    /// caller treats that as the end it is). Blocks: call it from a blocking thread.
    pub fn read_at(&self, position: u64, buffer: &mut [u8]) -> io::Result<usize> {
        if buffer.is_empty() || position >= self.declared_size {
            return Ok(0);
        }
        let ready = self.arrivals.ready_from(self.offset + position)?;
        let available = ready
            .saturating_sub(self.offset + position)
            .min(self.declared_size - position);
        let take = buffer.len().min(available as usize);
        self.file.read_at(&mut buffer[..take], position)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::time::Duration;

    #[test]
    fn a_read_waits_for_its_bytes_and_stops_at_the_declared_end() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(b"ABCDEFGHIJ").unwrap();
        // The file's bytes are the archive's from offset 6 on; 10 are declared.
        let arrivals = Arrivals::with(&[(0, 8)]);
        let growing = GrowingFile::new(
            "image.bin".into(),
            10,
            File::open(file.path()).unwrap(),
            arrivals.clone(),
            6,
        );
        let mut buffer = [0u8; 16];
        // Only two of its bytes have arrived.
        let read = growing.read_at(0, &mut buffer).unwrap();
        assert_eq!(&buffer[..read], b"AB");
        let reader = {
            let growing = growing.clone();
            std::thread::spawn(move || {
                let mut buffer = [0u8; 16];
                let read = growing.read_at(2, &mut buffer).unwrap();
                buffer[..read].to_vec()
            })
        };
        assert_eq!(arrivals.reader_waits(Duration::from_secs(10)), Some(8));
        arrivals.arrived(8, 100);
        assert_eq!(reader.join().unwrap(), b"CDEFGHIJ");
        assert_eq!(growing.read_at(10, &mut buffer).unwrap(), 0);
    }
}
