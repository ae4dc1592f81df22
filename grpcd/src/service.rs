//! The HftLab service: each RPC converts its request, runs the core on the blocking pool (so the
//! async runtime keeps serving), and converts the result. A panic in the core becomes INTERNAL and
//! the server keeps serving. A client that cancels or whose deadline passes drops the handler
//! future; its drop guard sets the cancel flag the core polls, so the work stops too.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use rustcore::backtest as bt;
use rustcore::hmm;
use rustcore::ou;
use rustcore::portfolio;
use rustcore::rolling::{self, MeanReversionState, SignalParams};
use rustcore::sparse;

use crate::convert::{self, i8_bytes, status, to_vector};
use crate::log;
use crate::pb::{self, hft_lab_server::HftLab};

pub struct Service {
    max_message_bytes: usize,
    test_hooks: bool,
}

impl Service {
    pub fn new(max_message_bytes: usize) -> Self {
        let (budget, source) = crate::limits::ensure_configured();
        log::info(
            "memory budget",
            &[
                ("bytes", &budget.to_string()),
                ("human", &rustcore::limits::fmt_bytes(budget)),
                ("source", source),
            ],
        );
        Service {
            max_message_bytes,
            test_hooks: std::env::var_os("GRPCD_TEST_HOOKS").is_some(),
        }
    }
}

/// Sets the cancel flag when the handler future is dropped (client cancel, deadline, disconnect).
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Runs `f` on the blocking pool with a cancel flag; panics become INTERNAL.
pub(crate) async fn blocking<T, F>(rpc: &'static str, f: F) -> Result<T, Status>
where
    T: Send + 'static,
    F: FnOnce(Arc<AtomicBool>) -> Result<T, Status> + Send + 'static,
{
    let flag = Arc::new(AtomicBool::new(false));
    let _guard = CancelOnDrop(flag.clone());
    // The flag is also this thread's cancel flag for the core's deep loops (limits::poll).
    let scoped = flag.clone();
    let segments = crate::shm::current(); // the call's shared-memory segments, if any
    let out = tokio::task::spawn_blocking(move || {
        crate::shm::carry(segments, || {
            rustcore::limits::with_cancel(Some(scoped), || f(flag))
        })
    })
    .await
    .map_err(|e| e.is_panic());
    outcome(rpc, out)
}

// ---- issue 16: small calls run where they arrive ----

/// Requests whose arrays hold at most this many bytes, for operations whose work is bounded by
/// their input (no iteration counts or windows chosen by the client), run on the async worker
/// that decoded them: handing a 0.2 ms computation to the blocking pool and back costs two
/// thread wake-ups, more than the work itself on a loaded machine.
pub(crate) const INLINE_MAX_BYTES: usize = 256 << 10;

/// `blocking`, or for a small input (`input_bytes` <= INLINE_MAX_BYTES, whether its arrays came
/// in the message or through shared memory) the same work run here with the same panic
/// containment and errors (and, for a shared-memory call, its segments and result arena, as
/// `blocking` carries them). Such a call is not cancelled midway (it takes well under a
/// millisecond); its deadline still applies. Only when it is the only HftLab call in progress
/// (every call is counted before it gets here, so two calls never both see that): grpcd serves
/// its connections on one thread by default (`--io-threads`), so under concurrent calls the work
/// goes to the blocking pool and runs on the other CPUs.
pub(crate) async fn compute<T, F>(rpc: &'static str, input_bytes: usize, f: F) -> Result<T, Status>
where
    T: Send + 'static,
    F: FnOnce(Arc<AtomicBool>) -> Result<T, Status> + Send + 'static,
{
    if input_bytes > INLINE_MAX_BYTES {
        return blocking(rpc, f).await;
    }
    if crate::awake::in_progress() > 1 {
        return blocking(rpc, f).await;
    }
    crate::awake::small_call();
    let flag = Arc::new(AtomicBool::new(false));
    let scoped = flag.clone();
    let segments = crate::shm::current();
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        crate::shm::carry(segments, || {
            rustcore::limits::with_cancel(Some(scoped), || f(flag))
        })
    }))
    .map_err(|_| true);
    outcome(rpc, out)
}

/// The shared ending of `blocking` and `compute`: failures logged, panics (Err(true)) and
/// aborted tasks (Err(false)) become INTERNAL.
fn outcome<T>(rpc: &'static str, out: Result<Result<T, Status>, bool>) -> Result<T, Status> {
    match out {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(s)) => {
            if s.code() != tonic::Code::Cancelled {
                log::warn(
                    "request failed",
                    &[
                        ("rpc", rpc),
                        ("code", &format!("{:?}", s.code())),
                        ("error", s.message()),
                    ],
                );
            }
            Err(s)
        }
        Err(panicked) => {
            let what = if panicked { "panicked" } else { "was aborted" };
            log::error("handler failed", &[("rpc", rpc), ("what", what)]);
            Err(Status::internal(format!(
                "internal error: the {rpc} handler {what}; the server is still serving"
            )))
        }
    }
}

fn cancel_hook(flag: Arc<AtomicBool>) -> impl FnMut(usize, f64) -> bool {
    move |_, _| !flag.load(Ordering::Relaxed)
}

/// The core's portfolio config from a request (issue 15): every unset field takes
/// `PortfolioConfig::default()`; the named options (returns, covariance) are parsed once, here,
/// into their enums (the same error text as the PyO3 binding). EstimateMoments builds a
/// `PortfolioRequest` holding only its estimation fields and comes through here too.
fn portfolio_config(r: &pb::PortfolioRequest) -> Result<portfolio::PortfolioConfig, Status> {
    let d = portfolio::PortfolioConfig::default();
    Ok(portfolio::PortfolioConfig {
        returns: match r.returns.as_deref() {
            Some(s) => portfolio::ReturnsKind::parse(s).map_err(status)?,
            None => d.returns,
        },
        annualization: r.annualization.unwrap_or(d.annualization),
        risk_free_rate: r.risk_free_rate.unwrap_or(d.risk_free_rate),
        covariance: match r.covariance.as_deref() {
            Some(s) => portfolio::CovarianceEstimator::parse(s).map_err(status)?,
            None => d.covariance,
        },
        min_weight: r.min_weight.unwrap_or(d.min_weight),
        max_weight: r.max_weight.unwrap_or(d.max_weight),
        risk_budgets: r.risk_budgets.clone(),
        frontier_points: r.frontier_points as usize,
    })
}

fn signal_params(s: &Option<pb::SignalParameters>) -> SignalParams {
    match s {
        Some(s) => SignalParams {
            entry: s.entry_threshold,
            exit: s.exit_threshold,
            stop: s.stop_threshold,
        },
        None => SignalParams::default(),
    }
}

// ---- issue 16 (bulk): mean reversion written straight into the shared-memory result segment ----

/// Prices from this many on: every selected output goes into the result segment (the int8
/// series too, through `signals_shm` / `positions_shm`).
const SEGMENT_MIN_PRICES: usize = crate::shm::MIN_OUT_BYTES / 8;

/// With a result segment (a shared-memory call of at least SEGMENT_MIN_PRICES prices), the core
/// writes the selected outputs straight into it: no heap buffers, no zeroing, no copy. The budget
/// check and the validation are those of the PyO3 binding (which also fills preallocated
/// arrays), so the results and errors are the same. None: no segment (or it is full), use the heap.
fn mean_reversion_in_segment(
    prices: &[f64],
    lookback: usize,
    params: SignalParams,
    sel: rolling::Outputs,
    flag: &Arc<AtomicBool>,
) -> Result<Option<pb::MeanReversionResponse>, Status> {
    let n = prices.len();
    if n < SEGMENT_MIN_PRICES || crate::shm::current().is_none() {
        return Ok(None);
    }
    let _budget = if (2..=n).contains(&lookback) {
        Some(
            rustcore::limits::reserve(&rustcore::limits::mean_reversion_selected(
                n,
                lookback,
                &sel.names(),
            ))
            .map_err(status)?,
        )
    } else {
        None
    };
    fn buf<T: Copy>(on: bool, n: usize) -> Option<Option<crate::shm::OutBuf<T>>> {
        if on {
            crate::shm::out_buf::<T>(n).map(Some)
        } else {
            Some(None)
        }
    }
    let (Some(mut mean), Some(mut std), Some(mut z), Some(mut sig), Some(mut pos)) = (
        buf::<f64>(sel.mean, n),
        buf::<f64>(sel.std, n),
        buf::<f64>(sel.zscore, n),
        buf::<i8>(sel.signals, n),
        buf::<i8>(sel.positions, n),
    ) else {
        return Ok(None); // the arena is full: the heap path
    };
    // the outputs are placed already: the core's temporaries (e.g. its list of signal changes)
    // go to the heap, not into the segment
    let (entries, exits) = crate::arena::outside(|| {
        rolling::mean_reversion_into(
            prices,
            lookback,
            params,
            rolling::MeanReversionBuffers {
                rolling_mean: mean.as_deref_mut(),
                rolling_std: std.as_deref_mut(),
                zscore: z.as_deref_mut(),
                signals: sig.as_deref_mut(),
                positions: pos.as_deref_mut(),
            },
            &mut cancel_hook(flag.clone()),
        )
    })
    .map_err(status)?;
    // entries and exits as int64 in the segment too (a 1M-price series has ~35k of each: as
    // packed varints they cost the client more than the rest of the response)
    let indices = |v: &[usize]| {
        let mut b = crate::shm::out_buf::<i64>(v.len())?;
        for (d, &i) in b.iter_mut().zip(v) {
            *d = i as i64;
        }
        Some(b.shm)
    };
    let (entries_shm, exits_shm) = (indices(&entries), indices(&exits));
    let vector = |b: &Option<crate::shm::OutBuf<f64>>| {
        b.as_ref().map(|b| pb::Vector {
            data: Default::default(),
            shm: Some(b.shm),
        })
    };
    Ok(Some(pb::MeanReversionResponse {
        rolling_mean: vector(&mean),
        rolling_std: vector(&std),
        zscore: vector(&z),
        signals: Default::default(),
        positions: Default::default(),
        entries: if entries_shm.is_some() {
            Vec::new()
        } else {
            entries.iter().map(|&i| i as u32).collect()
        },
        exits: if exits_shm.is_some() {
            Vec::new()
        } else {
            exits.iter().map(|&i| i as u32).collect()
        },
        signals_shm: sig.as_ref().map(|b| b.shm),
        positions_shm: pos.as_ref().map(|b| b.shm),
        entries_shm,
        exits_shm,
    }))
}

const ALGORITHMS: &[&str] = &[
    "mean_reversion",
    "mean_reversion_stream",
    "fit_ou",
    "backtest",
    "hmm",
    "hmm_mv",
    "hmm_filter",
    "hmm_walk_forward",
    "hmm_filter_stream",
    "portfolio",
    "sparse",
    "sparse_lambda_path",
    "estimate_moments",
    "ledoit_wolf",
    // pairs workflow (issue 17), service HftLabPairs
    "scan_pairs",
    "johansen",
    "kalman_hedge",
    "walk_forward",
    "walk_forward_stream",
];

pub(crate) type Stream<T> = ReceiverStream<Result<T, Status>>;

#[tonic::async_trait]
impl HftLab for Service {
    async fn get_info(
        &self,
        _: Request<pb::InfoRequest>,
    ) -> Result<Response<pb::InfoResponse>, Status> {
        crate::awake::small_call();
        Ok(Response::new(pb::InfoResponse {
            server_version: env!("CARGO_PKG_VERSION").into(),
            core_version: rustcore::VERSION.into(),
            algorithms: crate::info::algorithms(ALGORITHMS),
            max_message_bytes: self.max_message_bytes as u64,
            pid: std::process::id(),
            shm_dir: crate::shm::dir()
                .map(|d| d.display().to_string())
                .unwrap_or_default(),
            uid: crate::shm::uid(),
            rpcs: crate::info::rpcs().to_vec(),
            features: crate::info::features(),
        }))
    }

    async fn echo(
        &self,
        req: Request<pb::EchoRequest>,
    ) -> Result<Response<pb::EchoResponse>, Status> {
        let r = req.into_inner();
        if self.test_hooks && r.payload == b"panic" {
            // Only with GRPCD_TEST_HOOKS set: lets the tests prove a panicking handler is contained.
            return blocking("Echo", |_| -> Result<pb::EchoResponse, Status> {
                panic!("test hook: deliberate panic")
            })
            .await
            .map(Response::new);
        }
        // The same budget check as the PyO3 echo (one copy of the payload), so both refuse alike.
        let bytes = r.payload.len() + 8 * r.values.len();
        let _budget = rustcore::limits::reserve(&rustcore::limits::echo(bytes)).map_err(status)?;
        if bytes <= INLINE_MAX_BYTES {
            crate::awake::small_call();
        }
        Ok(Response::new(pb::EchoResponse {
            payload: r.payload,
            values: r.values,
        }))
    }

    async fn mean_reversion(
        &self,
        req: Request<pb::MeanReversionRequest>,
    ) -> Result<Response<pb::MeanReversionResponse>, Status> {
        let r = req.into_inner();
        // issue 16 (bulk): prices in shared memory are read in place (no copy into the heap)
        let prices = crate::shm::values(&r.prices, "prices")?;
        let params = signal_params(&r.signal);
        let lookback = r.lookback as usize;
        let sel = rolling::Outputs::parse(&r.outputs).map_err(status)?;
        let bytes = 8 * prices.len();
        let resp = compute("MeanReversion", bytes, move |flag| {
            if let Some(resp) = mean_reversion_in_segment(&prices, lookback, params, sel, &flag)? {
                return Ok(resp);
            }
            let out = rolling::mean_reversion_outputs(
                &prices,
                lookback,
                params,
                sel,
                &mut cancel_hook(flag),
            )
            .map_err(status)?;
            let o = out.outputs;
            Ok(pb::MeanReversionResponse {
                rolling_mean: o.mean.then(|| to_vector(&out.rolling_mean)),
                rolling_std: o.std.then(|| to_vector(&out.rolling_std)),
                zscore: o.zscore.then(|| to_vector(&out.zscore)),
                signals: i8_bytes(&out.signals),
                positions: i8_bytes(&out.positions),
                entries: out.entries.iter().map(|&i| i as u32).collect(),
                exits: out.exits.iter().map(|&i| i as u32).collect(),
                signals_shm: None,
                positions_shm: None,
                entries_shm: None,
                exits_shm: None,
            })
        })
        .await?;
        Ok(Response::new(resp))
    }

    type StreamMeanReversionStream = Stream<pb::StreamResponse>;

    async fn stream_mean_reversion(
        &self,
        req: Request<Streaming<pb::StreamRequest>>,
    ) -> Result<Response<Self::StreamMeanReversionStream>, Status> {
        let stream =
            crate::streams::live_stream::<MrLive, _>("StreamMeanReversion", req.into_inner());
        Ok(Response::new(stream))
    }

    async fn fit_ou(
        &self,
        req: Request<pb::OuRequest>,
    ) -> Result<Response<pb::OuResponse>, Status> {
        let r = req.into_inner();
        let series = convert::vector(&r.series, "series")?;
        let cfg = ou::OuConfig {
            dt: r.dt.unwrap_or(1.0),
            bars_per_day: r.bars_per_day.unwrap_or(1.0),
        };
        let bytes = 8 * series.len();
        let f = compute("FitOu", bytes, move |_| {
            ou::fit_ou(&series, &cfg).map_err(status)
        })
        .await?;
        Ok(Response::new(pb::OuResponse {
            a: f.a,
            b: f.b,
            kappa: f.kappa,
            theta: f.theta,
            sigma: f.sigma,
            half_life_bars: f.half_life_bars,
            half_life_days: f.half_life_days,
            se_a: f.se_a,
            se_b: f.se_b,
            se_kappa: f.se_kappa,
            se_half_life: f.se_half_life,
            r_squared: f.r_squared,
            r_squared_delta: f.r_squared_delta,
            residual_std: f.residual_std,
            mean_reverting: f.mean_reverting,
            hurst: f.hurst,
            n: f.n as u64,
        }))
    }

    async fn backtest(
        &self,
        req: Request<pb::BacktestRequest>,
    ) -> Result<Response<pb::BacktestResponse>, Status> {
        let r = req.into_inner();
        let prices = convert::vector(&r.prices, "prices")?;
        let positions = convert::vector(&r.positions, "positions")?;
        let cfg = bt::BacktestConfig {
            cost_bps: r.cost_bps.unwrap_or(0.0),
            periods_per_year: r.periods_per_year.unwrap_or(252.0),
        };
        let notional = match &r.notional {
            Some(_) => Some(convert::vector(&r.notional, "notional")?),
            None => None,
        };
        let units = r.units.clone();
        let bytes = 8 * (prices.len() + positions.len() + notional.as_ref().map_or(0, |n| n.len()));
        let b = compute("Backtest", bytes, move |_| {
            bt::backtest_units(&prices, &positions, &units, notional.as_deref(), &cfg)
                .map_err(status)
        })
        .await?;
        Ok(Response::new(pb::BacktestResponse {
            equity: Some(to_vector(&b.equity)),
            returns: Some(to_vector(&b.returns)),
            drawdown: Some(to_vector(&b.drawdown)),
            total_return: b.total_return,
            annual_return: b.annual_return,
            annual_volatility: b.annual_volatility,
            sharpe: b.sharpe,
            sortino: b.sortino,
            max_drawdown: b.max_drawdown,
            n_trades: b.n_trades as u64,
            win_rate: b.win_rate,
            avg_holding_bars: b.avg_holding_bars,
            trade_entries: b.trade_entries.iter().map(|&i| i as i64).collect(),
            trade_exits: b.trade_exits.iter().map(|&i| i as i64).collect(),
            trade_directions: b.trade_directions.iter().map(|&i| i as i64).collect(),
            trade_pnls: b.trade_pnls,
            units: if r.units == "pnl" {
                "pnl".into()
            } else {
                "returns".into()
            },
        }))
    }

    async fn optimize_portfolio(
        &self,
        req: Request<pb::PortfolioRequest>,
    ) -> Result<Response<pb::PortfolioResponse>, Status> {
        let r = req.into_inner();
        // issue 16: prices in shared memory are read in place (no copy into the heap)
        let (prices, rows, cols) = crate::shm::matrix_values(&r.prices, "prices")?;
        let method = portfolio::PortfolioMethod::parse(&r.method).map_err(status)?;
        let config = portfolio_config(&r)?;
        let names = r.asset_names;
        // a frontier is one QP per point (client-chosen count): the blocking pool
        let bytes = match config.frontier_points {
            0 => 8 * prices.len() + 8 * config.risk_budgets.len(),
            _ => usize::MAX,
        };
        let out = compute("OptimizePortfolio", bytes, move |flag| {
            // its results are a few vectors of `cols` values: every large allocation is a
            // temporary (returns, covariance, QP workspace), which the heap reuses from call to
            // call, where the result arena would give it fresh tmpfs pages to fault in, zero and
            // punch out again (~8% of a 500-asset call's server time)
            crate::arena::outside(|| {
                portfolio::optimize_portfolio(
                    &prices,
                    rows,
                    cols,
                    method,
                    &config,
                    &mut cancel_hook(flag),
                )
            })
            .map_err(status)
        })
        .await?;
        Ok(Response::new(pb::PortfolioResponse {
            method: out.method,
            weights: Some(to_vector(&out.weights)),
            asset_names: names,
            expected_return: out.expected_return,
            volatility: out.volatility,
            sharpe: out.sharpe,
            risk_contributions: Some(to_vector(&out.risk_contributions)),
            status: out.status,
            iterations: out.iterations as u32,
            frontier_returns: Some(to_vector(&out.frontier_returns)),
            frontier_volatilities: Some(to_vector(&out.frontier_volatilities)),
        }))
    }

    type RunHmmStream = Stream<pb::HmmUpdate>;

    async fn run_hmm(
        &self,
        req: Request<pb::HmmRequest>,
    ) -> Result<Response<Self::RunHmmStream>, Status> {
        let r = req.into_inner();
        let obs = convert::vector(&r.observations, "observations")?;
        let init = match &r.init {
            None => None,
            Some(i) => Some(hmm::HmmInit {
                start_prob: convert::vector(&i.start_prob, "init start_prob")?,
                transmat: i
                    .transmat
                    .as_ref()
                    .map(|m| convert::f64s(&m.data, "init transmat"))
                    .transpose()?
                    .unwrap_or_default(),
                means: convert::vector(&i.means, "init means")?,
                variances: convert::vector(&i.variances, "init variances")?,
            }),
        };
        let config = hmm::HmmConfig {
            n_states: r.n_states as usize,
            max_iterations: r.max_iterations as usize,
            tolerance: r.tolerance,
            n_restarts: if r.n_restarts_default {
                None
            } else {
                Some(r.n_restarts as usize)
            },
            seed: r.seed,
            init,
        };
        let stream = crate::streams::progress_stream(
            "RunHmm",
            |it, ll| pb::HmmUpdate {
                kind: Some(pb::hmm_update::Kind::Progress(pb::HmmProgress {
                    iteration: it as u32,
                    log_likelihood: ll,
                })),
            },
            move |hook| hmm::run_hmm(&obs, &config, hook).map_err(status),
            |h| {
                let k = h.n_states;
                let t = h.viterbi_path.len();
                pb::HmmUpdate {
                    kind: Some(pb::hmm_update::Kind::Result(pb::HmmResponse {
                        means: Some(to_vector(&h.means)),
                        variances: Some(to_vector(&h.variances)),
                        transition_matrix: Some(convert::to_matrix(&h.transition_matrix, k, k)),
                        start_probabilities: Some(to_vector(&h.start_probabilities)),
                        log_likelihood: h.log_likelihood,
                        log_likelihood_history: Some(to_vector(&h.log_likelihood_history)),
                        iterations: h.iterations as u32,
                        converged: h.converged,
                        posteriors: Some(convert::to_matrix(&h.posteriors, t, k)),
                        viterbi_path: h.viterbi_path.iter().map(|&s| s as u32).collect(),
                        aic: h.aic,
                        bic: h.bic,
                        filtered: Some(convert::to_matrix(&h.filtered, t, k)),
                    })),
                }
            },
        );
        Ok(Response::new(stream))
    }

    async fn sparse_portfolio(
        &self,
        req: Request<pb::SparseRequest>,
    ) -> Result<Response<pb::SparseResponse>, Status> {
        let r = req.into_inner();
        let (prices, rows, cols) = convert::matrix(&r.prices, "prices")?;
        let d = sparse::SparseConfig::default();
        let config = sparse::SparseConfig {
            method: sparse::SparseMethod::from_name(&r.method).map_err(status)?,
            lambda: r.lambda_param.unwrap_or(d.lambda),
            alpha: r.alpha.unwrap_or(d.alpha),
            target: r.target.map(|t| t as usize),
            k: r.k.map(|k| k as usize),
            max_iterations: r.max_iterations.map_or(d.max_iterations, |v| v as usize),
            tolerance: r.tolerance.unwrap_or(d.tolerance),
            adf_autolag: rustcore::adf::Autolag::parse(&r.adf_autolag).map_err(status)?,
        };
        let names = r.asset_names;
        let out = blocking("SparsePortfolio", move |flag| {
            // small results: the core's large temporaries stay on the heap (see OptimizePortfolio)
            crate::arena::outside(|| {
                sparse::sparse_portfolio(&prices, rows, cols, &config, &mut cancel_hook(flag))
            })
            .map_err(status)
        })
        .await?;
        Ok(Response::new(pb::SparseResponse {
            method: out.method,
            weights: Some(to_vector(&out.weights)),
            asset_names: names,
            target_index: out.target_index.map(|t| t as i32).unwrap_or(-1),
            intercept: out.intercept,
            nonzero: out.nonzero as u32,
            spread: Some(to_vector(&out.spread)),
            half_life: out.half_life,
            adf_statistic: out.adf_statistic,
            adf_critical_values: Some(to_vector(&out.adf_critical_values)),
            objective: out.objective,
            iterations: out.iterations as u32,
            adf_lag: out.adf_lag as u32,
        }))
    }

    async fn sparse_lambda_path(
        &self,
        req: Request<pb::LambdaPathRequest>,
    ) -> Result<Response<pb::LambdaPathResponse>, Status> {
        let r = req.into_inner();
        let (prices, rows, cols) = convert::matrix(&r.prices, "prices")?;
        let d = sparse::LambdaPathConfig::default();
        let config = sparse::LambdaPathConfig {
            target: r.target as usize,
            lambdas: if r.lambdas.is_empty() {
                None
            } else {
                Some(r.lambdas)
            },
            n_lambdas: r.n_lambdas.map_or(d.n_lambdas, |v| v as usize),
            alpha: r.alpha.unwrap_or(d.alpha),
            tolerance: r.tolerance.unwrap_or(d.tolerance),
            max_iterations: r.max_iterations.map_or(d.max_iterations, |v| v as usize),
            adf_autolag: rustcore::adf::Autolag::parse(&r.adf_autolag).map_err(status)?,
            ..sparse::LambdaPathConfig::default()
        };
        let out = blocking("SparseLambdaPath", move |flag| {
            // small results: the core's large temporaries stay on the heap (see OptimizePortfolio)
            crate::arena::outside(|| {
                sparse::sparse_lambda_path(&prices, rows, cols, &config, &mut cancel_hook(flag))
            })
            .map_err(status)
        })
        .await?;
        let l = out.lambdas.len();
        Ok(Response::new(pb::LambdaPathResponse {
            lambdas: Some(to_vector(&out.lambdas)),
            nonzero: out.nonzero.iter().map(|&v| v as u32).collect(),
            half_life: Some(to_vector(&out.half_life)),
            adf_statistic: Some(to_vector(&out.adf_statistic)),
            weights: Some(convert::to_matrix(&out.weights, l, cols)),
            intercepts: Some(to_vector(&out.intercepts)),
            iterations: out.iterations.iter().map(|&v| v as u32).collect(),
            adf_lag: out.adf_lag.iter().map(|&v| v as u32).collect(),
        }))
    }

    // ---- asset moments and Ledoit-Wolf covariance (issue 15) ----

    async fn estimate_moments(
        &self,
        req: Request<pb::MomentsRequest>,
    ) -> Result<Response<pb::MomentsResponse>, Status> {
        let r = req.into_inner();
        let (prices, rows, cols) = crate::shm::matrix_values(&r.prices, "prices")?;
        // the moments take the optimiser's estimation options: one parse (portfolio_config)
        let config = portfolio_config(&pb::PortfolioRequest {
            returns: r.returns,
            annualization: r.annualization,
            covariance: r.covariance,
            ..Default::default()
        })?;
        let out = compute("EstimateMoments", 8 * prices.len(), move |_flag| {
            // the covariance (cols x cols) is copied into the segment; the returns and other
            // temporaries stay on the heap (see OptimizePortfolio)
            crate::arena::outside(|| portfolio::estimate_moments(&prices, rows, cols, &config))
                .map_err(status)
        })
        .await?;
        Ok(Response::new(pb::MomentsResponse {
            mean: Some(to_vector(&out.mean)),
            covariance: Some(convert::to_matrix(&out.covariance, cols, cols)),
            observations: out.observations as u32,
            shrinkage: out.shrinkage,
        }))
    }

    async fn ledoit_wolf(
        &self,
        req: Request<pb::LedoitWolfRequest>,
    ) -> Result<Response<pb::LedoitWolfResponse>, Status> {
        let r = req.into_inner();
        let (data, rows, cols) = crate::shm::matrix_values(&r.data, "data")?;
        let out = compute("LedoitWolf", 8 * data.len(), move |_flag| {
            // as EstimateMoments: the temporaries stay on the heap
            crate::arena::outside(|| portfolio::ledoit_wolf(&data, rows, cols)).map_err(status)
        })
        .await?;
        Ok(Response::new(pb::LedoitWolfResponse {
            location: Some(to_vector(&out.location)),
            covariance: Some(convert::to_matrix(&out.covariance, cols, cols)),
            shrinkage: out.shrinkage,
        }))
    }

    // ---- multivariate HMM, forward filter, walk-forward, live filter (hmm helper) ----
    type RunHmmMvStream = Stream<pb::HmmMvUpdate>;

    async fn run_hmm_mv(
        &self,
        req: Request<pb::HmmMvRequest>,
    ) -> Result<Response<Self::RunHmmMvStream>, Status> {
        crate::hmm_service::run_hmm_mv(req.into_inner()).await
    }

    async fn hmm_filter(
        &self,
        req: Request<pb::HmmFilterRequest>,
    ) -> Result<Response<pb::HmmFilterResponse>, Status> {
        crate::hmm_service::hmm_filter(req.into_inner()).await
    }

    type HmmWalkForwardStream = Stream<pb::HmmWalkForwardUpdate>;

    async fn hmm_walk_forward(
        &self,
        req: Request<pb::HmmWalkForwardRequest>,
    ) -> Result<Response<Self::HmmWalkForwardStream>, Status> {
        crate::hmm_service::hmm_walk_forward(req.into_inner()).await
    }

    type StreamHmmFilterStream = Stream<pb::HmmStreamResponse>;

    async fn stream_hmm_filter(
        &self,
        req: Request<Streaming<pb::HmmStreamRequest>>,
    ) -> Result<Response<Self::StreamHmmFilterStream>, Status> {
        crate::hmm_service::stream_hmm_filter(req.into_inner()).await
    }
}

fn process_ticks(s: &mut MeanReversionState, data: &[u8]) -> Result<pb::StreamResponse, Status> {
    let ticks = convert::f64s(data, "ticks")?;
    let _budget =
        rustcore::limits::reserve(&rustcore::limits::stream_batch(ticks.len())).map_err(status)?;
    let b = s.push_many(&ticks).map_err(status)?;
    Ok(pb::StreamResponse {
        first_tick: b.first_tick,
        rolling_mean: Some(to_vector(&b.rolling_mean)),
        rolling_std: Some(to_vector(&b.rolling_std)),
        zscore: Some(to_vector(&b.zscore)),
        signals: i8_bytes(&b.signals),
        positions: i8_bytes(&b.positions),
        ..Default::default()
    })
}

/// StreamMeanReversion (see streams::live_stream): the configuration, then batches of ticks.
struct MrLive;

impl crate::streams::LiveHandler for MrLive {
    type Request = pb::StreamRequest;
    type Response = pb::StreamResponse;
    type Setup = pb::StreamConfig;
    type Data = pb::Vector;
    // The window's bytes stay reserved in the memory budget while the stream lives.
    type State = (MeanReversionState, rustcore::limits::Reservation);
    const ALREADY: &'static str =
        "the stream is already configured: open a new stream to change it";
    const FIRST: &'static str =
        "the first stream message must be the configuration (lookback, thresholds)";

    fn split(r: pb::StreamRequest) -> crate::streams::Live<pb::StreamConfig, pb::Vector> {
        use crate::streams::Live;
        match r.kind {
            None => Live::Empty,
            Some(pb::stream_request::Kind::Config(c)) => Live::Setup(c),
            Some(pb::stream_request::Kind::Ticks(v)) => Live::Data(v),
        }
    }

    fn setup(c: pb::StreamConfig) -> Result<Self::State, Status> {
        let lookback = c.lookback as usize;
        MeanReversionState::new(lookback, signal_params(&c.signal))
            .and_then(|s| {
                Ok((
                    s,
                    rustcore::limits::reserve(&rustcore::limits::stream(lookback))?,
                ))
            })
            .map_err(status)
    }

    fn batch(st: &mut Self::State, v: pb::Vector) -> Result<pb::StreamResponse, Status> {
        process_ticks(&mut st.0, &v.data)
    }

    fn rejected(st: &Self::State, e: &Status) -> pb::StreamResponse {
        pb::StreamResponse {
            first_tick: st.0.ticks(),
            error: e.message().to_string(),
            error_code: e.code() as u32,
            ..Default::default()
        }
    }
}
