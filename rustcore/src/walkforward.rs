//! Walk-forward validation of a pairs-trading rule: pairs chosen on each formation window only,
//! traded on the following trading window with everything fixed at formation, stitched
//! out-of-sample equity; and, for comparison, the in-sample equity of the same rule (pairs and
//! parameters chosen on the whole sample, traded on the same sample: look-ahead on purpose).
//!
//! Conventions:
//! * Windows `w = 0, 1, …` start at `s_w = w·step`; formation `[s_w, s_w + F)`, trading
//!   `[s_w + F, min(s_w + F + L, s_{w+1} + F, n))` (a later window takes over from an earlier one,
//!   so trading segments never overlap); windows run while `s_w + F < n`.
//! * Selection: the Engle-Granger scan ([`crate::pairs`]) of the formation prices with the given
//!   filters, best `max_pairs` by p-value.
//! * Hedge `ols`: β, α of the formation regression; spread `y − βx − α`; z-score with the mean
//!   and population standard deviation of the formation spread. Hedge `kalman`: the forward
//!   filter ([`crate::kalman`]) run from the formation start; z-score `e_t/√Q_t`, hedge ratio
//!   `β_{t|t}`.
//! * Signals: the hysteresis machine of the mean-reversion tab ([`crate::rolling::SignalMachine`],
//!   entry / exit / stop), started flat at the first trading bar; the position decided at the
//!   close of bar t is held during bar t + 1; every position is closed at the end of its trading
//!   segment (the last bar's signal is not taken).
//! * Returns: a position opened at bar t fixes its hedge ratio `h` and gross notional
//!   `G = |y_t| + |h|·|x_t|`; while held its return per bar is
//!   `pos·((y_t − y_{t−1}) − h·(x_t − x_{t−1}))/G`. Costs: `cost_bps/1e4` per unit of position
//!   change (an entry or an exit costs it once, a flip twice), charged on the bar of the decision.
//!   The window's return per bar is the mean over its selected pairs (0 when none).
//! * Output per window: the pairs, the number of trades (entries), the window's compounded
//!   return, turnover (sum of position changes / number of pairs) and costs (as return).
//! * Ruin: a bar's return can be below −100 % (a leg jumping several-fold against a position);
//!   equity and the window's compounded return are floored at 0 (−100 %) as in the backtest
//!   ([`crate::backtest::ruin_floor`]): the equity curve stays 0 after a ruin, never negative.

use crate::backtest::ruin_floor;
use crate::error::{CoreError, CoreResult};
use crate::kalman::KalmanState;
use crate::num::pz;
use crate::pairs::{self, ScanConfig};
use crate::rolling::{SignalMachine, SignalParams};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Hedge {
    Ols,
    Kalman { delta: f64, observation_var: f64 },
}

impl Hedge {
    /// "ols" or "kalman" (with the filter's parameters).
    pub fn parse(name: &str, delta: f64, observation_var: f64) -> CoreResult<Self> {
        match name.to_ascii_lowercase().as_str() {
            "ols" => Ok(Hedge::Ols),
            "kalman" => Ok(Hedge::Kalman {
                delta,
                observation_var,
            }),
            _ => Err(CoreError::invalid(format!(
                "hedge must be 'ols' or 'kalman', got {name:?}"
            ))),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct WalkForwardConfig {
    pub formation: usize,
    pub trading: usize,
    pub step: Option<usize>,
    /// Selection filters (its `top` is replaced by `max_pairs`).
    pub selection: ScanConfig,
    pub max_pairs: usize,
    pub hedge: Hedge,
    pub signal: SignalParams,
    pub cost_bps: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WindowRow {
    pub formation_start: usize,
    pub trading_start: usize,
    pub trading_end: usize,
    pub n_pairs: usize,
    pub trades: usize,
    pub pnl: f64,
    pub turnover: f64,
    pub costs: f64,
}

/// A pair chosen for a window, with what was fixed at formation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Selection {
    pub window: usize,
    pub i: usize,
    pub j: usize,
    pub pvalue: f64,
    pub hedge_ratio: f64,
    pub intercept: f64,
    pub spread_mean: f64,
    pub spread_std: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WalkForwardResult {
    /// Per bar; 1.0 before the first trading bar.
    pub oos_equity: Vec<f64>,
    pub oos_drawdown: Vec<f64>,
    pub is_equity: Vec<f64>,
    pub is_drawdown: Vec<f64>,
    pub windows: Vec<WindowRow>,
    pub selections: Vec<Selection>,
    pub is_selections: Vec<Selection>,
}

fn check(cfg: &WalkForwardConfig, rows: usize) -> CoreResult<usize> {
    if cfg.formation < pairs::MIN_OBS {
        return Err(CoreError::invalid(format!(
            "formation must be at least {} observations, got {}",
            pairs::MIN_OBS,
            cfg.formation
        )));
    }
    if cfg.trading == 0 {
        return Err(CoreError::invalid("trading must be at least 1 observation"));
    }
    let step = cfg.step.unwrap_or(cfg.trading);
    if step == 0 {
        return Err(CoreError::invalid("step must be at least 1 observation"));
    }
    if cfg.formation >= rows {
        return Err(CoreError::invalid(format!(
            "formation ({}) must be shorter than the prices ({rows} observations)",
            cfg.formation
        )));
    }
    if cfg.max_pairs == 0 {
        return Err(CoreError::invalid("max_pairs must be at least 1"));
    }
    if !(cfg.cost_bps.is_finite() && cfg.cost_bps >= 0.0) {
        return Err(CoreError::invalid(format!(
            "cost_bps must be a non-negative finite number, got {}",
            cfg.cost_bps
        )));
    }
    cfg.signal.validate()?;
    if let Hedge::Kalman {
        delta,
        observation_var,
    } = cfg.hedge
    {
        crate::kalman::check_params(delta, observation_var)?;
    }
    Ok(step)
}

fn slice_rows(prices: &[f64], cols: usize, a: usize, b: usize) -> &[f64] {
    &prices[a * cols..b * cols]
}

/// Chooses pairs on rows `[a, b)` and fixes their parameters.
fn select(
    prices: &[f64],
    cols: usize,
    a: usize,
    b: usize,
    cfg: &WalkForwardConfig,
    window: usize,
) -> CoreResult<Vec<Selection>> {
    let mut sc = cfg.selection.clone();
    sc.top = Some(cfg.max_pairs);
    let f = slice_rows(prices, cols, a, b);
    let r = pairs::scan_pairs(f, b - a, cols, &sc, &mut |_, _, _| true)?;
    Ok(r.rows
        .iter()
        .map(|p| {
            let s: Vec<f64> = (a..b)
                .map(|t| {
                    prices[t * cols + p.i] - p.hedge_ratio * prices[t * cols + p.j] - p.intercept
                })
                .collect();
            let m = s.iter().sum::<f64>() / s.len() as f64;
            let sd = (s.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / s.len() as f64).sqrt();
            Selection {
                window,
                i: p.i,
                j: p.j,
                pvalue: p.pvalue,
                hedge_ratio: p.hedge_ratio,
                intercept: p.intercept,
                spread_mean: pz(m),
                spread_std: pz(sd),
            }
        })
        .collect())
}

/// Per-bar returns of one pair traded on `[a, b)` (formation began at `f0`), with its trades,
/// turnover and costs. `ret[t − a]` is the return of bar t.
fn trade_pair(
    prices: &[f64],
    cols: usize,
    sel: &Selection,
    f0: usize,
    a: usize,
    b: usize,
    cfg: &WalkForwardConfig,
) -> CoreResult<(Vec<f64>, usize, f64, f64)> {
    let (i, j) = (sel.i, sel.j);
    let y = |t: usize| prices[t * cols + i];
    let x = |t: usize| prices[t * cols + j];
    let mut kal = match cfg.hedge {
        Hedge::Kalman {
            delta,
            observation_var,
        } => {
            let mut k = KalmanState::new(delta, observation_var)?;
            for t in f0..a {
                k.step(y(t), x(t));
            }
            Some(k)
        }
        Hedge::Ols => None,
    };
    let mut sm = SignalMachine::new(cfg.signal)?;
    let cost = cfg.cost_bps / 1e4;
    let mut ret = vec![0.0; b - a];
    let (mut pos, mut h, mut g) = (0i8, 0.0, 1.0);
    let (mut trades, mut turnover, mut costs) = (0usize, 0.0, 0.0);
    for t in a..b {
        // return of bar t from the position held during it
        if pos != 0 && t > a {
            let d = (y(t) - y(t - 1)) - h * (x(t) - x(t - 1));
            ret[t - a] += pos as f64 * d / g;
        }
        let (z, beta) = match kal.as_mut() {
            Some(k) => {
                let (bt, _, e, s) = k.step(y(t), x(t));
                (e / s, bt)
            }
            None => {
                let s = y(t) - sel.hedge_ratio * x(t) - sel.intercept;
                let z = if sel.spread_std > 0.0 {
                    (s - sel.spread_mean) / sel.spread_std
                } else {
                    0.0
                };
                (z, sel.hedge_ratio)
            }
        };
        let (signal, _) = sm.push(z);
        // the decision at the close of t; at the last bar everything is closed
        let target = if t + 1 == b { 0 } else { signal };
        if target != pos {
            let change = (target - pos).unsigned_abs() as f64;
            turnover += change;
            costs += change * cost;
            ret[t - a] -= change * cost;
            if target != 0 {
                trades += 1;
                h = beta;
                g = y(t).abs() + h.abs() * x(t).abs();
                if g.is_nan() || g <= 0.0 {
                    g = 1.0;
                }
            }
            pos = target;
        }
    }
    Ok((ret, trades, turnover, costs))
}

fn drawdown(eq: &[f64]) -> Vec<f64> {
    let mut peak = f64::NEG_INFINITY;
    eq.iter()
        .map(|&e| {
            peak = peak.max(e);
            pz(e / peak - 1.0)
        })
        .collect()
}

/// Mean return per bar over `sels` traded on `[a, b)`; adds trades/turnover/costs.
fn portfolio(
    prices: &[f64],
    cols: usize,
    sels: &[Selection],
    f0: usize,
    a: usize,
    b: usize,
    cfg: &WalkForwardConfig,
) -> CoreResult<(Vec<f64>, usize, f64, f64)> {
    let mut r = vec![0.0; b - a];
    let (mut trades, mut turnover, mut costs) = (0, 0.0, 0.0);
    if sels.is_empty() {
        return Ok((r, 0, 0.0, 0.0));
    }
    let k = sels.len() as f64;
    for s in sels {
        crate::limits::poll()?;
        let (ret, tr, tu, co) = trade_pair(prices, cols, s, f0, a, b, cfg)?;
        for (acc, v) in r.iter_mut().zip(&ret) {
            *acc += v / k;
        }
        trades += tr;
        turnover += tu / k;
        costs += co / k;
    }
    Ok((r, trades, turnover, costs))
}

/// Walk-forward of the row-major `rows × cols` prices (see the module documentation).
pub fn walk_forward(
    prices: &[f64],
    rows: usize,
    cols: usize,
    cfg: &WalkForwardConfig,
    progress: &mut dyn FnMut(usize, f64) -> bool,
) -> CoreResult<WalkForwardResult> {
    pairs::check_universe(prices, rows, cols)?;
    let step = check(cfg, rows)?;
    let _budget = crate::limits::reserve(&crate::limits::walk_forward(rows, cols, cfg.formation))?;
    let mut oos = vec![0.0; rows];
    let mut windows = Vec::new();
    let mut selections = Vec::new();
    let mut w = 0usize;
    let n_windows = (rows - cfg.formation).div_ceil(step);
    loop {
        let s = w * step;
        if s + cfg.formation >= rows {
            break;
        }
        let a = s + cfg.formation;
        let b = (a + cfg.trading).min(a + step).min(rows);
        let sels = select(prices, cols, s, a, cfg, w)?;
        let (r, trades, turnover, costs) = portfolio(prices, cols, &sels, s, a, b, cfg)?;
        oos[a..b].copy_from_slice(&r);
        let pnl = r.iter().fold(1.0, |e, v| ruin_floor(e * (1.0 + v))) - 1.0;
        windows.push(WindowRow {
            formation_start: s,
            trading_start: a,
            trading_end: b,
            n_pairs: sels.len(),
            trades,
            pnl: pz(pnl),
            turnover: pz(turnover),
            costs: pz(costs),
        });
        selections.extend(sels);
        w += 1;
        if !progress(w, w as f64 / n_windows.max(1) as f64) {
            return Err(CoreError::Cancelled);
        }
    }
    let equity = |r: &[f64]| {
        let mut e = 1.0;
        r.iter()
            .map(|v| {
                e = ruin_floor(e * (1.0 + v));
                pz(e)
            })
            .collect::<Vec<f64>>()
    };
    let oos_equity = equity(&oos);
    // in-sample: the same rule with everything chosen on the whole sample
    let is_sel = select(prices, cols, 0, rows, cfg, 0)?;
    let (is_r, ..) = portfolio(prices, cols, &is_sel, 0, 0, rows, cfg)?;
    let is_equity = equity(&is_r);
    Ok(WalkForwardResult {
        oos_drawdown: drawdown(&oos_equity),
        is_drawdown: drawdown(&is_equity),
        oos_equity,
        is_equity,
        windows,
        selections,
        is_selections: is_sel,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uni(rows: usize, seed: u64) -> Vec<f64> {
        let mut rnd = crate::num::uniform(seed.wrapping_add(99));
        let cols = 4;
        let mut p = vec![0.0; rows * cols];
        let (mut a, mut b, mut e) = (100.0, 80.0, 0.0);
        for t in 0..rows {
            a += rnd();
            b += rnd();
            e = 0.8 * e + rnd();
            p[t * cols] = a;
            p[t * cols + 1] = b;
            p[t * cols + 2] = 1.2 * a + 10.0 + e;
            p[t * cols + 3] = 50.0 + 0.5 * b + 5.0 * rnd() + t as f64 * 0.01;
        }
        p
    }

    fn cfg(hedge: Hedge) -> WalkForwardConfig {
        WalkForwardConfig {
            formation: 120,
            trading: 40,
            step: None,
            selection: ScanConfig {
                max_pvalue: Some(0.05),
                ..Default::default()
            },
            max_pairs: 2,
            hedge,
            signal: SignalParams {
                entry: 1.5,
                exit: 0.0,
                stop: None,
            },
            cost_bps: 5.0,
        }
    }

    #[test]
    fn no_look_ahead_and_windows_tile() {
        let rows = 400;
        let p = uni(rows, 1);
        for hedge in [
            Hedge::Ols,
            Hedge::Kalman {
                delta: 1e-4,
                observation_var: 1e-2,
            },
        ] {
            let c = cfg(hedge);
            let r = walk_forward(&p, rows, 4, &c, &mut |_, _| true).unwrap();
            assert_eq!(r.windows[0].trading_start, 120);
            for w in r.windows.windows(2) {
                assert_eq!(w[0].trading_end, w[1].trading_start);
            }
            assert_eq!(r.windows.last().unwrap().trading_end, rows);
            assert!(r.selections.iter().any(|s| (s.i, s.j) == (0, 2)));
            // perturb the future after bar 250: everything decided before is unchanged
            let mut q = p.clone();
            for v in q[250 * 4..].iter_mut() {
                *v *= 1.3;
            }
            let r2 = walk_forward(&q, rows, 4, &c, &mut |_, _| true).unwrap();
            for (w, win) in r.windows.iter().enumerate() {
                if win.trading_start <= 250 {
                    let sa: Vec<_> = r.selections.iter().filter(|s| s.window == w).collect();
                    let sb: Vec<_> = r2.selections.iter().filter(|s| s.window == w).collect();
                    assert_eq!(sa, sb, "window {w}");
                }
            }
            assert_eq!(r.oos_equity[..250], r2.oos_equity[..250]);
        }
    }
}
