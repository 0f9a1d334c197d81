//! Small servers the scenarios put between the worker and the stand-ins, all on 127.0.0.1:
//! - [`http_proxy`]: forwards every HTTP request (bodies streamed both ways) after an added
//!   delay, or answers `ThrottlingException` above a request rate (the job-API throttle);
//! - [`tcp_rate_limiter`]: a byte pipe limited to a rate in each direction, counting bytes;
//! - [`static_file_server`]: plain `GET` of one file, for the raw-tools baseline.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// What the HTTP proxy does to each request before forwarding it.
#[derive(Clone, Copy, Debug)]
pub enum Policy {
    /// Wait this long, then forward (every request, whatever its size).
    Delay(Duration),
    /// Forward at most `rate` requests per second (bursts of `burst`); answer the rest with
    /// HTTP 400 `{"__type":"ThrottlingException"}` as the CodePipeline API does.
    Throttle { rate: f64, burst: f64 },
    /// Like `Throttle`, but for CodePipeline job-API requests only and with one bucket per
    /// region the request is signed for (the job API throttles per account and region; each
    /// source of scenario 9 is in its own region). Everything else is forwarded at once.
    ThrottlePerRegion { rate: f64, burst: f64 },
}

/// Counters kept by the HTTP proxy.
#[derive(Default)]
pub struct ProxyCounts {
    pub requests: AtomicU64,
    pub throttled: AtomicU64,
    /// Requests per `X-Amz-Target` operation (or method for others): (forwarded, throttled).
    pub by_operation: Mutex<BTreeMap<String, (u64, u64)>>,
    /// `ThrottlePerRegion`: when each region's admitted requests arrived, to see where a run
    /// left a region's rate unused.
    pub admitted_at: Mutex<BTreeMap<String, Vec<std::time::Instant>>>,
}

struct ProxyState {
    upstream: String,
    policy: Policy,
    client: reqwest::Client,
    bucket: Mutex<TokenBucket>,
    /// `ThrottlePerRegion`'s buckets, by region.
    region_buckets: Mutex<BTreeMap<String, TokenBucket>>,
    counts: Arc<ProxyCounts>,
}

/// A running proxy; stops when dropped.
pub struct Served<T> {
    pub url: String,
    pub counts: Arc<T>,
    task: JoinHandle<()>,
}

impl<T> Drop for Served<T> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Classic token bucket for request admission.
struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    fn new(rate: f64, burst: f64) -> Self {
        Self {
            rate,
            burst,
            tokens: burst,
            last: Instant::now(),
        }
    }

    fn try_take(&mut self) -> bool {
        let now = Instant::now();
        self.tokens = (self.tokens + (now - self.last).as_secs_f64() * self.rate).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

pub async fn http_proxy(upstream: &str, policy: Policy) -> Served<ProxyCounts> {
    let (rate, burst) = match policy {
        Policy::Throttle { rate, burst } | Policy::ThrottlePerRegion { rate, burst } => {
            (rate, burst)
        }
        Policy::Delay(_) => (1.0, 1.0),
    };
    let counts = Arc::new(ProxyCounts::default());
    let state = Arc::new(ProxyState {
        upstream: upstream.trim_end_matches('/').to_owned(),
        policy,
        client: reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(64)
            .build()
            .expect("proxy client"),
        bucket: Mutex::new(TokenBucket::new(rate, burst)),
        region_buckets: Mutex::new(BTreeMap::new()),
        counts: counts.clone(),
    });
    let router = axum::Router::new().fallback(forward).with_state(state);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
    let url = format!("http://{}", listener.local_addr().expect("proxy address"));
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Served { url, counts, task }
}

/// The region of a SigV4 `Authorization` header's credential scope
/// (`Credential=AKID/DATE/REGION/SERVICE/aws4_request`).
fn signed_region(request: &Request) -> Option<String> {
    let authorization = request.headers().get("authorization")?.to_str().ok()?;
    let scope = authorization.split("Credential=").nth(1)?;
    scope.split('/').nth(2).map(str::to_owned)
}

async fn forward(State(state): State<Arc<ProxyState>>, request: Request) -> Response {
    let operation = request
        .headers()
        .get("x-amz-target")
        .and_then(|value| value.to_str().ok())
        .map(|target| target.rsplit('.').next().unwrap_or(target).to_owned())
        .unwrap_or_else(|| request.method().to_string());
    state.counts.requests.fetch_add(1, Ordering::Relaxed);
    let region_bucket = match state.policy {
        Policy::ThrottlePerRegion { rate, burst } => signed_region(&request)
            .filter(|_| {
                request
                    .headers()
                    .get("x-amz-target")
                    .is_some_and(|target| target.as_bytes().starts_with(b"CodePipeline_"))
            })
            .map(|region| (region, rate, burst)),
        _ => None,
    };
    match state.policy {
        Policy::Delay(delay) => tokio::time::sleep(delay).await,
        Policy::ThrottlePerRegion { .. } if region_bucket.is_none() => {}
        Policy::Throttle { .. } | Policy::ThrottlePerRegion { .. } => {
            let admitted = match region_bucket {
                Some((region, rate, burst)) => {
                    let admitted = state
                        .region_buckets
                        .lock()
                        .expect("buckets")
                        .entry(region.clone())
                        .or_insert_with(|| TokenBucket::new(rate, burst))
                        .try_take();
                    if admitted {
                        let now = std::time::Instant::now();
                        let mut admitted_at = state.counts.admitted_at.lock().expect("times");
                        admitted_at.entry(region).or_default().push(now);
                    }
                    admitted
                }
                None => state.bucket.lock().expect("bucket").try_take(),
            };
            if !admitted {
                state.counts.throttled.fetch_add(1, Ordering::Relaxed);
                state
                    .counts
                    .by_operation
                    .lock()
                    .expect("counts")
                    .entry(operation)
                    .or_default()
                    .1 += 1;
                return Response::builder()
                    .status(StatusCode::BAD_REQUEST)
                    .header("content-type", "application/x-amz-json-1.1")
                    .header("x-amzn-errortype", "ThrottlingException")
                    .body(Body::from(
                        r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#,
                    ))
                    .expect("throttle response");
            }
        }
    }
    state
        .counts
        .by_operation
        .lock()
        .expect("counts")
        .entry(operation)
        .or_default()
        .0 += 1;

    let (parts, body) = request.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map(|value| value.as_str())
        .unwrap_or("/");
    let has_body = parts.headers.contains_key(TRANSFER_ENCODING)
        || parts
            .headers
            .get(CONTENT_LENGTH)
            .is_some_and(|length| length != HeaderValue::from_static("0"));
    let mut outgoing = state
        .client
        .request(parts.method, format!("{}{path}", state.upstream));
    // Host is kept as sent: the job API checks SigV4 signatures, which cover it.
    for (name, value) in &parts.headers {
        if name != CONNECTION && name != TRANSFER_ENCODING {
            outgoing = outgoing.header(name, value);
        }
    }
    if has_body {
        outgoing = outgoing.body(reqwest::Body::wrap_stream(body.into_data_stream()));
    }
    match outgoing.send().await {
        Ok(answer) => {
            let mut response = Response::builder().status(answer.status());
            for (name, value) in answer.headers() {
                if name != CONNECTION && name != TRANSFER_ENCODING {
                    response = response.header(name, value);
                }
            }
            response
                .body(Body::from_stream(answer.bytes_stream()))
                .expect("proxied response")
        }
        Err(error) => Response::builder()
            .status(StatusCode::BAD_GATEWAY)
            .body(Body::from(format!("bench proxy: {error}")))
            .expect("502 response"),
    }
}

/// Bytes through the TCP limiter, per direction.
#[derive(Default)]
pub struct ByteCounts {
    /// Client (worker) → upstream (registry).
    pub sent: AtomicU64,
    /// Upstream → client.
    pub received: AtomicU64,
    pub connections: AtomicU64,
}

/// A pacing bucket that lets callers go into debt and sleep it off, so the average rate is
/// exact even though timers have millisecond granularity.
struct Pacer {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl Pacer {
    fn reserve(&mut self, bytes: usize) -> Duration {
        let now = Instant::now();
        self.tokens = (self.tokens + (now - self.last).as_secs_f64() * self.rate).min(self.burst);
        self.last = now;
        self.tokens -= bytes as f64;
        if self.tokens < 0.0 {
            Duration::from_secs_f64(-self.tokens / self.rate)
        } else {
            Duration::ZERO
        }
    }
}

/// A TCP pipe to `upstream` limited to `bytes_per_second` in each direction (all connections
/// together, like one network link), counting the bytes it carries.
pub async fn tcp_rate_limiter(upstream: SocketAddr, bytes_per_second: f64) -> Served<ByteCounts> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind limiter");
    let url = format!("http://{}", listener.local_addr().expect("limiter address"));
    let counts = Arc::new(ByteCounts::default());
    let pacer = |_| {
        Arc::new(Mutex::new(Pacer {
            rate: bytes_per_second,
            burst: bytes_per_second / 100.0,
            tokens: 0.0,
            last: Instant::now(),
        }))
    };
    let (up, down) = (pacer(0), pacer(1));
    let task_counts = counts.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            let Ok(server) = TcpStream::connect(upstream).await else {
                continue;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            task_counts.connections.fetch_add(1, Ordering::Relaxed);
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            let counts = task_counts.clone();
            tokio::spawn(pump(
                client_read,
                server_write,
                up.clone(),
                counts.clone(),
                true,
            ));
            tokio::spawn(pump(server_read, client_write, down.clone(), counts, false));
        }
    });
    Served { url, counts, task }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    pacer: Arc<Mutex<Pacer>>,
    counts: Arc<ByteCounts>,
    upstream_direction: bool,
) {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        let wait = pacer.lock().expect("pacer").reserve(read);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            break;
        }
        let counter = if upstream_direction {
            &counts.sent
        } else {
            &counts.received
        };
        counter.fetch_add(read as u64, Ordering::Relaxed);
    }
    let _ = to.shutdown().await;
}

/// Serves `file` at `GET /artifact.zip` (streamed, with Content-Length), nothing else.
pub async fn static_file_server(file: PathBuf) -> Served<()> {
    let router = axum::Router::new().route(
        "/artifact.zip",
        axum::routing::get(move || {
            let file = file.clone();
            async move {
                let handle = tokio::fs::File::open(&file).await.expect("artifact file");
                let length = handle.metadata().await.expect("artifact metadata").len();
                Response::builder()
                    .header(CONTENT_LENGTH, length)
                    .header("content-type", "application/zip")
                    .body(Body::from_stream(
                        tokio_util::io::ReaderStream::with_capacity(handle, 256 * 1024),
                    ))
                    .expect("file response")
            }
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind file server");
    let url = format!(
        "http://{}",
        listener.local_addr().expect("file server address")
    );
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Served {
        url,
        counts: Arc::new(()),
        task,
    }
}
