//! Cross-cutting protection as one tower layer around every gRPC service (tonic `Server::layer`):
//!
//! 1. **Logging and timing** (outermost): every RPC — health, reflection, Echo, GetInfo, stream
//!    errors, rejected calls — gives one JSON log line when its response ends (or the client goes
//!    away): `{"msg":"rpc","rpc":"MeanReversion","code":"Ok","ms":"1.234","req_bytes":"800",…}`.
//!    Successful calls are logged at DEBUG (the desktop app does not flood its log panel with
//!    them), failures at WARN, cancellations at INFO.
//! 2. **Authentication**: when a token is configured, every call except `grpc.health.v1.Health`
//!    must carry `authorization: Bearer <token>` (compared in constant time), else UNAUTHENTICATED.
//!    Health stays open so probes and load balancers work; it reveals only SERVING/NOT_SERVING.
//! 3. **Limits** on the `hftlab.v1.HftLab` calls:
//!    - a concurrency limit (`--max-concurrent` calls computing at once) with a bounded wait queue
//!      (`--max-queue`); a call that finds the queue full is shed at once with UNAVAILABLE
//!      ("grpcd is overloaded…"), which the desktop app treats like a down server (it retries on
//!      PyO3). A queued call waits at most until its deadline.
//!    - a memory semaphore weighted by request size: the gRPC length prefix of the request gives
//!      its size before the body is read; the call reserves `MEMORY_FACTOR` × that size (the
//!      request buffer, its decoded copy and the response) from `--memory-budget-mb`, and waits
//!      (queued) until it is free. A request that could never fit gets RESOURCE_EXHAUSTED naming
//!      the sizes. The per-operation working memory of the algorithms is checked by the core's
//!      own cost model, not here.
//!    - live streams (`StreamMeanReversion`) are long-lived and mostly idle: they do not take a
//!      compute slot but are capped by `--max-streams`.
//!
//! Permits are released when the response body is finished or dropped, so a server-streaming
//! call (RunHmm) holds its slot while it streams.

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::{Buf, Bytes};
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::body::Body;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tonic::{Code, Status};

use crate::log;

/// Memory reserved per request byte: the received buffer, the decoded copy and the response.
pub const MEMORY_FACTOR: u64 = 4;
const HFTLAB_PREFIX: &str = "/hftlab.v1.HftLab/";
const HEALTH_PREFIX: &str = "/grpc.health.v1.Health/";
const STREAM_METHOD: &str = "StreamMeanReversion";
const PREFIX_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

#[derive(Clone, Debug)]
pub struct Limits {
    pub max_concurrent: usize,
    pub max_queue: usize,
    pub max_streams: usize,
    pub memory_budget_bytes: u64,
    pub max_message_bytes: usize,
}

impl Limits {
    /// Defaults: 2 compute slots per CPU (at least 4), 64 waiting, 64 live streams, a quarter of
    /// the physical memory for request buffers.
    pub fn defaults(max_message_bytes: usize) -> Self {
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        Limits {
            max_concurrent: (2 * cpus).max(4),
            max_queue: 64,
            max_streams: 64,
            memory_budget_bytes: (physical_memory() / 4).max(256 << 20),
            max_message_bytes,
        }
    }
}

pub fn physical_memory() -> u64 {
    let pages = unsafe { libc::sysconf(libc::_SC_PHYS_PAGES) };
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if pages > 0 && size > 0 {
        pages as u64 * size as u64
    } else {
        8 << 30
    }
}

fn mib(bytes: u64) -> String {
    if bytes >= 10 << 20 {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
    }
}

/// Constant-time equality (the time does not depend on where the inputs differ).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len().max(b.len());
    let mut diff: u8 = (a.len() != b.len()) as u8;
    for i in 0..n {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0xff);
        diff |= std::hint::black_box(x ^ y);
    }
    diff == 0
}

struct Shared {
    limits: Limits,
    token: Option<Vec<u8>>,
    compute: Arc<Semaphore>,
    streams: Arc<Semaphore>,
    memory: Arc<Semaphore>, // permits are KiB
    memory_budget_kib: u32,
    running: AtomicUsize,
    queued: AtomicUsize,
}

#[derive(Clone)]
pub struct GuardLayer {
    shared: Arc<Shared>,
}

impl GuardLayer {
    pub fn new(limits: Limits, token: Option<Vec<u8>>) -> Self {
        let budget_kib = (limits.memory_budget_bytes / 1024).clamp(1, u32::MAX as u64 / 2) as u32;
        GuardLayer {
            shared: Arc::new(Shared {
                compute: Arc::new(Semaphore::new(limits.max_concurrent)),
                streams: Arc::new(Semaphore::new(limits.max_streams)),
                memory: Arc::new(Semaphore::new(budget_kib as usize)),
                memory_budget_kib: budget_kib,
                limits,
                token,
                running: AtomicUsize::new(0),
                queued: AtomicUsize::new(0),
            }),
        }
    }
}

impl<S> tower_layer::Layer<S> for GuardLayer {
    type Service = Guard<S>;
    fn layer(&self, inner: S) -> Guard<S> {
        Guard {
            inner,
            shared: self.shared.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Guard<S> {
    inner: S,
    shared: Arc<Shared>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

impl<S> tower_service::Service<http::Request<Body>> for Guard<S>
where
    S: tower_service::Service<http::Request<Body>, Response = http::Response<Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        // the ready clone goes into the future; a fresh clone stays here
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let shared = self.shared.clone();
        Box::pin(handle(shared, inner, req))
    }
}

/// What the log line of one RPC says; logged once, when the response body is dropped.
struct Record {
    rpc: String,
    peer: String,
    start: Instant,
    req_bytes: Option<u64>,
    status: Option<Status>,
    body_error: Option<String>,
    ended: bool,
    _permits: Vec<OwnedSemaphorePermit>,
    _running: Option<Counter>,
    /// An HftLab call in progress, for the polling between calls (awake.rs).
    _awake: Option<crate::awake::Call>,
}

impl Drop for Record {
    fn drop(&mut self) {
        let elapsed = self.start.elapsed();
        let (code, message) = match (&self.status, &self.body_error) {
            (Some(s), _) => (format!("{:?}", s.code()), s.message().to_string()),
            (None, Some(e)) => (
                "Unknown".to_string(),
                format!("response stream failed: {e}"),
            ),
            (None, None) if self.ended => ("Ok".to_string(), String::new()),
            (None, None) => (
                "Cancelled".to_string(),
                "the client went away before the response ended".to_string(),
            ),
        };
        let level = match code.as_str() {
            "Ok" => "DEBUG",
            "Cancelled" => "INFO",
            _ => "WARN",
        };
        if !log::enabled(level) {
            return; // --log-level above it: not even formatted
        }
        let ms = format!("{:.3}", elapsed.as_secs_f64() * 1e3);
        let req = self.req_bytes.map(|b| b.to_string()).unwrap_or_default();
        let mut fields: Vec<(&str, &str)> = vec![
            ("rpc", &self.rpc),
            ("code", &code),
            ("ms", &ms),
            ("peer", &self.peer),
        ];
        if !req.is_empty() {
            fields.push(("req_bytes", &req));
        }
        if !message.is_empty() {
            fields.push(("error", &message));
        }
        log::write(level, "rpc", &fields);
    }
}

/// Decrements a counter on drop (queued / running gauges stay right when a future is dropped).
struct Counter(Arc<Shared>, fn(&Shared) -> &AtomicUsize);

impl Counter {
    fn new(shared: &Arc<Shared>, which: fn(&Shared) -> &AtomicUsize) -> Self {
        which(shared).fetch_add(1, Ordering::SeqCst);
        Counter(shared.clone(), which)
    }
}

impl Drop for Counter {
    fn drop(&mut self) {
        (self.1)(&self.0).fetch_sub(1, Ordering::SeqCst);
    }
}

fn peer_of(req: &http::Request<Body>) -> String {
    let ext = req.extensions();
    let addr: Option<SocketAddr> = ext
        .get::<TcpConnectInfo>()
        .and_then(|i| i.remote_addr())
        .or_else(|| {
            ext.get::<TlsConnectInfo<TcpConnectInfo>>()
                .and_then(|i| i.get_ref().remote_addr())
        });
    addr.map(|a| a.to_string()).unwrap_or_default()
}

fn reject(mut rec: Record, status: Status) -> http::Response<Body> {
    let resp: http::Response<Body> = status.clone().into_http();
    rec.status = Some(status);
    rec.ended = true;
    drop(rec); // logs now
    resp
}

async fn handle<S>(
    shared: Arc<Shared>,
    mut inner: S,
    req: http::Request<Body>,
) -> Result<http::Response<Body>, S::Error>
where
    S: tower_service::Service<http::Request<Body>, Response = http::Response<Body>>
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let path = req.uri().path().to_string();
    let rpc = path.rsplit('/').next().unwrap_or("").to_string();
    let rpc = if path.starts_with(HFTLAB_PREFIX) {
        rpc
    } else {
        path.trim_start_matches('/').to_string()
    };
    let mut rec = Record {
        rpc,
        peer: peer_of(&req),
        start: Instant::now(),
        req_bytes: None,
        status: None,
        body_error: None,
        ended: false,
        _permits: Vec::new(),
        _running: None,
        _awake: None,
    };

    // ---- authentication ----
    if let Some(token) = &shared.token {
        if !path.starts_with(HEALTH_PREFIX) {
            let header = req
                .headers()
                .get(http::header::AUTHORIZATION)
                .map(|v| v.as_bytes());
            let presented = header.and_then(|h| {
                let h = std::str::from_utf8(h).ok()?.trim();
                let (scheme, rest) = h.split_once(' ')?;
                scheme
                    .eq_ignore_ascii_case("bearer")
                    .then(|| rest.trim().as_bytes().to_vec())
            });
            let err = match presented {
                None if header.is_none() => Some(
                    "missing bearer token: this grpcd requires 'authorization: Bearer <token>' metadata \
                     (the desktop app sends GRPC_TOKEN or the contents of GRPC_TOKEN_FILE)",
                ),
                None => Some("malformed authorization metadata: expected 'Bearer <token>'"),
                Some(t) if !ct_eq(&t, token) => Some("invalid bearer token: the token does not match this grpcd's --token-file"),
                Some(_) => None,
            };
            if let Some(msg) = err {
                return Ok(reject(rec, Status::unauthenticated(msg)));
            }
        }
    }

    // ---- limits (HftLab calls only; health and reflection are cheap and must answer under load) ----
    let mut req = req;
    let mut segments: Option<Arc<crate::shm::Segments>> = None;
    if path.starts_with(HFTLAB_PREFIX) {
        if rec.rpc != STREAM_METHOD {
            // a live stream is long-lived and mostly idle: it neither stops the polling between
            // calls nor keeps small calls off the I/O thread
            rec._awake = Some(crate::awake::Call::begin());
        }
        if rec.rpc == STREAM_METHOD {
            match shared.streams.clone().try_acquire_owned() {
                Ok(p) => rec._permits.push(p),
                Err(_) => {
                    let msg = format!(
                        "grpcd is overloaded: {} live streams are open (the limit is --max-streams {}); try again later",
                        shared.limits.max_streams, shared.limits.max_streams
                    );
                    return Ok(reject(rec, Status::unavailable(msg)));
                }
            }
        } else {
            let (parts, body) = req.into_parts();
            // The 5-byte prefix comes in the first DATA frame; a client that opens a call and sends
            // nothing does not get to wait for ever (it holds no slot meanwhile).
            let (declared, body) =
                match tokio::time::timeout(PREFIX_TIMEOUT, peek_length(body)).await {
                    Ok(Ok(v)) => v,
                    Ok(Err(status)) => return Ok(reject(rec, status)),
                    Err(_) => {
                        let msg = format!(
                            "the request message did not start within {} s",
                            PREFIX_TIMEOUT.as_secs()
                        );
                        return Ok(reject(rec, Status::invalid_argument(msg)));
                    }
                };
            req = http::Request::from_parts(parts, body);
            rec.req_bytes = declared;
            // Shared-memory arrays (shm.rs): only from a plain loopback connection; the segment's
            // declared size counts like message bytes (limit and memory budget) before it is opened.
            let shm_req = match shm_request(&req, &shared) {
                Ok(r) => r,
                Err(status) => return Ok(reject(rec, status)),
            };
            let shm_bytes = shm_req.as_ref().map_or(0, |r| r.input_len());
            let size = declared
                .unwrap_or(0)
                .saturating_add(shm_bytes)
                .min(shared.limits.max_message_bytes as u64);
            let need = size.saturating_mul(MEMORY_FACTOR);
            let need_kib = need.div_ceil(1024).max(1);
            if need_kib > shared.memory_budget_kib as u64 {
                let msg = format!(
                    "this {} request is {}; handling it needs ~{} of server memory ({}x the request), more than \
                     grpcd's request-memory budget of {} (--memory-budget-mb)",
                    rec.rpc,
                    mib(size),
                    mib(need),
                    MEMORY_FACTOR,
                    mib(shared.memory_budget_kib as u64 * 1024)
                );
                return Ok(reject(rec, Status::resource_exhausted(msg)));
            }
            let need_kib = need_kib as u32;
            // Fast path: a free slot and enough memory now.
            let fast = match shared.compute.clone().try_acquire_owned() {
                Ok(slot) => match shared.memory.clone().try_acquire_many_owned(need_kib) {
                    Ok(mem) => Some((slot, mem)),
                    Err(_) => None,
                },
                Err(_) => None,
            };
            let (slot, mem) = match fast {
                Some(v) => v,
                None => {
                    if shared.queued.load(Ordering::SeqCst) >= shared.limits.max_queue {
                        let msg = format!(
                            "grpcd is overloaded: {} calls running and {} waiting (--max-concurrent {}, --max-queue {}); \
                             try again later",
                            shared.running.load(Ordering::SeqCst),
                            shared.queued.load(Ordering::SeqCst),
                            shared.limits.max_concurrent,
                            shared.limits.max_queue
                        );
                        return Ok(reject(rec, Status::unavailable(msg)));
                    }
                    // Wait in the queue (bounded by the client's deadline: tonic drops this future).
                    let _waiting = Counter::new(&shared, |s| &s.queued);
                    log::write(
                        "DEBUG",
                        "rpc queued",
                        &[
                            ("rpc", &rec.rpc),
                            (
                                "running",
                                &shared.running.load(Ordering::SeqCst).to_string(),
                            ),
                            ("queued", &shared.queued.load(Ordering::SeqCst).to_string()),
                        ],
                    );
                    let slot = shared
                        .compute
                        .clone()
                        .acquire_owned()
                        .await
                        .expect("semaphore never closed");
                    let mem = shared
                        .memory
                        .clone()
                        .acquire_many_owned(need_kib)
                        .await
                        .expect("semaphore never closed");
                    (slot, mem)
                }
            };
            rec._permits.push(slot);
            rec._permits.push(mem);
            rec._running = Some(Counter::new(&shared, |s| &s.running));
            if let Some(r) = shm_req {
                match crate::shm::open(&r, 4 * shared.limits.max_message_bytes) {
                    Ok(seg) => segments = Some(Arc::new(seg)),
                    Err(status) => return Ok(reject(rec, status)),
                }
            }
        }
    }

    let resp = match segments {
        Some(seg) => crate::shm::SEGMENTS.scope(seg, inner.call(req)).await?,
        None => inner.call(req).await?,
    };
    let (parts, body) = resp.into_parts();
    if let Some(s) = Status::from_header_map(&parts.headers) {
        rec.status = Some(s); // trailers-only response (an error, typically)
        if rec.status.as_ref().map(|s| s.code()) == Some(Code::Ok) {
            rec.status = None;
            rec.ended = true;
        }
    }
    Ok(http::Response::from_parts(
        parts,
        Body::new(LoggedBody {
            inner: body,
            rec: Some(rec),
        }),
    ))
}

/// The call's `x-hftlab-shm` request, if any: refused unless grpcd offers shared memory and the
/// peer is on a plain (not TLS) loopback connection; its size must be within the message limit.
fn shm_request(
    req: &http::Request<Body>,
    shared: &Shared,
) -> Result<Option<crate::shm::Request>, Status> {
    let Some(v) = req.headers().get(crate::shm::HEADER) else {
        return Ok(None);
    };
    let local = req
        .extensions()
        .get::<TcpConnectInfo>()
        .and_then(|i| i.remote_addr())
        .is_some_and(|a| a.ip().is_loopback());
    if crate::shm::dir().is_none() || !local {
        return Err(Status::failed_precondition(
            "shared-memory arrays: only offered to a client on this host over a plain loopback \
             connection (never remote or TLS); send the arrays in the message",
        ));
    }
    let r = crate::shm::parse_header(v.to_str().unwrap_or(""))?;
    let limit = shared.limits.max_message_bytes as u64;
    if r.input_len() > limit {
        return Err(Status::resource_exhausted(format!(
            "request message too large: its shared-memory segment is {}, beyond grpcd's {} message limit (--max-message-mb)",
            mib(r.input_len()),
            mib(limit)
        )));
    }
    Ok(Some(r))
}

/// Reads the request body until its first 5 bytes (the gRPC message prefix: a compression flag
/// and the big-endian message length) are in, then gives back a body that replays what was read.
async fn peek_length(mut body: Body) -> Result<(Option<u64>, Body), Status> {
    let mut frames: VecDeque<Frame<Bytes>> = VecDeque::new();
    let mut head: Vec<u8> = Vec::with_capacity(5);
    while head.len() < 5 {
        match body.frame().await {
            None => break,
            Some(Err(e)) => {
                return Err(Status::cancelled(format!(
                    "request body failed: {}",
                    e.message()
                )))
            }
            Some(Ok(frame)) => {
                if let Some(d) = frame.data_ref() {
                    let mut d = d.clone();
                    while head.len() < 5 && d.has_remaining() {
                        head.push(d.get_u8());
                    }
                }
                let trailers = frame.is_trailers();
                frames.push_back(frame);
                if trailers {
                    break;
                }
            }
        }
    }
    let declared =
        (head.len() == 5).then(|| u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as u64);
    Ok((
        declared,
        Body::new(Replay {
            frames,
            inner: body,
        }),
    ))
}

struct Replay {
    frames: VecDeque<Frame<Bytes>>,
    inner: Body,
}

impl HttpBody for Replay {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        if let Some(f) = self.frames.pop_front() {
            return Poll::Ready(Some(Ok(f)));
        }
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.frames.is_empty() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let buffered: u64 = self
            .frames
            .iter()
            .filter_map(|f| f.data_ref())
            .map(|d| d.len() as u64)
            .sum();
        let h = self.inner.size_hint();
        let mut out = SizeHint::new();
        out.set_lower(h.lower() + buffered);
        if let Some(u) = h.upper() {
            out.set_upper(u + buffered);
        }
        out
    }
}

/// The response body, watched for its grpc-status trailer; its drop logs the RPC and frees permits.
struct LoggedBody {
    inner: Body,
    rec: Option<Record>,
}

impl HttpBody for LoggedBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        if let Some(rec) = self.rec.as_mut() {
            match &r {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Some(t) = frame.trailers_ref() {
                        rec.ended = true;
                        if let Some(s) = Status::from_header_map(t) {
                            if s.code() != Code::Ok {
                                rec.status = Some(s);
                            }
                        }
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    rec.body_error = Some(e.message().to_string());
                    rec.status = Some(e.clone());
                }
                Poll::Ready(None) => rec.ended = true,
                Poll::Pending => {}
            }
        }
        let done = matches!(r, Poll::Ready(None) | Poll::Ready(Some(Err(_))));
        if done {
            self.rec = None; // log and free the permits now
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::ct_eq;

    #[test]
    fn constant_time_compare() {
        assert!(ct_eq(b"secret-token", b"secret-token"));
        assert!(!ct_eq(b"secret-token", b"secret-tokeN"));
        assert!(!ct_eq(b"secret-token", b"secret-token-longer"));
        assert!(!ct_eq(b"", b"x"));
        assert!(ct_eq(b"", b""));
        // a shorter input padded with the filler byte must not match
        assert!(!ct_eq(b"ab", b"ab\xff"));
    }
}
