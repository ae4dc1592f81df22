//! The HftLabPairs service (issue 17): pairs scan (streamed progress, partial rows, shards),
//! Johansen test, Kalman hedge. A thin adapter like `service.rs`: convert, run the core on the
//! blocking pool with a cancel flag (dropped stream / deadline -> flag -> the core stops), convert.

use std::sync::atomic::Ordering;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use rustcore::adf::Autolag;
use rustcore::pairs::{self, PairStats, ScanConfig};

use crate::convert::{self, status, to_vector};
use crate::pb::{self, hft_lab_pairs_server::HftLabPairs};
use crate::service::blocking;

pub struct PairsService;

fn rows_pb(rows: &[PairStats]) -> pb::PairRows {
    let f = |g: fn(&PairStats) -> f64| to_vector(&rows.iter().map(g).collect::<Vec<f64>>());
    pb::PairRows {
        i: rows.iter().map(|r| r.i as u32).collect(),
        j: rows.iter().map(|r| r.j as u32).collect(),
        hedge_ratio: Some(f(|r| r.hedge_ratio)),
        intercept: Some(f(|r| r.intercept)),
        statistic: Some(f(|r| r.statistic)),
        pvalue: Some(f(|r| r.pvalue)),
        qvalue: Some(f(|r| r.qvalue)),
        half_life: Some(f(|r| r.half_life)),
        hurst: Some(f(|r| r.hurst)),
        correlation: Some(f(|r| r.correlation)),
        used_lag: rows.iter().map(|r| r.used_lag as u32).collect(),
    }
}

fn scan_config(c: &Option<pb::PairScanConfig>) -> Result<ScanConfig, Status> {
    let d = pb::PairScanConfig::default();
    let c = c.as_ref().unwrap_or(&d);
    Ok(ScanConfig {
        trend: if c.trend.is_empty() {
            "c".into()
        } else {
            c.trend.clone()
        },
        autolag: Autolag::parse(&c.autolag).map_err(status)?,
        max_lag: c.max_lag.map(|v| v as usize),
        max_pvalue: c.max_pvalue,
        max_qvalue: c.max_qvalue,
        min_half_life: c.min_half_life,
        max_half_life: c.max_half_life,
        min_correlation: c.min_correlation,
        top: c.top.map(|v| v as usize),
    })
}

use rustcore::walkforward as wf;

/// The walk-forward request, checked and converted (both WalkForward RPCs).
fn walk_forward_input(
    r: pb::WalkForwardRequest,
) -> Result<(Vec<f64>, usize, usize, wf::WalkForwardConfig), Status> {
    let (prices, rows, cols) = convert::matrix(&r.prices, "prices")?;
    let sig = r.signal.unwrap_or_default();
    let cfg = wf::WalkForwardConfig {
        formation: r.formation as usize,
        trading: r.trading as usize,
        step: r.step.map(|v| v as usize),
        selection: scan_config(&r.selection)?,
        max_pairs: r.max_pairs as usize,
        hedge: wf::Hedge::parse(&r.hedge, r.delta, r.observation_var).map_err(status)?,
        signal: rustcore::rolling::SignalParams {
            entry: sig.entry_threshold,
            exit: sig.exit_threshold,
            stop: sig.stop_threshold,
        },
        cost_bps: r.cost_bps,
    };
    Ok((prices, rows, cols, cfg))
}

/// The walk-forward result as a message (both WalkForward RPCs: identical results).
fn walk_forward_pb(out: &wf::WalkForwardResult) -> pb::WalkForwardResponse {
    let sel = |s: &[wf::Selection]| {
        let f = |g: fn(&wf::Selection) -> f64| to_vector(&s.iter().map(g).collect::<Vec<f64>>());
        pb::PairSelections {
            window: s.iter().map(|r| r.window as u32).collect(),
            i: s.iter().map(|r| r.i as u32).collect(),
            j: s.iter().map(|r| r.j as u32).collect(),
            pvalue: Some(f(|r| r.pvalue)),
            hedge_ratio: Some(f(|r| r.hedge_ratio)),
            intercept: Some(f(|r| r.intercept)),
            spread_mean: Some(f(|r| r.spread_mean)),
            spread_std: Some(f(|r| r.spread_std)),
        }
    };
    let w = &out.windows;
    let u = |g: fn(&wf::WindowRow) -> usize| w.iter().map(|r| g(r) as u32).collect::<Vec<u32>>();
    let f = |g: fn(&wf::WindowRow) -> f64| to_vector(&w.iter().map(g).collect::<Vec<f64>>());
    pb::WalkForwardResponse {
        oos_equity: Some(to_vector(&out.oos_equity)),
        oos_drawdown: Some(to_vector(&out.oos_drawdown)),
        is_equity: Some(to_vector(&out.is_equity)),
        is_drawdown: Some(to_vector(&out.is_drawdown)),
        formation_start: u(|r| r.formation_start),
        trading_start: u(|r| r.trading_start),
        trading_end: u(|r| r.trading_end),
        n_pairs: u(|r| r.n_pairs),
        trades: u(|r| r.trades),
        pnl: Some(f(|r| r.pnl)),
        turnover: Some(f(|r| r.turnover)),
        costs: Some(f(|r| r.costs)),
        selections: Some(sel(&out.selections)),
        is_selections: Some(sel(&out.is_selections)),
    }
}

type Stream<T> = ReceiverStream<Result<T, Status>>;

#[tonic::async_trait]
impl HftLabPairs for PairsService {
    type ScanPairsStream = Stream<pb::PairScanUpdate>;

    async fn scan_pairs(
        &self,
        req: Request<pb::PairScanRequest>,
    ) -> Result<Response<Self::ScanPairsStream>, Status> {
        let r = req.into_inner();
        let (prices, rows, cols) = convert::matrix(&r.prices, "prices")?;
        let cfg = scan_config(&r.config)?;
        let range = match (r.pair_start, r.pair_end) {
            (Some(a), Some(b)) => Some((
                usize::try_from(a).unwrap_or(usize::MAX),
                usize::try_from(b).unwrap_or(usize::MAX),
            )),
            (None, None) => None,
            _ => {
                return Err(Status::invalid_argument(
                    "pair_start and pair_end must be given together",
                ))
            }
        };
        let partial_rows = r.partial_rows;
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            let progress_tx = tx.clone();
            let work = blocking("ScanPairs", move |flag| {
                let mut hook = |done: usize, total: usize, chunk: &[PairStats]| {
                    !flag.load(Ordering::Relaxed)
                        && progress_tx
                            .blocking_send(Ok(pb::PairScanUpdate {
                                kind: Some(pb::pair_scan_update::Kind::Progress(
                                    pb::PairScanProgress {
                                        done: done as u64,
                                        total: total as u64,
                                        rows: partial_rows.then(|| rows_pb(chunk)),
                                    },
                                )),
                            }))
                            .is_ok()
                };
                match range {
                    Some((a, b)) => pairs::scan_range(&prices, rows, cols, &cfg, a, b, &mut hook)
                        .map(|raw| pb::pair_scan_update::Kind::Shard(rows_pb(&raw))),
                    None => pairs::scan_pairs(&prices, rows, cols, &cfg, &mut hook).map(|s| {
                        let n = s.n_assets;
                        pb::pair_scan_update::Kind::Result(pb::PairScanResult {
                            rows: Some(rows_pb(&s.rows)),
                            n_assets: n as u32,
                            n_tested: s.n_tested as u64,
                            n_failed: s.n_failed as u64,
                            n_passed: s.n_passed as u64,
                            critical_values: Some(to_vector(&s.critical_values)),
                            pvalue_matrix: Some(convert::to_matrix(&s.pvalue_matrix, n, n)),
                        })
                    }),
                }
                .map_err(status)
            });
            let out = tokio::select! {
                out = work => out,
                _ = tx.closed() => return,
            };
            let _ = tx
                .send(out.map(|k| pb::PairScanUpdate { kind: Some(k) }))
                .await;
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn johansen(
        &self,
        req: Request<pb::JohansenRequest>,
    ) -> Result<Response<pb::JohansenResponse>, Status> {
        let r = req.into_inner();
        let (prices, rows, cols) = convert::matrix(&r.prices, "prices")?;
        let (det, k) = (r.det_order, r.k_ar_diff as usize);
        let out = blocking("Johansen", move |_| {
            rustcore::johansen::johansen(&prices, rows, cols, det, k).map_err(status)
        })
        .await?;
        let n = out.n_vars;
        Ok(Response::new(pb::JohansenResponse {
            eigenvalues: Some(to_vector(&out.eigenvalues)),
            eigenvectors: Some(convert::to_matrix(&out.eigenvectors, n, n)),
            trace_stat: Some(to_vector(&out.trace_stat)),
            trace_crit: Some(convert::to_matrix(&out.trace_crit, n, 3)),
            max_eig_stat: Some(to_vector(&out.max_eig_stat)),
            max_eig_crit: Some(convert::to_matrix(&out.max_eig_crit, n, 3)),
            nobs: out.nobs as u32,
        }))
    }

    async fn walk_forward(
        &self,
        req: Request<pb::WalkForwardRequest>,
    ) -> Result<Response<pb::WalkForwardResponse>, Status> {
        let (prices, rows, cols, cfg) = walk_forward_input(req.into_inner())?;
        let out = blocking("WalkForward", move |flag| {
            wf::walk_forward(&prices, rows, cols, &cfg, &mut |_, _| {
                !flag.load(Ordering::Relaxed)
            })
            .map_err(status)
        })
        .await?;
        Ok(Response::new(walk_forward_pb(&out)))
    }

    type WalkForwardStreamStream = Stream<pb::WalkForwardUpdate>;

    async fn walk_forward_stream(
        &self,
        req: Request<pb::WalkForwardRequest>,
    ) -> Result<Response<Self::WalkForwardStreamStream>, Status> {
        let (prices, rows, cols, cfg) = walk_forward_input(req.into_inner())?;
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            let progress_tx = tx.clone();
            let work = blocking("WalkForwardStream", move |flag| {
                wf::walk_forward(&prices, rows, cols, &cfg, &mut |w, frac| {
                    !flag.load(Ordering::Relaxed)
                        && progress_tx
                            .blocking_send(Ok(pb::WalkForwardUpdate {
                                kind: Some(pb::walk_forward_update::Kind::Progress(
                                    pb::WalkForwardProgress {
                                        window: w as u32,
                                        fraction: frac,
                                    },
                                )),
                            }))
                            .is_ok()
                })
                .map_err(status)
            });
            let out = tokio::select! {
                out = work => out,
                _ = tx.closed() => return,
            };
            let _ = tx
                .send(out.map(|r| pb::WalkForwardUpdate {
                    kind: Some(pb::walk_forward_update::Kind::Result(walk_forward_pb(&r))),
                }))
                .await;
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn kalman_hedge(
        &self,
        req: Request<pb::KalmanRequest>,
    ) -> Result<Response<pb::KalmanResponse>, Status> {
        let r = req.into_inner();
        let y = convert::vector(&r.y, "y")?;
        let x = convert::vector(&r.x, "x")?;
        let (d, v) = (r.delta, r.observation_var);
        let out = blocking("KalmanHedge", move |_| {
            rustcore::kalman::kalman_hedge(&y, &x, d, v).map_err(status)
        })
        .await?;
        Ok(Response::new(pb::KalmanResponse {
            hedge_ratio: Some(to_vector(&out.hedge_ratio)),
            intercept: Some(to_vector(&out.intercept)),
            spread: Some(to_vector(&out.spread)),
            spread_std: Some(to_vector(&out.spread_std)),
        }))
    }
}
