//! The two shapes of streaming RPC, written once (issue 15):
//!
//! - `progress_stream`: a server stream of progress updates then exactly one result (RunHmm,
//!   RunHmmMv, HmmWalkForward). The work runs on the blocking pool (`service::blocking`); each
//!   progress point goes out as it happens. A client that cancels, disconnects or passes its
//!   deadline drops the stream: `tx.closed()` fires, the work future is dropped, its guard sets the
//!   cancel flag, and the core's deep loops stop within milliseconds.
//! - `live_stream`: a bidirectional live stream (StreamMeanReversion, StreamHmmFilter): a setup
//!   message first (acknowledged with an empty response), then batches answered in order. A
//!   transport/decode error, an empty message, a bad or repeated setup, or data before the setup
//!   end the call; a rejected batch does not: its error goes back in-band and the state is
//!   unchanged, so the next good batch works (as on PyO3).

use std::sync::atomic::Ordering;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::Status;

use crate::log;
use crate::service::{blocking, Stream};

/// Runs `work(hook)` on the blocking pool; `hook(i, v)` sends `progress(i, v)` (false once the
/// call is cancelled or the client gone), and the work's outcome goes out through `result`.
pub(crate) fn progress_stream<U, T, P, W, R>(
    rpc: &'static str,
    progress: P,
    work: W,
    result: R,
) -> Stream<U>
where
    U: Send + 'static,
    T: Send + 'static,
    P: Fn(usize, f64) -> U + Send + 'static,
    W: FnOnce(&mut dyn FnMut(usize, f64) -> bool) -> Result<T, Status> + Send + 'static,
    R: FnOnce(T) -> U + Send + 'static,
{
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(async move {
        let progress_tx = tx.clone();
        let work = blocking(rpc, move |flag| {
            let mut hook = |i: usize, v: f64| {
                !flag.load(Ordering::Relaxed)
                    && progress_tx.blocking_send(Ok(progress(i, v))).is_ok()
            };
            work(&mut hook)
        });
        let out = tokio::select! {
            out = work => out,
            _ = tx.closed() => return,
        };
        let _ = tx.send(out.map(result)).await;
    });
    ReceiverStream::new(rx)
}

/// One message of a live stream, as `live_stream` sees it.
pub(crate) enum Live<S, D> {
    Empty,
    Setup(S),
    Data(D),
}

/// What a live stream does with its messages.
pub(crate) trait LiveHandler: Send + 'static {
    type Request: Send + 'static;
    type Response: Default + Send + 'static;
    type Setup;
    type Data;
    type State: Send + 'static;
    /// "the stream is already configured: …" (a second setup message)
    const ALREADY: &'static str;
    /// "the first stream message must be …" (data before the setup)
    const FIRST: &'static str;

    fn split(req: Self::Request) -> Live<Self::Setup, Self::Data>;
    fn setup(s: Self::Setup) -> Result<Self::State, Status>;
    fn batch(state: &mut Self::State, d: Self::Data) -> Result<Self::Response, Status>;
    /// The in-band reply to a rejected batch (the state is unchanged).
    fn rejected(state: &Self::State, e: &Status) -> Self::Response;
}

pub(crate) fn live_stream<H, S>(rpc: &'static str, mut inbound: S) -> Stream<H::Response>
where
    H: LiveHandler,
    S: tokio_stream::Stream<Item = Result<H::Request, Status>> + Unpin + Send + 'static,
{
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        let mut state: Option<H::State> = None;
        while let Some(msg) = inbound.next().await {
            let reply = match msg.map(H::split) {
                Err(e) => Err(e),
                Ok(Live::Empty) => Err(Status::invalid_argument("empty stream message")),
                Ok(Live::Setup(_)) if state.is_some() => Err(Status::invalid_argument(H::ALREADY)),
                Ok(Live::Setup(s)) => H::setup(s).map(|st| {
                    state = Some(st);
                    H::Response::default() // the acknowledgement
                }),
                Ok(Live::Data(d)) => match state.as_mut() {
                    None => Err(Status::invalid_argument(H::FIRST)),
                    Some(st) => Ok(H::batch(st, d).unwrap_or_else(|e| {
                        log::warn(
                            "stream batch rejected",
                            &[
                                ("rpc", rpc),
                                ("code", &format!("{:?}", e.code())),
                                ("error", e.message()),
                            ],
                        );
                        H::rejected(st, &e)
                    })),
                },
            };
            let fatal = reply.is_err();
            if let Err(e) = &reply {
                log::warn(
                    "stream failed",
                    &[
                        ("rpc", rpc),
                        ("code", &format!("{:?}", e.code())),
                        ("error", e.message()),
                    ],
                );
            }
            if tx.send(reply).await.is_err() || fatal {
                break;
            }
        }
    });
    ReceiverStream::new(rx)
}
