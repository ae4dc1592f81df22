//! The gRPC backend's transport for unary and server-streaming calls (issue 16, small calls): a
//! tonic client for `backends/grpc_backend.py`, which encodes the request and decodes the
//! responses itself (fastwire); this only moves bytes over HTTP/2 to grpcd and back.
//!
//! Why: grpcio's blocking unary call costs ~145 µs of client CPU per call on this VM, against
//! ~35 µs here; for a 50-asset portfolio that was most of the gRPC overhead. The protocol is the
//! same gRPC (any gRPC server answers it); the live (bidirectional) streams, TLS and calls with a
//! cancel token stay on grpcio (the Python side chooses).
//!
//! The runtime is tokio's current-thread one, driven by the calling thread inside `block_on`
//! (with the GIL released): no hand-off to an I/O thread on the way out or back. Several Python
//! threads may call at once (tokio lets one of them drive the connection while the others wait
//! for their answers). Between calls a small thread looks at the connection every 100 ms (a few
//! polls of the runtime when no call is running): it answers the server's keep-alive pings and
//! the PING of a graceful shutdown (grpcd waits for that answer before it can exit). A call that
//! fails at the transport level anyway (never answered: the server went away and came back) is
//! sent once more on a fresh connection; the RPCs are pure computations, so this is safe.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes};
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::{MetadataKey, MetadataValue};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

/// The same test as grpcd's polling uses (one file for both).
#[path = "../../../grpcd/src/spare_cpu.rs"]
#[allow(dead_code)]
mod spare_cpu;

create_exception!(
    _rustcore,
    GrpcCallError,
    PyException,
    "A gRPC call failed: args = (status code as int, details, hftlab-error-kind or None)."
);

/// The already-encoded request in, the response's bytes out (no protobuf work here).
#[derive(Clone, Copy, Default)]
struct Raw;

struct RawEncoder;
struct RawDecoder;

impl Encoder for RawEncoder {
    type Item = Bytes;
    type Error = Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Bytes;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        let n = src.remaining();
        Ok(Some(src.copy_to_bytes(n)))
    }
}

impl Codec for Raw {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

/// A plaintext HTTP/2 channel to one grpcd address, for unary calls.
#[pyclass(module = "hft_lab._rustcore", frozen)]
pub struct GrpcUnaryClient {
    inner: Arc<Inner>,
}

struct Inner {
    rt: tokio::runtime::Runtime,
    /// Calls in progress (the idle thread leaves the runtime to them).
    active: AtomicUsize,
    grpc: tonic::client::Grpc<Channel>,
    /// Bumped by `abort`: calls started under an older generation stop with ABORTED.
    generation: AtomicU64,
    aborted: tokio::sync::Notify,
    max_message_bytes: usize,
    /// How long a unary call asked to `poll` watches its socket before sleeping (see `spin`).
    spin: Duration,
}

enum Outcome<T> {
    Done(Result<T, Status>),
    Aborted,
}

#[pymethods]
impl GrpcUnaryClient {
    /// `address`: "host:port" ("[::1]:port" for IPv6); `max_message_bytes`: the limit in both
    /// directions. Connects lazily (at the first call).
    #[new]
    fn new(address: &str, max_message_bytes: usize) -> PyResult<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| PyValueError::new_err(format!("cannot start the gRPC client: {e}")))?;
        let endpoint = Endpoint::from_shared(format!("http://{address}"))
            .map_err(|e| PyValueError::new_err(format!("bad grpcd address {address:?}: {e}")))?
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(5));
        let channel = {
            let _in = rt.enter(); // the channel's worker task is spawned on this runtime
            endpoint.connect_lazy()
        };
        // (a request over the limit is refused in `call`, before anything is sent)
        let grpc = tonic::client::Grpc::new(channel).max_decoding_message_size(max_message_bytes);
        let inner = Arc::new(Inner {
            rt,
            active: AtomicUsize::new(0),
            grpc,
            generation: AtomicU64::new(0),
            aborted: tokio::sync::Notify::new(),
            max_message_bytes,
            spin: spin_window(),
        });
        let weak = Arc::downgrade(&inner);
        std::thread::Builder::new()
            .name("grpc-client-idle".into())
            .spawn(move || idle(weak))
            .map_err(|e| PyValueError::new_err(format!("cannot start the gRPC client: {e}")))?;
        Ok(GrpcUnaryClient { inner })
    }

    /// The current generation (pass it to `call`; `abort` moves it on).
    fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::SeqCst)
    }

    /// Stops every call in progress (and any call given an older generation) with ABORTED.
    fn abort(&self) {
        self.inner.generation.fetch_add(1, Ordering::SeqCst);
        self.inner.aborted.notify_waiters();
    }

    /// One unary call: `path` "/package.Service/Method", `body` the encoded request, `metadata`
    /// (key, value) pairs, `timeout` in seconds (None: none). Returns the response's bytes; a
    /// failure raises GrpcCallError(code, details, error kind or None). `poll`: the answer is
    /// expected within a fraction of a millisecond and the server computes it on one thread, so
    /// the socket is watched for it without sleeping for up to `HFT_LAB_GRPC_SPIN_US` (see
    /// `spin`).
    #[pyo3(signature = (path, body, metadata, timeout, generation, poll=false))]
    #[allow(clippy::too_many_arguments)]
    fn call<'py>(
        &self,
        py: Python<'py>,
        path: &str,
        body: &[u8],
        metadata: Vec<(String, String)>,
        timeout: Option<f64>,
        generation: u64,
        poll: bool,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let max = self.inner.max_message_bytes;
        if body.len() > max {
            // grpcio's words for the same refusal (the Python side maps both alike)
            return Err(GrpcCallError::new_err((
                Code::ResourceExhausted as i32,
                format!("Sent message larger than max ({} vs. {})", body.len(), max),
                None::<String>,
            )));
        }
        let parts = request_parts(path, body, &metadata, timeout)?;
        let inner = &self.inner;
        let out = py.detach(|| {
            inner.busy(|| {
                inner.guarded(
                    parts.deadline(),
                    generation,
                    poll,
                    inner.attempt_twice(&parts, |mut g, req| {
                        let path = parts.path.clone();
                        async move { g.unary(req, path, Raw).await.map(|r| r.into_inner()) }
                    }),
                )
            })
        });
        match out {
            Outcome::Done(Ok(b)) => Ok(PyBytes::new(py, &b)),
            other => Err(call_error(other)),
        }
    }

    /// A server-streaming call (same arguments as `call`); returns a GrpcStream. Errors the
    /// server gives before its first message are raised here.
    #[pyo3(signature = (path, body, metadata, timeout, generation))]
    fn call_stream(
        &self,
        py: Python<'_>,
        path: &str,
        body: &[u8],
        metadata: Vec<(String, String)>,
        timeout: Option<f64>,
        generation: u64,
    ) -> PyResult<GrpcStream> {
        let parts = request_parts(path, body, &metadata, timeout)?;
        let inner = &self.inner;
        let deadline = parts.deadline();
        let out = py.detach(|| {
            inner.busy(|| {
                inner.guarded(
                    deadline,
                    generation,
                    false,
                    inner.attempt_twice(&parts, |mut g, req| {
                        let path = parts.path.clone();
                        async move {
                            g.server_streaming(req, path, Raw)
                                .await
                                .map(|r| r.into_inner())
                        }
                    }),
                )
            })
        });
        match out {
            Outcome::Done(Ok(stream)) => Ok(GrpcStream {
                inner: self.inner.clone(),
                stream: Some(stream),
                deadline,
                generation,
            }),
            other => Err(call_error(other)),
        }
    }
}

/// A call's request, parsed once: sent by [`Inner::attempt_twice`] (twice after a transport
/// failure).
struct Parts {
    path: http::uri::PathAndQuery,
    md: tonic::metadata::MetadataMap,
    body: Bytes,
    timeout: Option<Duration>,
}

impl Parts {
    /// The client's own deadline: the grpc-timeout (which tonic's channel also applies) + 250 ms.
    fn deadline(&self) -> Option<tokio::time::Instant> {
        self.timeout
            .map(|t| tokio::time::Instant::now() + t + Duration::from_millis(250))
    }
}

fn request_parts(
    path: &str,
    body: &[u8],
    metadata: &[(String, String)],
    timeout: Option<f64>,
) -> PyResult<Parts> {
    let path: http::uri::PathAndQuery = path
        .parse()
        .map_err(|e| PyValueError::new_err(format!("bad gRPC method path {path:?}: {e}")))?;
    let mut md = tonic::metadata::MetadataMap::with_capacity(metadata.len());
    for (k, v) in metadata {
        let key = MetadataKey::from_bytes(k.as_bytes())
            .map_err(|_| PyValueError::new_err(format!("bad metadata key {k:?}")))?;
        let value = MetadataValue::try_from(v.as_str())
            .map_err(|_| PyValueError::new_err(format!("bad metadata value for {k:?}")))?;
        md.append(key, value);
    }
    let timeout = match timeout {
        Some(t) if t.is_finite() && t > 0.0 => Some(Duration::from_secs_f64(t.min(1e9))),
        Some(_) => Some(Duration::ZERO),
        None => None,
    };
    Ok(Parts {
        path,
        md,
        body: Bytes::copy_from_slice(body),
        timeout,
    })
}

/// The idle thread (see the module docs): ends when the client is dropped.
fn idle(weak: Weak<Inner>) {
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let Some(inner) = weak.upgrade() else {
            return;
        };
        if inner.active.load(Ordering::SeqCst) == 0 {
            // each yield lets the runtime poll the socket (without waiting) and run the tasks woken
            inner.rt.block_on(async {
                for _ in 0..4 {
                    tokio::task::yield_now().await;
                }
            });
        }
    }
}

/// A server-streaming call in progress (`GrpcUnaryClient.call_stream`): `next()` gives each
/// message's bytes, then None at the end; a failure raises GrpcCallError. Dropping it (or
/// `cancel()`) resets the stream.
#[pyclass(module = "hft_lab._rustcore")]
pub struct GrpcStream {
    inner: Arc<Inner>,
    stream: Option<tonic::Streaming<Bytes>>,
    deadline: Option<tokio::time::Instant>,
    generation: u64,
}

#[pymethods]
impl GrpcStream {
    fn next<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let Some(stream) = self.stream.as_mut() else {
            return Ok(None);
        };
        let (inner, deadline, generation) = (&self.inner, self.deadline, self.generation);
        let out = py
            .detach(|| inner.busy(|| inner.guarded(deadline, generation, false, stream.message())));
        match out {
            Outcome::Done(Ok(Some(b))) => Ok(Some(PyBytes::new(py, &b))),
            Outcome::Done(Ok(None)) => {
                self.stream = None;
                Ok(None)
            }
            other => {
                self.stream = None;
                Err(call_error(other))
            }
        }
    }

    /// Stops the call (the server sees it cancelled).
    fn cancel(&mut self) {
        self.stream = None;
    }
}

/// GrpcCallError for a failed or aborted call.
fn call_error<T>(o: Outcome<T>) -> PyErr {
    match o {
        Outcome::Done(Err(s)) => {
            let kind = s
                .metadata()
                .get("hftlab-error-kind")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            GrpcCallError::new_err((s.code() as i32, s.message().to_owned(), kind))
        }
        _ => GrpcCallError::new_err((
            Code::Aborted as i32,
            "the call was aborted".to_owned(),
            None::<String>,
        )),
    }
}

impl Inner {
    /// Runs `fut` on the runtime until it completes, the deadline passes (DEADLINE_EXCEEDED) or
    /// `abort` is called (Aborted). A transport failure comes out as UNAVAILABLE with its causes
    /// (as grpcio says). `poll`: see `spin` (only for the only call in progress).
    fn guarded<T, F>(
        &self,
        deadline: Option<tokio::time::Instant>,
        generation: u64,
        poll: bool,
        fut: F,
    ) -> Outcome<T>
    where
        F: std::future::Future<Output = Result<T, Status>>,
    {
        self.rt.block_on(async {
            let aborted = self.aborted.notified();
            tokio::pin!(aborted);
            aborted.as_mut().enable();
            if self.generation.load(Ordering::SeqCst) != generation {
                return Outcome::Aborted;
            }
            let until = async {
                match deadline {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending::<()>().await,
                }
            };
            let window = if poll
                && self.active.load(Ordering::SeqCst) == 1
                && spare_cpu::spare_cpu()
            {
                self.spin
            } else {
                Duration::ZERO
            };
            let spin = spin(std::time::Instant::now() + window);
            tokio::select! {
                biased;
                r = fut => Outcome::Done(r.map_err(|s| if transport_failure(&s) { Status::unavailable(describe(&s)) } else { s })),
                _ = until => Outcome::Done(Err(Status::deadline_exceeded("Deadline Exceeded"))),
                _ = aborted => Outcome::Aborted,
                _ = spin => unreachable!("spin never completes"),
            }
        })
    }

    /// `f` with the idle thread kept off the runtime.
    fn busy<T>(&self, f: impl FnOnce() -> T) -> T {
        self.active.fetch_add(1, Ordering::SeqCst);
        let out = f();
        self.active.fetch_sub(1, Ordering::SeqCst);
        out
    }

    /// The request sent by `send` (unary or server-streaming), once more on a fresh connection
    /// if the first attempt failed at the transport level.
    async fn attempt_twice<T, Fut>(
        &self,
        parts: &Parts,
        send: impl Fn(tonic::client::Grpc<Channel>, tonic::Request<Bytes>) -> Fut,
    ) -> Result<T, Status>
    where
        Fut: std::future::Future<Output = Result<T, Status>>,
    {
        let once = || async {
            let mut g = self.grpc.clone();
            let mut req = tonic::Request::from_parts(
                parts.md.clone(),
                tonic::Extensions::default(),
                parts.body.clone(),
            );
            if let Some(t) = parts.timeout {
                req.set_timeout(t);
            }
            g.ready()
                .await
                .map_err(|e| Status::unavailable(format!("cannot connect: {e}")))?;
            send(g, req).await
        };
        match once().await {
            Err(s) if transport_failure(&s) => once().await,
            other => other,
        }
    }
}

/// Default of `HFT_LAB_GRPC_SPIN_US`: how long a small unary call watches its socket.
const SPIN_US: u64 = 500;

/// The polling window: `HFT_LAB_GRPC_SPIN_US` (0 turns it off), default SPIN_US, at most
/// 100 ms. (On a single CPU a call never polls: spare_cpu() is never true there.)
fn spin_window() -> Duration {
    let us = std::env::var("HFT_LAB_GRPC_SPIN_US")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(SPIN_US)
        .min(100_000);
    Duration::from_micros(us)
}

/// The polling window new clients use, in µs (`HFT_LAB_GRPC_SPIN_US` as parsed here; the
/// benchmark prints it).
#[pyfunction]
fn grpc_spin_us() -> u64 {
    spin_window().as_micros() as u64
}

/// Keeps the runtime polling the connection (each yield makes it look at the socket without
/// waiting) until `until`, then never completes (issue 16, small calls).
///
/// Why: this VM's idle CPUs halt (no guest halt-polling), so a thread asleep in epoll_wait is
/// woken by an inter-processor interrupt: ~100 µs of a 50-asset portfolio call's ~350 µs went to
/// the two wake-ups (the server's and ours) and to sending them. A call the server answers
/// within the window is read as soon as it lands; past it, the thread sleeps as before. It
/// costs this thread's CPU for the window, so only small calls computed on one server thread
/// ask for it, only when no other call of this client is in progress, and only while a CPU is
/// spare (spare_cpu.rs: with every CPU busy, polling would wait for another process's time
/// slice; the loop also stops as soon as it sees it was preempted).
async fn spin(until: std::time::Instant) {
    let mut last = std::time::Instant::now();
    while last < until {
        std::thread::yield_now(); // a runnable thread on this CPU (the server's?) goes first
        tokio::task::yield_now().await;
        let now = std::time::Instant::now();
        if now - last > spare_cpu::PREEMPTED {
            break; // preempted: the CPUs are busy, sleep
        }
        last = now;
    }
    std::future::pending::<()>().await
}

/// The status message followed by its chain of causes ("transport error: ...: connection reset").
fn describe(s: &Status) -> String {
    let mut text = s.message().to_owned();
    let mut cause = std::error::Error::source(s);
    while let Some(c) = cause {
        let part = c.to_string();
        if !text.contains(&part) {
            text = format!("{text}: {part}");
        }
        cause = c.source();
    }
    text
}

/// A failure of the connection (the server never answered the call): tonic gives such statuses
/// a source error, while a status the server sent has none.
fn transport_failure(s: &Status) -> bool {
    matches!(s.code(), Code::Unavailable | Code::Unknown | Code::Internal)
        && std::error::Error::source(s).is_some()
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<GrpcUnaryClient>()?;
    m.add_class::<GrpcStream>()?;
    m.add("GrpcCallError", m.py().get_type::<GrpcCallError>())?;
    m.add_function(wrap_pyfunction!(grpc_spin_us, m)?)?;
    Ok(())
}
