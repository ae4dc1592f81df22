//! Quick timing of the HMM fits (not a test; `make bench` is the real benchmark):
//! 1-D 100k x 3 states and 100k x 3 features x 3 states (diag, full), 20 EM iterations from a
//! fixed start, like the bench cells. `cargo run --release --example hmm_speed -p rustcore`
use rustcore::hmm::{run_hmm, HmmConfig, HmmInit};
use rustcore::hmm_mv::{run_hmm_mv, CovarianceType, MvConfig, MvInit};
use std::time::Instant;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.next();
        let u2 = self.next();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

/// CPU time of this thread in seconds (the machine is shared: wall time is noisy).
fn cpu() -> f64 {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    s.split_whitespace()
        .next()
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
        * 1e-9
}

fn main() {
    let n = 100_000;
    let reps: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let mut rng = Rng(88172645463325252);
    let mus = [-0.002, 0.0005, 0.001];
    let sds = [0.02, 0.008, 0.012];
    let mut s = 0usize;
    let mut x = Vec::with_capacity(n);
    let mut xm = Vec::with_capacity(n * 3);
    for _ in 0..n {
        if rng.next() < 0.02 {
            s = (rng.next() * 3.0) as usize % 3;
        }
        x.push(mus[s] + sds[s] * rng.normal());
        let (e0, e1, e2) = (rng.normal(), rng.normal(), rng.normal());
        xm.push(mus[s] + sds[s] * e0);
        xm.push(mus[s] + sds[s] * (0.5 * e0 + 0.8 * e1));
        xm.push(mus[s] + sds[s] * (0.3 * e0 + 0.2 * e1 + 0.9 * e2));
    }
    let cfg = HmmConfig {
        n_states: 3,
        max_iterations: 20,
        tolerance: 0.0,
        n_restarts: None,
        seed: 0,
        init: Some(HmmInit {
            start_prob: vec![1.0 / 3.0; 3],
            transmat: vec![0.9, 0.05, 0.05, 0.05, 0.9, 0.05, 0.05, 0.05, 0.9],
            means: vec![-0.01, 0.0, 0.01],
            variances: vec![4e-4, 1e-4, 2e-4],
        }),
    };
    for ct in [None, Some(CovarianceType::Diag), Some(CovarianceType::Full)] {
        let mut best = f64::INFINITY;
        let mut best_cpu = f64::INFINITY;
        let mut ll = 0.0;
        for _ in 0..reps {
            let t = Instant::now();
            let c0 = cpu();
            match ct {
                None => ll = run_hmm(&x, &cfg, &mut |_, _| true).unwrap().log_likelihood,
                Some(ct) => {
                    let mut cov = vec![0.0; 27];
                    for j in 0..3 {
                        for a in 0..3 {
                            cov[j * 9 + a * 4] = 2e-4;
                        }
                        if ct == CovarianceType::Full {
                            cov[j * 9 + 1] = 5e-5;
                            cov[j * 9 + 3] = 5e-5;
                        }
                    }
                    let mc = MvConfig {
                        n_states: 3,
                        max_iterations: 20,
                        tolerance: 0.0,
                        n_restarts: None,
                        seed: 0,
                        covariance_type: ct,
                        init: Some(MvInit {
                            start_prob: vec![1.0 / 3.0; 3],
                            transmat: vec![0.9, 0.05, 0.05, 0.05, 0.9, 0.05, 0.05, 0.05, 0.9],
                            means: vec![-0.01, -0.01, -0.01, 0.0, 0.0, 0.0, 0.01, 0.01, 0.01],
                            covars: cov,
                        }),
                    };
                    ll = run_hmm_mv(&xm, n, 3, &mc, &mut |_, _| true)
                        .unwrap()
                        .log_likelihood;
                }
            }
            best = best.min(t.elapsed().as_secs_f64());
            best_cpu = best_cpu.min(cpu() - c0);
        }
        println!(
            "{:>5}: best of {reps} wall {:.2} ms, cpu {:.2} ms  LL {ll:.17e}",
            ct.map_or("1-D", |c| c.name()),
            best * 1e3,
            best_cpu * 1e3
        );
    }
}
