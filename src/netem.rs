//! Network emulation for the stand-ins and the benches: token-bucket rate caps on byte streams.
//!
//! On loopback one connection moves gigabytes a second; a cloud link does not (one S3 GET
//! connection moves roughly 80–100 MB/s, a registry link has a total bandwidth). A [`RateCap`]
//! describes one direction of such a link: an optional rate for each connection and an optional
//! total shared by every connection made from the same cap. It wraps a TCP stream or any
//! `AsyncRead`/`AsyncWrite` ([`Capped`]), a body stream of `Bytes` ([`CappedStream`]), or a whole
//! listener ([`CappedListener`], which `axum::serve` accepts as it accepts a `TcpListener`).
//!
//! Pacing lets a connection go into debt and sleep it off before its next read or write, so the
//! average rate is exact although timers tick in milliseconds. Time is tokio's, so a test under
//! `tokio::time::pause()` sees the caps without waiting for them.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};

/// The largest slice written in one go, so a large write is paced in steps and not in one jump.
const MAX_WRITE: usize = 64 * 1024;

/// One token bucket: `rate` bytes a second, holding at most `burst` bytes of credit.
#[derive(Debug)]
pub struct Bucket {
    rate: f64,
    burst: f64,
    state: Mutex<BucketState>,
}

#[derive(Debug)]
struct BucketState {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    /// A bucket for `bytes_per_second`, with 10 ms (at least 16 KiB) of burst credit.
    pub fn new(bytes_per_second: f64) -> Self {
        let rate = bytes_per_second.max(1.0);
        Self {
            rate,
            burst: (rate / 100.0).max(16.0 * 1024.0),
            state: Mutex::new(BucketState {
                tokens: 0.0,
                last: Instant::now(),
            }),
        }
    }

    /// The rate this bucket allows, in bytes a second.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Takes `bytes` from the bucket and says how long the taker must wait to pay off its debt.
    pub fn reserve(&self, bytes: usize) -> Duration {
        // A poisoned lock only means another connection panicked mid-update; the numbers are
        // still numbers, so pacing carries on with them.
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = Instant::now();
        let earned = now.saturating_duration_since(state.last).as_secs_f64() * self.rate;
        state.tokens = (state.tokens + earned).min(self.burst);
        state.last = now;
        state.tokens -= bytes as f64;
        if state.tokens < 0.0 {
            Duration::from_secs_f64(-state.tokens / self.rate)
        } else {
            Duration::ZERO
        }
    }
}

/// One direction of an emulated link: a rate for each connection, a total for all of them, both,
/// or neither (unlimited). Cloning shares the total.
#[derive(Clone, Debug, Default)]
pub struct RateCap {
    per_connection: Option<f64>,
    total: Option<Arc<Bucket>>,
}

impl RateCap {
    /// No cap at all.
    pub fn unlimited() -> Self {
        Self::default()
    }

    /// A cap of `per_connection` bytes a second on each connection and `total` on all of them.
    pub fn new(per_connection: Option<f64>, total: Option<f64>) -> Self {
        Self {
            per_connection,
            total: total.map(|rate| Arc::new(Bucket::new(rate))),
        }
    }

    /// True when nothing is capped.
    pub fn is_unlimited(&self) -> bool {
        self.per_connection.is_none() && self.total.is_none()
    }

    /// The per-connection rate, if any.
    pub fn per_connection(&self) -> Option<f64> {
        self.per_connection
    }

    /// The total rate, if any.
    pub fn total(&self) -> Option<f64> {
        self.total.as_ref().map(|bucket| bucket.rate())
    }

    /// The pacing state of one new connection under this cap.
    pub fn connection(&self) -> ConnectionCap {
        ConnectionCap {
            own: self.per_connection.map(Bucket::new),
            total: self.total.clone(),
        }
    }
}

/// Both directions of an emulated link, as a server sees them.
#[derive(Clone, Debug, Default)]
pub struct Link {
    /// Bytes the server reads (client uploads).
    pub inbound: RateCap,
    /// Bytes the server writes (client downloads).
    pub outbound: RateCap,
}

impl Link {
    /// The same caps in each direction, each direction with its own total.
    pub fn symmetric(per_connection: Option<f64>, total: Option<f64>) -> Self {
        Self {
            inbound: RateCap::new(per_connection, total),
            outbound: RateCap::new(per_connection, total),
        }
    }

    /// True when neither direction is capped.
    pub fn is_unlimited(&self) -> bool {
        self.inbound.is_unlimited() && self.outbound.is_unlimited()
    }
}

/// The pacing state of one connection in one direction.
#[derive(Debug)]
pub struct ConnectionCap {
    own: Option<Bucket>,
    total: Option<Arc<Bucket>>,
}

impl ConnectionCap {
    /// Charges `bytes` to this connection and to the total; the wait is the longer of the two.
    pub fn reserve(&self, bytes: usize) -> Duration {
        let own = self
            .own
            .as_ref()
            .map_or(Duration::ZERO, |bucket| bucket.reserve(bytes));
        let total = self
            .total
            .as_ref()
            .map_or(Duration::ZERO, |bucket| bucket.reserve(bytes));
        own.max(total)
    }

    fn is_unlimited(&self) -> bool {
        self.own.is_none() && self.total.is_none()
    }
}

/// A debt to sleep off before the next operation in one direction.
#[derive(Debug, Default)]
struct Debt {
    sleep: Option<Pin<Box<Sleep>>>,
}

impl Debt {
    fn poll_paid(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(sleep) = self.sleep.as_mut() {
            ready!(sleep.as_mut().poll(cx));
            self.sleep = None;
        }
        Poll::Ready(())
    }

    fn owe(&mut self, wait: Duration) {
        if !wait.is_zero() {
            self.sleep = Some(Box::pin(tokio::time::sleep(wait)));
        }
    }
}

/// An `AsyncRead + AsyncWrite` (a TCP stream, usually) whose reads and writes are paced.
#[derive(Debug)]
pub struct Capped<S> {
    inner: S,
    read_cap: ConnectionCap,
    write_cap: ConnectionCap,
    read_debt: Debt,
    write_debt: Debt,
}

impl<S> Capped<S> {
    /// Wraps `inner`, pacing what is read from it by `read` and what is written to it by `write`.
    pub fn new(inner: S, read: &RateCap, write: &RateCap) -> Self {
        Self {
            inner,
            read_cap: read.connection(),
            write_cap: write.connection(),
            read_debt: Debt::default(),
            write_debt: Debt::default(),
        }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Capped<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.read_debt.poll_paid(cx));
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        let read = buf.filled().len() - before;
        if read > 0 && !this.read_cap.is_unlimited() {
            let wait = this.read_cap.reserve(read);
            this.read_debt.owe(wait);
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Capped<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.write_cap.is_unlimited() {
            return Pin::new(&mut this.inner).poll_write(cx, buf);
        }
        ready!(this.write_debt.poll_paid(cx));
        let slice = &buf[..buf.len().min(MAX_WRITE)];
        let written = ready!(Pin::new(&mut this.inner).poll_write(cx, slice))?;
        if written > 0 {
            let wait = this.write_cap.reserve(written);
            this.write_debt.owe(wait);
        }
        Poll::Ready(Ok(written))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// A stream of byte chunks (a request or response body) paced by one connection's cap.
pub struct CappedStream<S> {
    inner: S,
    cap: ConnectionCap,
    debt: Debt,
}

impl<S> CappedStream<S> {
    /// Paces `inner` as one connection under `cap`.
    pub fn new(inner: S, cap: &RateCap) -> Self {
        Self {
            inner,
            cap: cap.connection(),
            debt: Debt::default(),
        }
    }
}

impl<S, E> Stream for CappedStream<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    type Item = Result<Bytes, E>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        ready!(this.debt.poll_paid(cx));
        let next = ready!(Pin::new(&mut this.inner).poll_next(cx));
        if let Some(Ok(chunk)) = &next
            && !chunk.is_empty()
        {
            let wait = this.cap.reserve(chunk.len());
            this.debt.owe(wait);
        }
        Poll::Ready(next)
    }
}

/// A TCP listener whose accepted connections are paced by a [`Link`]; `axum::serve` takes it in
/// place of the `TcpListener`.
#[derive(Debug)]
pub struct CappedListener {
    inner: TcpListener,
    link: Link,
}

impl CappedListener {
    /// Paces every connection `inner` accepts by `link`.
    pub fn new(inner: TcpListener, link: Link) -> Self {
        Self { inner, link }
    }
}

impl axum::serve::Listener for CappedListener {
    type Io = Capped<TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (stream, address) = axum::serve::Listener::accept(&mut self.inner).await;
        let _ = stream.set_nodelay(true);
        (
            Capped::new(stream, &self.link.inbound, &self.link.outbound),
            address,
        )
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const MIB: usize = 1024 * 1024;

    /// Reads `bytes` from a capped in-memory pipe and says how long (tokio time) it took.
    async fn read_through(cap: &RateCap, bytes: usize) -> Duration {
        let (mut writer, reader) = tokio::io::duplex(256 * 1024);
        let feeder = tokio::spawn(async move {
            let chunk = vec![7u8; 64 * 1024];
            let mut left = bytes;
            while left > 0 {
                let now = left.min(chunk.len());
                writer.write_all(&chunk[..now]).await.expect("write");
                left -= now;
            }
        });
        let mut capped = Capped::new(reader, cap, &RateCap::unlimited());
        let started = Instant::now();
        let mut sink = Vec::with_capacity(bytes);
        capped.read_to_end(&mut sink).await.expect("read");
        feeder.await.expect("feeder");
        assert_eq!(sink.len(), bytes);
        started.elapsed()
    }

    fn assert_near(actual: Duration, expected: f64) {
        let actual = actual.as_secs_f64();
        assert!(
            (actual - expected).abs() <= expected * 0.05 + 0.02,
            "took {actual:.3} s, expected about {expected:.3} s"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_per_connection_cap_paces_one_reader() {
        let cap = RateCap::new(Some(MIB as f64), None);
        assert_near(read_through(&cap, 4 * MIB).await, 4.0);
    }

    #[tokio::test(start_paused = true)]
    async fn each_connection_gets_its_own_rate() {
        let cap = RateCap::new(Some(MIB as f64), None);
        let (first, second) =
            tokio::join!(read_through(&cap, 2 * MIB), read_through(&cap, 2 * MIB));
        assert_near(first, 2.0);
        assert_near(second, 2.0);
    }

    #[tokio::test(start_paused = true)]
    async fn the_total_is_shared_by_every_connection() {
        let cap = RateCap::new(None, Some(MIB as f64));
        let (first, second) =
            tokio::join!(read_through(&cap, 2 * MIB), read_through(&cap, 2 * MIB));
        assert_near(first.max(second), 4.0);
    }

    #[tokio::test(start_paused = true)]
    async fn writes_are_paced_and_a_stream_is_paced() {
        let (writer, mut reader) = tokio::io::duplex(256 * 1024);
        let drain = tokio::spawn(async move {
            let mut sink = Vec::new();
            reader.read_to_end(&mut sink).await.expect("drain");
            sink.len()
        });
        let cap = RateCap::new(Some(MIB as f64), None);
        let mut capped = Capped::new(writer, &RateCap::unlimited(), &cap);
        let started = Instant::now();
        capped.write_all(&vec![1u8; 3 * MIB]).await.expect("write");
        capped.shutdown().await.expect("shutdown");
        drop(capped);
        assert_eq!(drain.await.expect("drain"), 3 * MIB);
        assert_near(started.elapsed(), 3.0);

        use futures::StreamExt;
        let chunks = (0..32).map(|_| Ok::<_, io::Error>(Bytes::from(vec![0u8; 64 * 1024])));
        let mut stream = CappedStream::new(futures::stream::iter(chunks), &cap);
        let started = Instant::now();
        let mut total = 0;
        while let Some(chunk) = stream.next().await {
            total += chunk.expect("chunk").len();
        }
        assert_eq!(total, 2 * MIB);
        assert_near(started.elapsed(), 2.0);
    }

    #[test]
    fn unlimited_caps_say_so() {
        assert!(RateCap::unlimited().is_unlimited());
        assert!(Link::default().is_unlimited());
        let link = Link::symmetric(Some(100e6), Some(1e9));
        assert_eq!(link.inbound.per_connection(), Some(100e6));
        assert_eq!(link.outbound.total(), Some(1e9));
    }
}
