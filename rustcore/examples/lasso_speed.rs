//! Lasso timing on bench-like data (random walks with a market factor, asset 0 cointegrated with
//! three others): `cargo run --release -p rustcore --example lasso_speed [T N lambda autolag]`.
use rustcore::adf::Autolag;
use rustcore::sparse::{sparse_portfolio, SparseConfig, SparseMethod};
use std::time::Instant;

struct Rng(u64);
impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// CPU time of this thread (ms) from /proc/thread-self/schedstat (robust to a loaded machine).
fn thread_cpu_ms() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(f64::NAN, |ns| ns * 1e-6)
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let t: usize = a.get(1).map_or(10000, |s| s.parse().unwrap());
    let n: usize = a.get(2).map_or(500, |s| s.parse().unwrap());
    let lambda: f64 = a.get(3).map_or(10.0, |s| s.parse().unwrap());
    let autolag = Autolag::parse(a.get(4).map_or("none", |s| s.as_str())).unwrap();
    let file = format!("/tmp/lasso_{t}x{n}.f64");
    let from_file = std::fs::read(&file).ok();
    let mut rng = Rng(7);
    let beta: Vec<f64> = (0..n).map(|_| 0.2 + 0.8 * rng.uniform()).collect();
    let mut p = vec![0.0; t * n];
    p[..n].fill(100.0);
    for i in 1..t {
        let m = rng.normal();
        for j in 0..n {
            p[i * n + j] = p[(i - 1) * n + j] + m * beta[j] + rng.normal();
        }
    }
    let mut e = 0.0;
    for i in 0..t {
        e = 0.8 * e + rng.normal();
        p[i * n] = 10.0 + 0.5 * p[i * n + 1] + 0.3 * p[i * n + 2] + 0.2 * p[i * n + 3] + e;
    }
    if let Some(b) = from_file {
        // the bench's data (desktop/hft_lab/bench/runner.py sparse_prices(t, n, seed=1))
        p = b
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        eprintln!("data from {file}");
    }
    let cfg = SparseConfig {
        method: SparseMethod::Lasso,
        lambda,
        target: Some(0),
        adf_autolag: autolag,
        ..Default::default()
    };
    let reps: usize = std::env::var("REPS")
        .ok()
        .map_or(15, |s| s.parse().unwrap());
    let mut times = Vec::new();
    let mut cpu = Vec::new();
    let mut last = None;
    let c_all = thread_cpu_ms();
    for _ in 0..reps {
        let s = Instant::now();
        let c = thread_cpu_ms();
        let r = sparse_portfolio(&p, t, n, &cfg, &mut |_, _| true).unwrap();
        cpu.push(thread_cpu_ms() - c);
        times.push(s.elapsed().as_secs_f64() * 1e3);
        last = Some(r);
    }
    let c_mean = (thread_cpu_ms() - c_all) / reps as f64;
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    cpu.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "thread CPU mean {c_mean:.3} ms, p50 {:.2} ms (min {:.2})",
        cpu[cpu.len() / 2],
        cpu[0]
    );
    let r = last.unwrap();
    println!(
        "{t}x{n} lambda {lambda}: p50 {:.2} ms (min {:.2}), nonzero {}, sweeps {}, adf {:.4} lag {}",
        times[times.len() / 2],
        times[0],
        r.nonzero,
        r.iterations,
        r.adf_statistic,
        r.adf_lag
    );
}
