//! The three checksums Artifactory records for every file, computed in one pass.
//!
//! md5 has no hardware help and costs about as much as sha1 and sha256 together (which use the
//! CPU's SHA extensions), so one thread hashing all three is the slowest stage of an extract or
//! an upload. [`ChecksumStream`] moves large streams onto two hashing threads (md5; sha1 +
//! sha256) fed the same shared chunks, so the three digests run side by side with the I/O.

use std::io::{self, Read};

use bytes::{Bytes, BytesMut};
use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};

/// Lower-case hex md5, sha1 and sha256 of a file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Checksums {
    pub md5: String,
    pub sha1: String,
    pub sha256: String,
}

/// Feeds bytes to all three hashes as they stream past, so no file is ever read twice.
#[derive(Default)]
pub struct MultiHasher {
    md5: Md5,
    sha1: Sha1,
    sha256: Sha256,
}

impl MultiHasher {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.md5.update(bytes);
        self.sha1.update(bytes);
        self.sha256.update(bytes);
    }

    pub fn finish(self) -> Checksums {
        Checksums {
            md5: hex::encode(self.md5.finalize()),
            sha1: hex::encode(self.sha1.finalize()),
            sha256: hex::encode(self.sha256.finalize()),
        }
    }
}

/// Streams at least this long are hashed on their own threads; below it, starting two threads
/// costs more than it saves.
const THREADED_FROM_BYTES: u64 = 4 << 20;

/// Chunks in flight per hashing thread: enough to ride out scheduling hiccups, small enough to
/// keep memory flat (a few MiB per stream).
const LANE_DEPTH: usize = 4;

/// The three checksums of a stream of owned chunks. Small streams are hashed inline; once a
/// stream passes [`THREADED_FROM_BYTES`], the digests so far move onto two threads and every
/// further chunk is shared with them rather than copied.
///
/// Feed it from blocking code with [`ChecksumStream::update_blocking`] and
/// [`ChecksumStream::finish_blocking`], from async code with `update` and `finish`; never both.
pub struct ChecksumStream {
    state: StreamState,
    fed: u64,
    /// The OS would not start the hashing threads once; do not ask again for every chunk.
    threads_refused: bool,
}

enum StreamState {
    Inline(Box<MultiHasher>),
    Threaded {
        md5: Lane<Md5>,
        sha: Lane<(Sha1, Sha256)>,
    },
}

impl Default for ChecksumStream {
    fn default() -> Self {
        Self::new()
    }
}

impl ChecksumStream {
    pub fn new() -> Self {
        Self {
            state: StreamState::Inline(Box::default()),
            fed: 0,
            threads_refused: false,
        }
    }

    /// Hashes `chunk`; blocks while the hashing threads are behind. Not for async contexts.
    pub fn update_blocking(&mut self, chunk: Bytes) {
        if let Some(chunk) = self.take_inline(chunk) {
            let StreamState::Threaded { md5, sha } = &mut self.state else {
                unreachable!("take_inline leaves threaded chunks only")
            };
            md5.send_blocking(chunk.clone());
            sha.send_blocking(chunk);
        }
    }

    /// Hashes `chunk`, waiting (without blocking the runtime) while the threads are behind.
    pub async fn update(&mut self, chunk: Bytes) {
        if let Some(chunk) = self.take_inline(chunk) {
            let StreamState::Threaded { md5, sha } = &mut self.state else {
                unreachable!("take_inline leaves threaded chunks only")
            };
            md5.send(chunk.clone()).await;
            sha.send(chunk).await;
        }
    }

    /// Hashes the chunk here while the stream is short; returns it when it is for the threads.
    fn take_inline(&mut self, chunk: Bytes) -> Option<Bytes> {
        self.fed += chunk.len() as u64;
        let StreamState::Inline(hasher) = &mut self.state else {
            return Some(chunk);
        };
        if self.fed >= THREADED_FROM_BYTES && !self.threads_refused {
            match spawn_lanes(hasher) {
                Ok(threaded) => {
                    self.state = threaded;
                    return Some(chunk);
                }
                Err(error) => {
                    // Slower, not wrong: keep hashing here rather than fail the job.
                    tracing::debug!(%error, "could not start checksum threads; hashing inline");
                    self.threads_refused = true;
                }
            }
        }
        hasher.update(&chunk);
        None
    }

    /// The checksums of everything fed; blocks until the threads are done.
    pub fn finish_blocking(self) -> Checksums {
        match self.state {
            StreamState::Inline(hasher) => hasher.finish(),
            StreamState::Threaded { md5, sha } => {
                let md5 = md5.finish_blocking();
                let (sha1, sha256) = sha.finish_blocking();
                MultiHasher { md5, sha1, sha256 }.finish()
            }
        }
    }

    /// The checksums of everything fed.
    pub async fn finish(self) -> Checksums {
        match self.state {
            StreamState::Inline(hasher) => hasher.finish(),
            StreamState::Threaded { md5, sha } => {
                let md5 = md5.finish().await;
                let (sha1, sha256) = sha.finish().await;
                MultiHasher { md5, sha1, sha256 }.finish()
            }
        }
    }
}

/// Reads `reader` to its end once, handing every chunk to `sink` (to check it or write it
/// somewhere) and hashing it on the side. Returns the length and the checksums. Blocking.
pub fn hash_stream<E>(
    reader: &mut impl Read,
    mut sink: impl FnMut(&[u8]) -> Result<(), E>,
    read_error: impl FnOnce(io::Error) -> E,
) -> Result<(u64, Checksums), E> {
    let mut hasher = ChecksumStream::new();
    let mut buffers = ChunkPool::default();
    let mut length = 0u64;
    loop {
        let mut buffer = buffers.take();
        let read = match read_full(reader, &mut buffer) {
            Ok(read) => read,
            Err(error) => return Err(read_error(error)),
        };
        if read == 0 {
            break;
        }
        buffer.truncate(read);
        length += read as u64;
        sink(&buffer)?;
        let chunk = buffer.freeze();
        hasher.update_blocking(chunk.clone());
        buffers.give_back(chunk);
    }
    Ok((length, hasher.finish_blocking()))
}

/// Bytes read per chunk: large enough that per-chunk costs (a write call, two
/// channel hand-overs to the hashing threads) vanish, small enough to keep memory flat.
const CHUNK_BYTES: usize = 256 * 1024;

/// Reads until `buffer` is full or the reader ends, so every chunk but the last is whole
/// (inflate hands out a few KiB per call). Returns the bytes read.
fn read_full(reader: &mut impl Read, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

/// Chunk buffers handed to the hashing threads come back here once they are done with them,
/// so a large stream cycles through a handful of buffers instead of allocating per chunk.
#[derive(Default)]
struct ChunkPool {
    in_flight: std::collections::VecDeque<Bytes>,
}

impl ChunkPool {
    /// More than the hashing threads can hold at once, so the oldest is normally free.
    const MAX_IN_FLIGHT: usize = 16;

    fn take(&mut self) -> BytesMut {
        if let Some(oldest) = self.in_flight.pop_front() {
            match oldest.try_into_mut() {
                Ok(mut buffer) => {
                    buffer.resize(CHUNK_BYTES, 0);
                    return buffer;
                }
                Err(still_shared) => self.in_flight.push_front(still_shared),
            }
        }
        BytesMut::zeroed(CHUNK_BYTES)
    }

    fn give_back(&mut self, chunk: Bytes) {
        if self.in_flight.len() == Self::MAX_IN_FLIGHT {
            self.in_flight.pop_front();
        }
        self.in_flight.push_back(chunk);
    }
}

/// Hands copies of the digests so far to two new threads (copies, so that a refused thread
/// leaves the inline state intact).
fn spawn_lanes(hasher: &MultiHasher) -> io::Result<StreamState> {
    let md5 = Lane::spawn(hasher.md5.clone(), |md5, bytes| md5.update(bytes))?;
    let sha = Lane::spawn(
        (hasher.sha1.clone(), hasher.sha256.clone()),
        |(sha1, sha256), bytes| {
            sha1.update(bytes);
            sha256.update(bytes);
        },
    )?;
    Ok(StreamState::Threaded { md5, sha })
}

/// A hashing thread: owns a digest state, applies every chunk it receives, hands the state
/// back when the sending side closes. Digest updates cannot fail or panic, so the thread ends
/// only when its sender is dropped; the `expect`s below state that invariant.
struct Lane<S> {
    chunks: mpsc::Sender<Bytes>,
    done: oneshot::Receiver<S>,
}

impl<S: Send + 'static> Lane<S> {
    fn spawn(mut state: S, apply: fn(&mut S, &[u8])) -> io::Result<Self> {
        let (chunks, mut receiver) = mpsc::channel::<Bytes>(LANE_DEPTH);
        let (finished, done) = oneshot::channel();
        std::thread::Builder::new()
            .name("checksum".to_owned())
            .spawn(move || {
                while let Some(chunk) = receiver.blocking_recv() {
                    apply(&mut state, &chunk);
                }
                // The receiving side is gone only if the stream was dropped unfinished.
                let _ = finished.send(state);
            })?;
        Ok(Self { chunks, done })
    }

    fn send_blocking(&self, chunk: Bytes) {
        self.chunks
            .blocking_send(chunk)
            .expect("a checksum thread stopped early");
    }

    async fn send(&self, chunk: Bytes) {
        self.chunks
            .send(chunk)
            .await
            .expect("a checksum thread stopped early");
    }

    fn finish_blocking(self) -> S {
        drop(self.chunks);
        self.done
            .blocking_recv()
            .expect("a checksum thread stopped early")
    }

    async fn finish(self) -> S {
        drop(self.chunks);
        self.done.await.expect("a checksum thread stopped early")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests_of_abc() {
        let mut hasher = MultiHasher::new();
        hasher.update(b"a");
        hasher.update(b"bc");
        let checksums = hasher.finish();
        assert_eq!(checksums.md5, "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(checksums.sha1, "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(
            checksums.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    fn reference(bytes: &[u8]) -> Checksums {
        let mut hasher = MultiHasher::new();
        hasher.update(bytes);
        hasher.finish()
    }

    /// A stream long enough to go threaded, in uneven chunks that straddle the switch.
    fn long_stream() -> Vec<u8> {
        (0..(THREADED_FROM_BYTES as usize * 2 + 12_345))
            .map(|index| (index * 31 % 251) as u8)
            .collect()
    }

    #[test]
    fn threaded_stream_matches_one_pass_hashing() {
        let data = long_stream();
        let mut stream = ChecksumStream::new();
        for chunk in data.chunks(1_000_003) {
            stream.update_blocking(Bytes::copy_from_slice(chunk));
        }
        assert!(matches!(stream.state, StreamState::Threaded { .. }));
        assert_eq!(stream.finish_blocking(), reference(&data));
    }

    #[test]
    fn short_stream_stays_inline() {
        let mut stream = ChecksumStream::new();
        stream.update_blocking(Bytes::from_static(b"abc"));
        assert!(matches!(stream.state, StreamState::Inline(_)));
        assert_eq!(stream.finish_blocking(), reference(b"abc"));
    }

    #[tokio::test]
    async fn async_stream_matches_one_pass_hashing() {
        let data = long_stream();
        let mut stream = ChecksumStream::new();
        for chunk in data.chunks(777_777) {
            stream.update(Bytes::copy_from_slice(chunk)).await;
        }
        assert_eq!(stream.finish().await, reference(&data));
    }

    #[test]
    fn chunk_buffers_are_reused_once_released() {
        let mut pool = ChunkPool::default();
        let mut buffer = pool.take();
        let address = buffer.as_ptr();
        buffer.truncate(10);
        pool.give_back(buffer.freeze());
        let again = pool.take();
        assert_eq!(again.as_ptr(), address);
        assert_eq!(again.len(), CHUNK_BYTES);
    }

    #[test]
    fn hash_stream_hands_every_byte_to_the_sink_once() {
        let data = long_stream();
        let mut seen = Vec::new();
        let (length, checksums) = hash_stream(
            &mut data.as_slice(),
            |chunk| {
                seen.extend_from_slice(chunk);
                Ok::<_, io::Error>(())
            },
            |error| error,
        )
        .unwrap();
        assert_eq!(length, data.len() as u64);
        assert_eq!(seen, data);
        assert_eq!(checksums, reference(&data));
    }
}
