//! The multivariate HMM, forward filter, walk-forward and live filter RPCs (thin adapters over
//! `rustcore::hmm_mv`), called from the `HftLab` impl in `service.rs`.

use tonic::{Response, Status, Streaming};

use rustcore::hmm_mv;

use crate::convert::{self, status, to_vector};
use crate::pb;
use crate::service::Stream;
use crate::streams::Live;

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

/// The request's EM options: the same fields in RunHmmMv and HmmWalkForward.
macro_rules! mv_config {
    ($r:expr) => {
        hmm_mv::MvConfig::from_options(
            $r.n_states as usize,
            &$r.covariance_type,
            $r.max_iterations as usize,
            $r.tolerance,
            $r.n_restarts.map(|v| v as usize),
            $r.seed,
        )
        .map_err(status)
    };
}

fn progress_msg<T>(it: usize, ll: f64, wrap: impl Fn(pb::HmmProgress) -> T) -> T {
    wrap(pb::HmmProgress {
        iteration: it as u32,
        log_likelihood: ll,
    })
}

pub async fn run_hmm_mv(r: pb::HmmMvRequest) -> Result<Response<Stream<pb::HmmMvUpdate>>, Status> {
    let (obs, n, d) = convert::matrix(&r.observations, "observations")?;
    let mut cfg = mv_config!(r)?;
    cfg.init = match &r.init {
        None => None,
        Some(i) => Some(hmm_mv::MvInit {
            start_prob: convert::vector(&i.start_prob, "init start_prob")?,
            transmat: convert::vector(&i.transmat, "init transmat")?,
            means: convert::vector(&i.means, "init means")?,
            covars: convert::vector(&i.covars, "init covars")?,
        }),
    };
    let stream = crate::streams::progress_stream(
        "RunHmmMv",
        |it, ll| {
            progress_msg(it, ll, |p| pb::HmmMvUpdate {
                kind: Some(pb::hmm_mv_update::Kind::Progress(p)),
            })
        },
        move |hook| hmm_mv::run_hmm_mv(&obs, n, d, &cfg, hook).map_err(status),
        move |h| {
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
        },
    );
    Ok(Response::new(stream))
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
    let bytes = 8 * (obs.len() + model.means.len() + model.covars.len());
    let (f, ll) = crate::service::compute("HmmFilter", bytes, move |_| {
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
    let cfg = mv_config!(r)?;
    let (formation, step) = (r.formation as usize, r.step as usize);
    let stream = crate::streams::progress_stream(
        "HmmWalkForward",
        |w, total| {
            progress_msg(w, total, |p| pb::HmmWalkForwardUpdate {
                kind: Some(pb::hmm_walk_forward_update::Kind::Progress(p)),
            })
        },
        move |hook| {
            let mut windows = |w: usize, total: usize| hook(w, total as f64);
            hmm_mv::walk_forward(&obs, n, d, &cfg, formation, step, &mut windows).map_err(status)
        },
        |w| {
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
        },
    );
    Ok(Response::new(stream))
}

fn cfg_k(w: &hmm_mv::WalkForwardResult) -> usize {
    w.models.first().map(|m| m.n_states).unwrap_or(1)
}

pub async fn stream_hmm_filter(
    inbound: Streaming<pb::HmmStreamRequest>,
) -> Result<Response<Stream<pb::HmmStreamResponse>>, Status> {
    let stream = crate::streams::live_stream::<HmmLive, _>("StreamHmmFilter", inbound);
    Ok(Response::new(stream))
}

/// StreamHmmFilter (see streams::live_stream): the model, then batches of rows.
struct HmmLive;

impl crate::streams::LiveHandler for HmmLive {
    type Request = pb::HmmStreamRequest;
    type Response = pb::HmmStreamResponse;
    type Setup = pb::HmmModel;
    type Data = pb::Matrix;
    type State = hmm_mv::OnlineFilter;
    const ALREADY: &'static str =
        "the stream already has its model: open a new stream to change it";
    const FIRST: &'static str = "the first stream message must be the model";

    fn split(r: pb::HmmStreamRequest) -> Live<pb::HmmModel, pb::Matrix> {
        match r.kind {
            None => Live::Empty,
            Some(pb::hmm_stream_request::Kind::Model(m)) => Live::Setup(m),
            Some(pb::hmm_stream_request::Kind::Observations(m)) => Live::Data(m),
        }
    }

    fn setup(m: pb::HmmModel) -> Result<hmm_mv::OnlineFilter, Status> {
        model_from(&Some(m), "model").and_then(|m| hmm_mv::OnlineFilter::new(m).map_err(status))
    }

    fn batch(f: &mut hmm_mv::OnlineFilter, m: pb::Matrix) -> Result<pb::HmmStreamResponse, Status> {
        process_rows(f, m)
    }

    fn rejected(f: &hmm_mv::OnlineFilter, e: &Status) -> pb::HmmStreamResponse {
        pb::HmmStreamResponse {
            first_row: f.count() as u64,
            log_likelihood: f.log_likelihood(),
            error: e.message().to_string(),
            error_code: e.code() as u32,
            ..Default::default()
        }
    }
}

fn process_rows(
    f: &mut hmm_mv::OnlineFilter,
    m: pb::Matrix,
) -> Result<pb::HmmStreamResponse, Status> {
    let (rows, n, d) = convert::matrix(&Some(m), "observations")?;
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
