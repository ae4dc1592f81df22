//! The multivariate HMM, forward filter, walk-forward and live filter RPCs (thin adapters over
//! `rustcore::hmm_mv`), called from the `HftLab` impl in `service.rs`.

use std::sync::atomic::Ordering;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::{Response, Status, Streaming};

use rustcore::hmm_mv;

use crate::convert::{self, status, to_vector};
use crate::log;
use crate::pb;
use crate::service::{blocking, Stream};

fn model_from(m: &Option<pb::HmmModel>, what: &str) -> Result<hmm_mv::Model, Status> {
    let Some(m) = m else {
        return Err(Status::invalid_argument(format!("{what} is missing")));
    };
    let ct = hmm_mv::CovarianceType::parse(&m.covariance_type).map_err(status)?;
    hmm_mv::Model::new(
        m.n_states as usize,
        m.n_features as usize,
        ct,
        &convert::vector(&m.start_prob, "model start_prob")?,
        &convert::vector(&m.transmat, "model transmat")?,
        &convert::vector(&m.means, "model means")?,
        &convert::vector(&m.covars, "model covars")?,
    )
    .map_err(status)
}

pub fn model_to(m: &hmm_mv::Model) -> pb::HmmModel {
    pb::HmmModel {
        n_states: m.n_states as u32,
        n_features: m.n_features as u32,
        covariance_type: m.covariance_type.name().to_string(),
        start_prob: Some(to_vector(&m.start_prob)),
        transmat: Some(to_vector(&m.transmat)),
        means: Some(to_vector(&m.means)),
        covars: Some(to_vector(&m.covars)),
    }
}

fn progress_msg<T>(it: usize, ll: f64, wrap: impl Fn(pb::HmmProgress) -> T) -> T {
    wrap(pb::HmmProgress {
        iteration: it as u32,
        log_likelihood: ll,
    })
}

pub async fn run_hmm_mv(r: pb::HmmMvRequest) -> Result<Response<Stream<pb::HmmMvUpdate>>, Status> {
    let (obs, n, d) = convert::matrix(&r.observations, "observations")?;
    let ct = hmm_mv::CovarianceType::parse(&r.covariance_type).map_err(status)?;
    let init = match &r.init {
        None => None,
        Some(i) => Some(hmm_mv::MvInit {
            start_prob: convert::vector(&i.start_prob, "init start_prob")?,
            transmat: convert::vector(&i.transmat, "init transmat")?,
            means: convert::vector(&i.means, "init means")?,
            covars: convert::vector(&i.covars, "init covars")?,
        }),
    };
    let cfg = hmm_mv::MvConfig {
        n_states: r.n_states as usize,
        max_iterations: r.max_iterations as usize,
        tolerance: r.tolerance,
        n_restarts: r.n_restarts.map(|v| v as usize),
        seed: r.seed,
        covariance_type: ct,
        init,
    };
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(async move {
        let progress_tx = tx.clone();
        let work = blocking("RunHmmMv", move |flag| {
            let mut hook = |it: usize, ll: f64| {
                !flag.load(Ordering::Relaxed)
                    && progress_tx
                        .blocking_send(Ok(progress_msg(it, ll, |p| pb::HmmMvUpdate {
                            kind: Some(pb::hmm_mv_update::Kind::Progress(p)),
                        })))
                        .is_ok()
            };
            hmm_mv::run_hmm_mv(&obs, n, d, &cfg, &mut hook).map_err(status)
        });
        let out = tokio::select! {
            out = work => out,
            _ = tx.closed() => return,
        };
        let msg = out.map(|h| {
            let k = h.model.n_states;
            pb::HmmMvUpdate {
                kind: Some(pb::hmm_mv_update::Kind::Result(pb::HmmMvResponse {
                    model: Some(model_to(&h.model)),
                    log_likelihood: h.log_likelihood,
                    log_likelihood_history: Some(to_vector(&h.log_likelihood_history)),
                    iterations: h.iterations as u32,
                    converged: h.converged,
                    posteriors: Some(convert::to_matrix(&h.posteriors, n, k)),
                    filtered: Some(convert::to_matrix(&h.filtered, n, k)),
                    viterbi_path: h.viterbi_path.iter().map(|&s| s as u32).collect(),
                    n_parameters: h.n_parameters as u32,
                    aic: h.aic,
                    bic: h.bic,
                })),
            }
        });
        let _ = tx.send(msg).await;
    });
    Ok(Response::new(ReceiverStream::new(rx)))
}

fn check_features(model: &hmm_mv::Model, d: usize) -> Result<(), Status> {
    if model.n_features != d {
        return Err(Status::invalid_argument(format!(
            "observations have {d} features but the model has {}",
            model.n_features
        )));
    }
    Ok(())
}

pub async fn hmm_filter(
    r: pb::HmmFilterRequest,
) -> Result<Response<pb::HmmFilterResponse>, Status> {
    let (obs, n, d) = convert::matrix(&r.observations, "observations")?;
    let model = model_from(&r.model, "model")?;
    check_features(&model, d)?;
    let k = model.n_states;
    let (f, ll) = blocking("HmmFilter", move |_| {
        hmm_mv::filter(&model, &obs, n).map_err(status)
    })
    .await?;
    Ok(Response::new(pb::HmmFilterResponse {
        filtered: Some(convert::to_matrix(&f, n, k)),
        log_likelihood: ll,
    }))
}

pub async fn hmm_walk_forward(
    r: pb::HmmWalkForwardRequest,
) -> Result<Response<Stream<pb::HmmWalkForwardUpdate>>, Status> {
    let (obs, n, d) = convert::matrix(&r.observations, "observations")?;
    let ct = hmm_mv::CovarianceType::parse(&r.covariance_type).map_err(status)?;
    let cfg = hmm_mv::MvConfig {
        n_states: r.n_states as usize,
        max_iterations: r.max_iterations as usize,
        tolerance: r.tolerance,
        n_restarts: r.n_restarts.map(|v| v as usize),
        seed: r.seed,
        covariance_type: ct,
        init: None,
    };
    let (formation, step) = (r.formation as usize, r.step as usize);
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(async move {
        let progress_tx = tx.clone();
        let work = blocking("HmmWalkForward", move |flag| {
            let mut hook = |w: usize, total: usize| {
                !flag.load(Ordering::Relaxed)
                    && progress_tx
                        .blocking_send(Ok(progress_msg(w, total as f64, |p| {
                            pb::HmmWalkForwardUpdate {
                                kind: Some(pb::hmm_walk_forward_update::Kind::Progress(p)),
                            }
                        })))
                        .is_ok()
            };
            hmm_mv::walk_forward(&obs, n, d, &cfg, formation, step, &mut hook).map_err(status)
        });
        let out = tokio::select! {
            out = work => out,
            _ = tx.closed() => return,
        };
        let msg = out.map(|w| {
            let k = cfg_k(&w);
            pb::HmmWalkForwardUpdate {
                kind: Some(pb::hmm_walk_forward_update::Kind::Result(
                    pb::HmmWalkForwardResponse {
                        start_index: w.start_index as u32,
                        filtered: Some(convert::to_matrix(&w.filtered, w.regimes.len(), k)),
                        regimes: w.regimes.iter().map(|&s| s as u32).collect(),
                        window_starts: w.window_starts.iter().map(|&s| s as u32).collect(),
                        window_log_likelihoods: Some(to_vector(&w.window_log_likelihoods)),
                        models: w.models.iter().map(model_to).collect(),
                    },
                )),
            }
        });
        let _ = tx.send(msg).await;
    });
    Ok(Response::new(ReceiverStream::new(rx)))
}

fn cfg_k(w: &hmm_mv::WalkForwardResult) -> usize {
    w.models.first().map(|m| m.n_states).unwrap_or(1)
}

pub async fn stream_hmm_filter(
    mut inbound: Streaming<pb::HmmStreamRequest>,
) -> Result<Response<Stream<pb::HmmStreamResponse>>, Status> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        let mut state: Option<hmm_mv::OnlineFilter> = None;
        while let Some(msg) = inbound.next().await {
            // A transport error, an empty message, a bad or repeated model, or rows before the
            // model end the call; a rejected batch does not (in-band error, state unchanged).
            let reply = match msg {
                Err(e) => Err(e),
                Ok(pb::HmmStreamRequest { kind: None }) => {
                    Err(Status::invalid_argument("empty stream message"))
                }
                Ok(pb::HmmStreamRequest {
                    kind: Some(pb::hmm_stream_request::Kind::Model(m)),
                }) => {
                    if state.is_some() {
                        Err(Status::invalid_argument(
                            "the stream already has its model: open a new stream to change it",
                        ))
                    } else {
                        match model_from(&Some(m), "model")
                            .and_then(|m| hmm_mv::OnlineFilter::new(m).map_err(status))
                        {
                            Ok(f) => {
                                state = Some(f);
                                Ok(pb::HmmStreamResponse::default())
                            }
                            Err(e) => Err(e),
                        }
                    }
                }
                Ok(pb::HmmStreamRequest {
                    kind: Some(pb::hmm_stream_request::Kind::Observations(m)),
                }) => match state.as_mut() {
                    None => Err(Status::invalid_argument(
                        "the first stream message must be the model",
                    )),
                    Some(f) => Ok(
                        process_rows(f, &m).unwrap_or_else(|e| pb::HmmStreamResponse {
                            first_row: f.count() as u64,
                            log_likelihood: f.log_likelihood(),
                            error: e.message().to_string(),
                            error_code: e.code() as u32,
                            ..Default::default()
                        }),
                    ),
                },
            };
            let fatal = reply.is_err();
            if let Err(e) = &reply {
                log::warn(
                    "stream failed",
                    &[
                        ("rpc", "StreamHmmFilter"),
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
    Ok(Response::new(ReceiverStream::new(rx)))
}

fn process_rows(
    f: &mut hmm_mv::OnlineFilter,
    m: &pb::Matrix,
) -> Result<pb::HmmStreamResponse, Status> {
    let (rows, n, d) = convert::matrix(&Some(m.clone()), "observations")?;
    check_features(f.model(), d)?;
    let k = f.model().n_states;
    let first = f.count() as u64;
    let _budget = rustcore::limits::reserve(&rustcore::limits::hmm_filter(n, k)).map_err(status)?;
    let mut out = Vec::new();
    f.update(&rows, &mut out).map_err(status)?;
    Ok(pb::HmmStreamResponse {
        filtered: Some(convert::to_matrix(&out, n, k)),
        first_row: first,
        log_likelihood: f.log_likelihood(),
        ..Default::default()
    })
}
