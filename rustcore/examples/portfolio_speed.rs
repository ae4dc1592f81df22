//! Timing of the portfolio pipeline pieces (issue 16): `cargo run --release --example portfolio_speed`.
//! Prints the fastest time of moment estimation and of whole min_variance / max_sharpe solves on
//! seeded factor-model prices (T = max(500, 2N), as the bench cells). Arguments: the asset counts
//! (default 20 50 500), optionally `--reps R` (default 300, 30 from 500 assets) and
//! `--prices FILE` (raw little-endian float64, T x N row-major, N the one asset count given: e.g.
//! the bench's own prices, `factor_prices(50, 500, seed=50).tofile(FILE)`).

use rustcore::portfolio::{estimate_moments, optimize_portfolio, PortfolioConfig, PortfolioMethod};
use std::time::Instant;

fn prices(t: usize, n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut rnd = move || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 11) as f64 / (1u64 << 53) as f64) - 0.5
    };
    let betas: Vec<f64> = (0..n * 5).map(|_| rnd() * 2.0).collect();
    let alpha: Vec<f64> = (0..n).map(|_| 0.0004 + 0.0006 * rnd()).collect();
    let mut p = vec![0.0; t * n];
    let mut last = vec![100.0; n];
    for r in 0..t {
        let f: Vec<f64> = (0..5).map(|_| 0.0003 + 0.02 * rnd()).collect();
        for j in 0..n {
            let ret = alpha[j]
                + 0.3 * (0..5).map(|k| f[k] * betas[j * 5 + k]).sum::<f64>()
                + 0.02 * rnd();
            last[j] *= ret.exp();
            p[r * n + j] = last[j];
        }
    }
    p
}

fn fastest(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[0] // the minimum: the machine is shared (load 5-13), the fastest run is the cost
}

fn time<F: FnMut()>(reps: usize, mut f: F) -> f64 {
    f();
    fastest(
        (0..reps)
            .map(|_| {
                let t0 = Instant::now();
                f();
                t0.elapsed().as_secs_f64() * 1e6
            })
            .collect(),
    )
}

fn main() {
    let cfg = PortfolioConfig::default();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut sizes = Vec::new();
    let mut reps_arg = None;
    let mut file = None;
    let mut i = 0;
    while i < args.len() {
        if args[i] == "--reps" {
            reps_arg = args.get(i + 1).and_then(|v| v.parse::<usize>().ok());
            i += 2;
        } else if args[i] == "--prices" {
            file = args.get(i + 1).cloned();
            i += 2;
        } else {
            sizes.push(args[i].parse::<usize>().expect("an asset count"));
            i += 1;
        }
    }
    if sizes.is_empty() {
        sizes = vec![20, 50, 500];
    }
    for &n in &sizes {
        let (t, p) = match &file {
            Some(f) => {
                let b = std::fs::read(f).expect("the prices file");
                let p: Vec<f64> = b
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                    .collect();
                (p.len() / n, p)
            }
            None => {
                let t = 500.max(2 * n);
                (t, prices(t, n, n as u64))
            }
        };
        let reps = reps_arg.unwrap_or(if n >= 500 { 30 } else { 300 });
        let mom = time(reps, || {
            estimate_moments(&p, t, n, &cfg).unwrap();
        });
        let mut line = format!("n={n:4} T={t:5}  moments {mom:9.1} us");
        for m in [PortfolioMethod::MinVariance, PortfolioMethod::MaxSharpe] {
            let mut it = 0;
            let us = time(reps, || {
                it = optimize_portfolio(&p, t, n, m, &cfg, &mut |_, _| true)
                    .unwrap()
                    .iterations;
            });
            line += &format!("  {m} {us:9.1} us ({it} it)");
        }
        println!("{line}");
    }
}
