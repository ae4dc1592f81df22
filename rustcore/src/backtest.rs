//! Vectorised single-asset backtest of a {−1, 0, +1} position series.
//!
//! # Conventions (no look-ahead)
//! `positions` must ALREADY be shifted: `positions[t]` is the position held from the close of bar
//! `t−1` to the close of bar `t`, so it must be decided with information up to bar `t−1` only.
//! With `c = cost_bps / 1e4` and `positions[−1] := 0`:
//!
//! * `returns[t] = positions[t]·(p[t]/p[t−1] − 1) − c·|positions[t] − positions[t−1]|` for `t ≥ 1`;
//!   `returns[0] = −c·|positions[0]|` (bar 0 has no previous close, so no price move; a non-zero
//!   `positions[0]` is opened at `p[0]` and pays its entry cost there). A flip −1 → +1 costs `2c`.
//! * `equity[t] = Π_{s≤t} (1 + returns[s])`: the starting capital 1.0 is the value just before
//!   bar 0, so `equity[0] = 1.0` unless `positions[0] ≠ 0` and `c > 0`. **Ruin**: a short whose
//!   price more than doubles in one bar loses more than the whole capital (`returns[t] < −1`);
//!   equity cannot compound below zero (a negative equity times a gain would lose more), so it is
//!   floored at 0 and stays 0 for the rest of the run (drawdown −1); a trade's compounded growth
//!   likewise (its `pnl ≥ −1 − 2c`). [`ruin_floor`] is the one rule, used by the walk-forward too.
//! * `drawdown[t] = equity[t] / max(1.0, max_{s≤t} equity[s]) − 1` (≤ 0);
//!   `max_drawdown = −min(drawdown)` is reported as a POSITIVE fraction (0.25 = 25 % below the peak).
//! * `total_return = equity[T−1] − 1`; `annual_return = equity[T−1]^(ppy/(T−1)) − 1` (geometric,
//!   `T−1` bar-to-bar periods; −1 if the final equity is ≤ 0).
//! * The per-period statistics use the `T−1` returns of bars `1..T` (bar 0 has no price move):
//!   `annual_volatility = std(ddof=1)·sqrt(ppy)`, `sharpe = mean/std(ddof=1)·sqrt(ppy)` (rf = 0),
//!   `sortino = mean/DD·sqrt(ppy)` with the downside deviation `DD = sqrt(Σ min(r, 0)² / (T−1))`
//!   (target 0, averaged over ALL periods, as Sortino & Price and empyrical). When the
//!   denominator is 0 the ratio is 0 if the mean is 0, else ±∞.
//! * Trades: a trade is a maximal run of bars with the same non-zero position (a flip closes one
//!   trade and opens the next). `entry` is the bar at whose close the position was opened
//!   (`max(first held bar − 1, 0)`, so `p[entry]` is the entry price), `exit` the bar at whose close
//!   it was closed (`last held bar`, `p[exit]` the exit price); `holding = exit − entry` bars.
//!   `pnl` is the trade's return on the capital at entry, compounded like the equity curve and
//!   net of the round-trip cost: `Π_{t=entry+1..exit} (1 + d·(p[t]/p[t−1] − 1)) − 1 − 2c`.
//!   Only CLOSED trades are listed and counted (a position still open at the last bar is not);
//!   `win_rate` is the fraction of closed trades with `pnl > 0`; `win_rate` and
//!   `avg_holding_bars` are 0.0 when there is no closed trade.

use crate::error::{check, CoreError, CoreResult};
use crate::num::{pz, pz_all};

/// Compounded equity (or growth) after a bar: `v` if positive, else +0.0 (ruin: the capital is
/// gone and stays gone, since 0 times any growth is 0). NaN stays NaN.
#[inline]
pub fn ruin_floor(v: f64) -> f64 {
    if v > 0.0 || v.is_nan() {
        v
    } else {
        0.0
    }
}

/// Fewest bars [`backtest`] accepts (two returns are needed for a sample standard deviation).
pub const MIN_BACKTEST_BARS: usize = 3;

#[derive(Debug, Clone, PartialEq)]
pub struct BacktestConfig {
    /// Cost per unit of position change, in basis points of the traded notional (≥ 0).
    pub cost_bps: f64,
    /// Bars per year for annualisation (252 for daily bars).
    pub periods_per_year: f64,
}

impl Default for BacktestConfig {
    fn default() -> Self {
        BacktestConfig {
            cost_bps: 0.0,
            periods_per_year: 252.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct BacktestResult {
    /// Equity at each close (length T), starting capital 1.0 before bar 0.
    pub equity: Vec<f64>,
    /// Net return of each bar (length T).
    pub returns: Vec<f64>,
    /// `equity / running peak − 1` (length T, ≤ 0).
    pub drawdown: Vec<f64>,
    pub total_return: f64,
    pub annual_return: f64,
    pub annual_volatility: f64,
    pub sharpe: f64,
    pub sortino: f64,
    /// Largest peak-to-trough loss as a positive fraction.
    pub max_drawdown: f64,
    /// Number of closed trades.
    pub n_trades: usize,
    pub win_rate: f64,
    pub avg_holding_bars: f64,
    /// Bar index of each closed trade's entry (price `p[entry]`).
    pub trade_entries: Vec<usize>,
    /// Bar index of each closed trade's exit (price `p[exit]`).
    pub trade_exits: Vec<usize>,
    /// +1 long, −1 short.
    pub trade_directions: Vec<i8>,
    /// Net return of each closed trade (see the module documentation).
    pub trade_pnls: Vec<f64>,
}

impl BacktestResult {
    /// Signed zeros to +0.0 (both transports bit-identical; proto3 drops −0.0).
    fn no_neg_zero(mut self) -> Self {
        for v in [
            &mut self.equity,
            &mut self.returns,
            &mut self.drawdown,
            &mut self.trade_pnls,
        ] {
            pz_all(v);
        }
        for v in [
            &mut self.total_return,
            &mut self.annual_return,
            &mut self.annual_volatility,
            &mut self.sharpe,
            &mut self.sortino,
            &mut self.max_drawdown,
            &mut self.win_rate,
            &mut self.avg_holding_bars,
        ] {
            *v = pz(*v);
        }
        self
    }
}

fn ratio(num: f64, den: f64) -> f64 {
    if den > 0.0 {
        num / den
    } else if num == 0.0 {
        0.0
    } else {
        num.signum() * f64::INFINITY
    }
}

/// The checks both backtests share, in their order: finite inputs, equal lengths, enough bars.
fn check_series(series: &[f64], positions: &[f64]) -> CoreResult<()> {
    check::finite("prices", series)?;
    check::finite("positions", positions)?;
    let t_len = series.len();
    if positions.len() != t_len {
        return Err(CoreError::invalid(format!(
            "positions has length {} but prices has length {t_len}: they must match",
            positions.len()
        )));
    }
    if t_len < MIN_BACKTEST_BARS {
        return Err(CoreError::invalid(format!(
            "prices must have at least {MIN_BACKTEST_BARS} bars, got {t_len}"
        )));
    }
    Ok(())
}

/// The checks both backtests make after their own (positions in {−1, 0, 1}, costs, annualisation).
fn check_positions_and_config(positions: &[f64], config: &BacktestConfig) -> CoreResult<()> {
    if let Some(i) = positions
        .iter()
        .position(|&q| q != -1.0 && q != 0.0 && q != 1.0)
    {
        return Err(CoreError::invalid(format!(
            "positions must be -1, 0 or 1, got {} at index {i}",
            positions[i]
        )));
    }
    if !(config.cost_bps.is_finite() && config.cost_bps >= 0.0) {
        return Err(CoreError::invalid(format!(
            "cost_bps must be a non-negative finite number, got {}",
            config.cost_bps
        )));
    }
    check::positive("periods_per_year", config.periods_per_year)
}

/// Closed trades: maximal runs `start..end` of one non-zero position that end before the last
/// bar, as (entries, exits, directions, pnls); `pnl(d, entry, exit)` values one trade.
#[allow(clippy::type_complexity)] // the four columns of BacktestResult's trade table
fn trades(
    positions: &[f64],
    pnl: impl Fn(f64, usize, usize) -> f64,
) -> (Vec<usize>, Vec<usize>, Vec<i8>, Vec<f64>) {
    let t_len = positions.len();
    let (mut entries, mut exits, mut directions, mut pnls) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut start = 0usize;
    while start < t_len {
        let d = positions[start];
        let mut end = start + 1;
        while end < t_len && positions[end] == d {
            end += 1;
        }
        if d != 0.0 && end < t_len {
            let (entry, exit) = (start.saturating_sub(1), end - 1);
            entries.push(entry);
            exits.push(exit);
            directions.push(d as i8);
            pnls.push(pnl(d, entry, exit));
        }
        start = end;
    }
    (entries, exits, directions, pnls)
}

/// Per-period statistics over `returns[1..]` (bar 0 has no move): (mean, std with ddof = 1,
/// downside deviation with target 0 averaged over all periods).
fn moments(returns: &[f64]) -> (f64, f64, f64) {
    let rs = &returns[1..];
    let k = rs.len() as f64;
    let mean = rs.iter().sum::<f64>() / k;
    let mut ss = 0.0;
    let mut down = 0.0;
    for &r in rs {
        ss += (r - mean) * (r - mean);
        let m = r.min(0.0);
        down += m * m;
    }
    (mean, (ss / (k - 1.0)).sqrt(), (down / k).sqrt())
}

/// (win rate, average holding in bars) of the closed trades; 0.0 and 0.0 without any.
fn trade_summary(entries: &[usize], exits: &[usize], pnls: &[f64]) -> (f64, f64) {
    let n = pnls.len();
    if n == 0 {
        return (0.0, 0.0);
    }
    let wins = pnls.iter().filter(|&&p| p > 0.0).count();
    let hold: usize = exits.iter().zip(entries).map(|(x, e)| x - e).sum();
    (wins as f64 / n as f64, hold as f64 / n as f64)
}

/// Backtest `positions` (values −1, 0, +1, already shifted) on `prices` (see the module docs).
pub fn backtest(
    prices: &[f64],
    positions: &[f64],
    config: &BacktestConfig,
) -> CoreResult<BacktestResult> {
    check_series(prices, positions)?;
    let t_len = prices.len();
    if let Some(i) = prices.iter().position(|&p| p <= 0.0) {
        return Err(CoreError::invalid(format!(
            "prices must be positive, got {} at index {i}",
            prices[i]
        )));
    }
    check_positions_and_config(positions, config)?;
    let _budget = crate::limits::reserve(&crate::limits::backtest(t_len))?;
    let c = config.cost_bps / 1e4;
    let ppy = config.periods_per_year;

    // Pass 1: per-bar returns (independent across bars, so the compiler can vectorise).
    let mut returns = Vec::with_capacity(t_len);
    returns.push(-c * positions[0].abs());
    returns.extend(
        prices
            .windows(2)
            .zip(positions.windows(2))
            .map(|(p, q)| q[1] * (p[1] / p[0] - 1.0) - c * (q[1] - q[0]).abs()),
    );

    crate::limits::poll()?; // each pass over 64M bars (the message limit) takes ~0.1 s
                            // Pass 2: equity and drawdown (the running product and peak are serial).
    let mut equity = Vec::with_capacity(t_len);
    let mut drawdown = Vec::with_capacity(t_len);
    let mut eq = 1.0;
    let mut peak = 1.0f64;
    for &r in &returns {
        eq = ruin_floor(eq * (1.0 + r));
        peak = peak.max(eq);
        equity.push(eq);
        drawdown.push(eq / peak - 1.0);
    }

    crate::limits::poll()?;
    // Pass 3: the closed trades, each compounded like the equity curve, net of its round trip.
    let (trade_entries, trade_exits, trade_directions, trade_pnls) =
        trades(positions, |d, entry, exit| {
            let mut growth = 1.0;
            for t in entry + 1..=exit {
                growth = ruin_floor(growth * (1.0 + d * (prices[t] / prices[t - 1] - 1.0)));
            }
            growth - 1.0 - 2.0 * c
        });

    // Statistics over returns[1..].
    let (mean, std, dd) = moments(&returns);
    let k = (returns.len() - 1) as f64;
    let sq = ppy.sqrt();
    let sharpe = ratio(mean, std) * sq;
    let sortino = ratio(mean, dd) * sq;
    let final_eq = eq;
    let total_return = final_eq - 1.0;
    let annual_return = if final_eq > 0.0 {
        final_eq.powf(ppy / k) - 1.0
    } else {
        -1.0
    };
    let max_drawdown = 0.0 - drawdown.iter().cloned().fold(0.0, f64::min);
    let n_trades = trade_pnls.len();
    let (win_rate, avg_holding_bars) = trade_summary(&trade_entries, &trade_exits, &trade_pnls);

    Ok(BacktestResult {
        equity,
        returns,
        drawdown,
        total_return,
        annual_return,
        annual_volatility: std * sq,
        sharpe,
        sortino,
        max_drawdown,
        n_trades,
        win_rate,
        avg_holding_bars,
        trade_entries,
        trade_exits,
        trade_directions,
        trade_pnls,
    }
    .no_neg_zero())
}

/// [`backtest`] (`units = "returns"`, positive prices) or [`backtest_pnl`] (`units = "pnl"`, any
/// finite series such as a spread); `notional` is only used in P&L units.
pub fn backtest_units(
    prices: &[f64],
    positions: &[f64],
    units: &str,
    notional: Option<&[f64]>,
    config: &BacktestConfig,
) -> CoreResult<BacktestResult> {
    match units {
        "" | "returns" => {
            if notional.is_some() {
                return Err(CoreError::invalid(
                    "notional is only used with units=\"pnl\"",
                ));
            }
            backtest(prices, positions, config)
        }
        "pnl" => backtest_pnl(prices, positions, notional, config),
        other => Err(CoreError::invalid(format!(
            "units must be \"returns\" or \"pnl\", got {other:?}"
        ))),
    }
}

/// Backtest of `positions` on a SPREAD (any finite values, e.g. a basket's value, which may cross
/// zero), in P&L units of the spread: with `c = cost_bps / 1e4`, `N[t] = notional[t]` (the traded
/// notional per unit of position at bar t, e.g. the basket's gross value Σ|wᵢ|·pᵢ) or `|s[t]|` when
/// none is given, and `positions[−1] := 0`:
///
/// * `pnl[t] = positions[t]·(s[t] − s[t−1]) − c·|positions[t] − positions[t−1]|·N[t−1]` for `t ≥ 1`,
///   `pnl[0] = −c·|positions[0]|·N[0]` (reported in `returns`);
/// * `equity[t] = Σ_{u≤t} pnl[u]` (cumulative P&L from 0), `drawdown[t] = equity[t] − max(0,
///   max_{u≤t} equity[u])` (≤ 0), `max_drawdown = −min(drawdown)` (positive, spread units);
/// * `total_return` is the total P&L `equity[T−1]`; `annual_return = mean(pnl[1..])·ppy`,
///   `annual_volatility = std(pnl[1..], ddof=1)·sqrt(ppy)`, Sharpe and Sortino as in [`backtest`]
///   on the P&L series (scale-free);
/// * trades as in [`backtest`], with `pnl = d·(s[exit] − s[entry]) − c·(N[entry] + N[exit])`.
pub fn backtest_pnl(
    spread: &[f64],
    positions: &[f64],
    notional: Option<&[f64]>,
    config: &BacktestConfig,
) -> CoreResult<BacktestResult> {
    check_series(spread, positions)?;
    let t_len = spread.len();
    if let Some(n) = notional {
        check::finite("notional", n)?;
        if n.len() != t_len {
            return Err(CoreError::invalid(format!(
                "notional has length {} but prices has length {t_len}: they must match",
                n.len()
            )));
        }
        if let Some(i) = n.iter().position(|&v| v < 0.0) {
            return Err(CoreError::invalid(format!(
                "notional must be non-negative, got {} at index {i}",
                n[i]
            )));
        }
    }
    check_positions_and_config(positions, config)?;
    let _budget = crate::limits::reserve(&crate::limits::backtest(t_len))?;
    let c = config.cost_bps / 1e4;
    let ppy = config.periods_per_year;
    let nt = |t: usize| notional.map_or(spread[t].abs(), |n| n[t]);

    let mut returns = Vec::with_capacity(t_len);
    returns.push(-c * positions[0].abs() * nt(0));
    for t in 1..t_len {
        returns.push(
            positions[t] * (spread[t] - spread[t - 1])
                - c * (positions[t] - positions[t - 1]).abs() * nt(t - 1),
        );
    }
    let mut equity = Vec::with_capacity(t_len);
    let mut drawdown = Vec::with_capacity(t_len);
    let (mut eq, mut peak) = (0.0f64, 0.0f64);
    for &r in &returns {
        eq += r;
        peak = peak.max(eq);
        equity.push(eq);
        drawdown.push(eq - peak);
    }
    crate::limits::poll()?;
    let (trade_entries, trade_exits, trade_directions, trade_pnls) =
        trades(positions, |d, entry, exit| {
            d * (spread[exit] - spread[entry]) - c * (nt(entry) + nt(exit))
        });
    let (mean, std, dd) = moments(&returns);
    let sq = ppy.sqrt();
    let n_trades = trade_pnls.len();
    let (win_rate, avg_holding_bars) = trade_summary(&trade_entries, &trade_exits, &trade_pnls);
    let max_drawdown = 0.0 - drawdown.iter().cloned().fold(0.0, f64::min);
    Ok(BacktestResult {
        equity,
        returns,
        drawdown,
        total_return: eq,
        annual_return: mean * ppy,
        annual_volatility: std * sq,
        sharpe: ratio(mean, std) * sq,
        sortino: ratio(mean, dd) * sq,
        max_drawdown,
        n_trades,
        win_rate,
        avg_holding_bars,
        trade_entries,
        trade_exits,
        trade_directions,
        trade_pnls,
    }
    .no_neg_zero())
}

#[cfg(test)]
mod tests {
    #[test]
    fn pnl_units_hand_checked() {
        // spread crosses zero; long from bar 1 to 3, cost 100 bps on |s|
        let s = [1.0, -0.5, 0.5, 2.0, 1.0];
        let q = [0.0, 0.0, 1.0, 1.0, 0.0];
        let r = backtest_pnl(&s, &q, None, &cfg(100.0)).unwrap();
        let c = 0.01;
        let want = [0.0, 0.0, 1.0 - c * 0.5, 1.5, -c * 2.0];
        for (a, b) in r.returns.iter().zip(want) {
            assert!(close(*a, b), "{a} vs {b}");
        }
        assert!(close(r.total_return, want.iter().sum()));
        assert_eq!(r.trade_entries, vec![1]);
        assert_eq!(r.trade_exits, vec![3]);
        assert!(close(r.trade_pnls[0], 2.5 - c * (0.5 + 2.0)));
        let n = [10.0; 5];
        let r2 = backtest_pnl(&s, &q, Some(&n), &cfg(100.0)).unwrap();
        assert!(close(r2.returns[2], 1.0 - c * 10.0));
        assert!(backtest_pnl(&s, &q, Some(&[1.0; 4]), &cfg(1.0)).is_err());
        assert!(backtest_pnl(&s, &q, Some(&[-1.0; 5]), &cfg(1.0)).is_err());
    }

    use super::*;

    fn cfg(cost_bps: f64) -> BacktestConfig {
        BacktestConfig {
            cost_bps,
            periods_per_year: 252.0,
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-13 * (1.0 + a.abs().max(b.abs()))
    }

    #[test]
    fn five_bar_hand_checked() {
        let p = [100.0, 110.0, 99.0, 99.0, 108.9];
        let q = [0.0, 1.0, -1.0, -1.0, 0.0];
        let r = backtest(&p, &q, &cfg(10.0)).unwrap();
        let c = 0.001;
        let expect = [0.0, 0.1 - c, 0.1 - 2.0 * c, 0.0, -c];
        for (a, b) in r.returns.iter().zip(expect) {
            assert!(close(*a, b), "{a} vs {b}");
        }
        let mut eq = 1.0;
        for (t, &x) in expect.iter().enumerate() {
            eq *= 1.0 + x;
            assert!(close(r.equity[t], eq));
        }
        assert!(close(r.total_return, eq - 1.0));
        // Trades: long opened at close 0 (p=100), closed at close 1 (p=110): +10% - 2c.
        // Short opened at close 1 (p=110), held bars 2 and 3, closed at close 3 (99): +10% - 2c.
        assert_eq!(r.n_trades, 2);
        assert_eq!(r.trade_entries, vec![0, 1]);
        assert_eq!(r.trade_exits, vec![1, 3]);
        assert_eq!(r.trade_directions, vec![1, -1]);
        assert!(close(r.trade_pnls[0], 0.1 - 2.0 * c));
        assert!(close(r.trade_pnls[1], 0.1 - 2.0 * c));
        assert_eq!(r.win_rate, 1.0);
        assert_eq!(r.avg_holding_bars, 1.5);
        // Drawdown: only the last bar (cost) is below the peak.
        assert_eq!(&r.drawdown[..4], &[0.0, 0.0, 0.0, 0.0]);
        assert!(close(r.drawdown[4], -c));
        assert!(close(r.max_drawdown, c));
        // Stats over returns[1..]
        let rs = &expect[1..];
        let m = rs.iter().sum::<f64>() / 4.0;
        let sd = (rs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / 3.0).sqrt();
        assert!(close(r.sharpe, m / sd * 252f64.sqrt()));
        assert!(close(r.annual_volatility, sd * 252f64.sqrt()));
        let dd = (c * c / 4.0f64).sqrt();
        assert!(close(r.sortino, m / dd * 252f64.sqrt()));
        assert!(close(r.annual_return, eq.powf(252.0 / 4.0) - 1.0));
    }

    #[test]
    fn no_look_ahead_position_entered_at_bar_t_does_not_earn_bar_t() {
        // A jump at bar 2. A signal computed from bar 2's close becomes positions[3] (shifted) and
        // must not earn the jump; a position held at positions[2] (decided at close 1) does.
        let p = [100.0, 100.0, 150.0, 150.0, 150.0];
        let late = backtest(&p, &[0.0, 0.0, 0.0, 1.0, 1.0], &cfg(0.0)).unwrap();
        assert_eq!(late.total_return, 0.0);
        let early = backtest(&p, &[0.0, 0.0, 1.0, 1.0, 1.0], &cfg(0.0)).unwrap();
        assert!(close(early.total_return, 0.5));
    }

    #[test]
    fn buy_and_hold_and_open_trade_not_counted() {
        let p = [10.0, 11.0, 12.0, 9.0];
        let r = backtest(&p, &[1.0; 4], &cfg(5.0)).unwrap();
        assert!(close(r.returns[0], -0.0005));
        assert!(close(r.equity[3], (1.0 - 0.0005) * 0.9));
        assert_eq!(r.n_trades, 0);
        assert_eq!(r.win_rate, 0.0);
        assert_eq!(r.avg_holding_bars, 0.0);
        assert!(r.trade_pnls.is_empty());
    }

    #[test]
    fn position_from_bar_zero_closed_later() {
        let p = [10.0, 11.0, 12.0, 9.0];
        let r = backtest(&p, &[-1.0, -1.0, 0.0, 0.0], &cfg(0.0)).unwrap();
        assert_eq!(r.trade_entries, vec![0]);
        assert_eq!(r.trade_exits, vec![1]);
        assert!(close(r.trade_pnls[0], -0.1));
        assert_eq!(r.win_rate, 0.0);
        assert_eq!(r.avg_holding_bars, 1.0);
    }

    #[test]
    fn flat_positions_give_zero_stats() {
        let r = backtest(&[1.0, 2.0, 3.0], &[0.0; 3], &cfg(3.0)).unwrap();
        assert_eq!(r.equity, vec![1.0; 3]);
        assert_eq!(r.sharpe, 0.0);
        assert_eq!(r.sortino, 0.0);
        assert_eq!(r.max_drawdown, 0.0);
        assert_eq!(r.annual_return, 0.0);
    }

    #[test]
    fn short_wipeout_gives_minus_one_annual_return() {
        let r = backtest(&[1.0, 3.0, 3.0], &[0.0, -1.0, -1.0], &cfg(0.0)).unwrap();
        // the short loses 200 % of the capital: ruin, equity floored at 0 (not -1)
        assert_eq!(r.returns[1], -2.0);
        assert_eq!(r.equity, vec![1.0, 0.0, 0.0]);
        assert!(r.equity.iter().all(|e| !e.is_sign_negative()));
        assert_eq!(r.drawdown[1], -1.0);
        assert_eq!(r.max_drawdown, 1.0);
        assert_eq!(r.total_return, -1.0);
        assert_eq!(r.annual_return, -1.0);
    }

    #[test]
    fn ruin_is_absorbing_a_later_gain_does_not_make_it_worse() {
        // issue 13 sweep: equity used to go to -1 and then to -1.5 after the short's GAIN of 50 %
        let p = [1.0, 1.0, 3.0, 3.0, 1.5, 2.0];
        let q = [0.0, -1.0, -1.0, -1.0, -1.0, 0.0];
        let r = backtest(&p, &q, &cfg(0.0)).unwrap();
        assert_eq!(r.equity, vec![1.0, 1.0, 0.0, 0.0, 0.0, 0.0]);
        assert!(r.drawdown.iter().all(|d| (-1.0..=0.0).contains(d)));
        assert_eq!(r.trade_pnls, vec![-1.0]);
        assert_eq!(ruin_floor(-0.0).to_bits(), 0.0f64.to_bits());
        assert!(ruin_floor(f64::NAN).is_nan());
        assert_eq!(ruin_floor(0.25), 0.25);
    }

    #[test]
    fn errors() {
        let c = cfg(0.0);
        let e = backtest(&[1.0, 2.0, 3.0], &[0.0, 1.0], &c).unwrap_err();
        assert!(e.to_string().contains("length"), "{e}");
        let e = backtest(&[1.0, f64::NAN, 3.0], &[0.0; 3], &c).unwrap_err();
        assert!(
            e.to_string().contains("prices contains NaN at index 1"),
            "{e}"
        );
        let e = backtest(&[1.0, 2.0, 3.0], &[0.0, f64::NAN, 0.0], &c).unwrap_err();
        assert!(e.to_string().contains("positions contains NaN"), "{e}");
        let e = backtest(&[1.0, 0.0, 3.0], &[0.0; 3], &c).unwrap_err();
        assert!(e.to_string().contains("prices must be positive"), "{e}");
        let e = backtest(&[1.0, 2.0, 3.0], &[0.0, 0.5, 0.0], &c).unwrap_err();
        assert!(
            e.to_string()
                .contains("positions must be -1, 0 or 1, got 0.5 at index 1"),
            "{e}"
        );
        let e = backtest(&[1.0, 2.0, 3.0], &[0.0; 3], &cfg(-1.0)).unwrap_err();
        assert!(e.to_string().contains("cost_bps"), "{e}");
        let e = backtest(&[1.0, 2.0], &[0.0; 2], &c).unwrap_err();
        assert!(e.to_string().contains("at least 3"), "{e}");
        let e = backtest(
            &[1.0, 2.0, 3.0],
            &[0.0; 3],
            &BacktestConfig {
                cost_bps: 0.0,
                periods_per_year: 0.0,
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("periods_per_year"), "{e}");
        assert!(backtest(&[], &[], &c)
            .unwrap_err()
            .to_string()
            .contains("empty"));
    }

    #[test]
    fn drawdown_invariants() {
        let p: Vec<f64> = (0..200)
            .map(|i| 100.0 + 10.0 * ((i as f64) * 0.3).sin() + i as f64 * 0.05)
            .collect();
        let q: Vec<f64> = (0..200)
            .map(|i| [0.0, 1.0, 1.0, -1.0, 0.0][(i / 7) % 5])
            .collect();
        let r = backtest(&p, &q, &cfg(2.0)).unwrap();
        assert!(r.drawdown.iter().all(|&d| d <= 0.0));
        let mdd = -r.drawdown.iter().cloned().fold(0.0, f64::min);
        assert_eq!(r.max_drawdown, mdd);
        assert_eq!(r.trade_entries.len(), r.n_trades);
        // sum of position changes = 2 per closed trade (+ the still open one)
        assert!(r
            .trade_exits
            .iter()
            .zip(&r.trade_entries)
            .all(|(x, e)| x >= e));
    }
}
