use super::lasso::Design;
use super::predictability::{bordered_min_eigenvalue, PredictabilityMatrices};
use super::spread::half_life_from_b;
use super::validate::first_duplicate_column;
use super::*;
use crate::linalg::{dot, symmetric_eigen};

fn no_progress() -> impl FnMut(usize, f64) -> bool {
    |_, _| true
}

/// Deterministic xorshift + Box-Muller normals.
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

/// T x N random-walk prices; asset 0 = 0.6·asset 1 + 0.4·asset 2 + AR(1) noise (cointegrated).
fn synthetic(t: usize, n: usize, seed: u64) -> Vec<f64> {
    let mut rng = Rng(seed);
    let mut p = vec![0.0; t * n];
    let mut e = 0.0;
    for j in 0..n {
        p[j] = 100.0;
    }
    for i in 1..t {
        let m = rng.normal();
        for j in 0..n {
            p[i * n + j] = p[(i - 1) * n + j] + 0.5 * m + rng.normal();
        }
    }
    for i in 0..t {
        e = 0.7 * e + rng.normal();
        p[i * n] = 20.0 + 0.6 * p[i * n + 1] + 0.4 * p[i * n + 2] + e;
    }
    p
}

/// 12 x 3 prices: column 0 = 100 + 2·x1 + 0.5·x2, with x1, x2 centred and orthogonal,
/// x_jᵀx_j / n = 1. Columns 1, 2 are 50 + x1, 50 + x2.
fn orthogonal() -> Vec<f64> {
    let x1 = [
        1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0,
    ];
    let x2 = [
        1.0, 1.0, -1.0, -1.0, 1.0, 1.0, -1.0, -1.0, 1.0, 1.0, -1.0, -1.0,
    ];
    let mut p = Vec::new();
    for i in 0..12 {
        p.extend_from_slice(&[
            100.0 + 2.0 * x1[i] + 0.5 * x2[i],
            50.0 + x1[i],
            50.0 + x2[i],
        ]);
    }
    p
}

fn lasso(lambda: f64, target: Option<usize>) -> SparseConfig {
    SparseConfig {
        method: SparseMethod::Lasso,
        lambda,
        target,
        tolerance: 1e-12,
        max_iterations: 100_000,
        ..Default::default()
    }
}

fn assert_close(a: f64, b: f64, tol: f64) {
    assert!((a - b).abs() <= tol * (1.0 + b.abs()), "{a} vs {b}");
}

fn err_msg(r: CoreResult<impl std::fmt::Debug>) -> String {
    match r {
        Err(CoreError::InvalidInput(m)) | Err(CoreError::Numerical(m)) => m,
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn method_names() {
    for m in [
        SparseMethod::Lasso,
        SparseMethod::ElasticNet,
        SparseMethod::BoxTiao,
        SparseMethod::Greedy,
    ] {
        assert_eq!(SparseMethod::from_name(m.name()).unwrap(), m);
    }
    assert_eq!(
        SparseMethod::from_name("Elastic-Net").unwrap(),
        SparseMethod::ElasticNet
    );
    assert!(err_msg(SparseMethod::from_name("pca")).contains("method must be one of"));
}

#[test]
fn lasso_orthogonal_design_is_soft_thresholding() {
    let p = orthogonal();
    // λ = 0.2: β = (2 − 0.2, 0.5 − 0.2) = (1.8, 0.3).
    let r = sparse_portfolio(&p, 12, 3, &lasso(0.2, Some(0)), &mut no_progress()).unwrap();
    assert_eq!(r.method, "lasso");
    assert_eq!(r.target_index, Some(0));
    assert_close(r.weights[0], 1.0, 0.0);
    assert_close(r.weights[1], -1.8, 1e-10);
    assert_close(r.weights[2], -0.3, 1e-10);
    assert_eq!(r.nonzero, 3);
    assert_close(r.intercept, 100.0 - 50.0 * 1.8 - 50.0 * 0.3, 1e-10);
    // Residual = 0.2·x1 + 0.2·x2 → RSS/(2n) = 0.04; penalty 0.2·2.1 = 0.42.
    assert_close(r.objective, 0.04 + 0.42, 1e-10);
    // Spread = basket · prices, its mean is the intercept.
    let mean = r.spread.iter().sum::<f64>() / 12.0;
    assert_close(mean, r.intercept, 1e-10);
    assert_close(r.spread[0], p[0] - 1.8 * p[1] - 0.3 * p[2], 1e-12);
    // λ = 1: the second hedge drops out; β1 = 1.
    let r = sparse_portfolio(&p, 12, 3, &lasso(1.0, Some(0)), &mut no_progress()).unwrap();
    assert_close(r.weights[1], -1.0, 1e-10);
    assert_eq!(r.weights[2], 0.0);
    assert_eq!(r.nonzero, 2);
    // Elastic net λ = 1, α = 0.5: β = S(c, 0.5) / (1 + 0.5) = (1, 0).
    let cfg = SparseConfig {
        method: SparseMethod::ElasticNet,
        alpha: 0.5,
        ..lasso(1.0, Some(0))
    };
    let r = sparse_portfolio(&p, 12, 3, &cfg, &mut no_progress()).unwrap();
    assert_eq!(r.method, "elastic_net");
    assert_close(r.weights[1], -1.0, 1e-10);
    assert_eq!(r.weights[2], 0.0);
    // λ above λ_max = 2: nothing selected, half-life and ADF of the target itself.
    let r = sparse_portfolio(&p, 12, 3, &lasso(5.0, Some(0)), &mut no_progress()).unwrap();
    assert_eq!(r.nonzero, 1);
    assert_eq!(r.weights, vec![1.0, 0.0, 0.0]);
    assert_eq!(r.iterations, 1, "one sweep certifies β = 0");
    let st = ar1_mean_reversion(&p.iter().step_by(3).copied().collect::<Vec<_>>()).unwrap();
    assert_eq!(r.adf_statistic, st.adf_statistic);
}

#[test]
fn ar1_exact_geometric_decay() {
    // s_t = 0.5 s_{t-1}: Δs = −0.5 s_{t−1} exactly → b = −0.5, half-life 1, ADF −∞.
    let s: Vec<f64> = (0..20).map(|i| 0.5f64.powi(i)).collect();
    let st = ar1_mean_reversion(&s).unwrap();
    assert_close(st.b, -0.5, 1e-12);
    assert_close(st.half_life, 1.0, 1e-10);
    assert!(st.adf_statistic < -1e6);
    // A trending series does not mean-revert.
    let s: Vec<f64> = (0..20).map(|i| (i as f64).powi(2)).collect();
    assert_eq!(ar1_mean_reversion(&s).unwrap().half_life, f64::INFINITY);
    // A constant series: perfect reversion.
    let st = ar1_mean_reversion(&[3.0; 10]).unwrap();
    assert_eq!(st.adf_statistic, f64::NEG_INFINITY);
    assert_eq!(st.half_life, 0.0);
    assert!(err_msg(ar1_mean_reversion(&[1.0, 2.0, 3.0])).contains("at least 4"));
    // constant to rounding at 3.4e9 (a perfect hedge): −∞ / 0; flat but for the last value: refused
    let lvl = -3.38237969944261e9;
    let mut s = vec![lvl; 40];
    s[39] = lvl + 4.8e-7; // one ulp: still constant to rounding
    let st = ar1_mean_reversion(&s).unwrap();
    assert_eq!((st.adf_statistic, st.half_life), (f64::NEG_INFINITY, 0.0));
    s[39] = lvl + 1.0;
    assert!(err_msg(ar1_mean_reversion(&s)).contains("constant except its last value"));
    assert!(err_msg(ar1_mean_reversion(&[1.0, 2.0, f64::NAN, 3.0])).contains("NaN"));
}

#[test]
fn ar1_statistic_by_hand() {
    // s = [0, 2, 1, 3, 2]: x = s[..4], d = [2, −1, 2, −1]; x̄ = 1.5, d̄ = 0.5,
    // Sxx = 5, Sxd = Σ(x−x̄)(d−d̄) = (−1.5)(1.5)+(0.5)(−1.5)+(−0.5)(1.5)+(1.5)(−1.5) = −6
    // b = −1.2; residuals e = (d−d̄) − b(x−x̄) = [−0.3, −0.9, 0.9, 0.3]; RSS = 1.8;
    // se = sqrt(1.8 / 2 / 5) = sqrt(0.18); t = −1.2 / sqrt(0.18).
    let st = ar1_mean_reversion(&[0.0, 2.0, 1.0, 3.0, 2.0]).unwrap();
    assert_close(st.b, -1.2, 1e-12);
    assert_close(st.a, 0.5 + 1.2 * 1.5, 1e-12);
    assert_close(st.adf_statistic, -1.2 / 0.18f64.sqrt(), 1e-12);
    // b <= −1 (the deviation flips sign every step): no OU half-life, as in the OU fit.
    assert_eq!(st.half_life, f64::INFINITY);
    assert_eq!(half_life_from_b(-1.0), f64::INFINITY);
    assert_eq!(half_life_from_b(-2.5), f64::INFINITY);
    assert_eq!(half_life_from_b(0.0), f64::INFINITY);
    assert_close(half_life_from_b(-0.5), 1.0, 1e-12);
}

#[test]
fn critical_values_match_mackinnon_table() {
    let c = engle_granger_critical_values(1, usize::MAX);
    assert_close(c[0], -3.43035, 1e-12);
    let c = engle_granger_critical_values(2, 100);
    assert_close(c[0], -3.89644 - 10.9519 / 100.0 - 33.527 / 1e4, 1e-12);
    assert_close(c[1], -3.33613 - 6.1101 / 100.0 - 6.823 / 1e4, 1e-12);
    assert_close(c[2], -3.04445 - 4.2412 / 100.0 - 2.720 / 1e4, 1e-12);
    assert_eq!(
        engle_granger_critical_values(40, 500),
        engle_granger_critical_values(12, 500)
    );
    assert!(c[0] < c[1] && c[1] < c[2]);
}

#[test]
fn lasso_finds_the_cointegrating_pair_and_kkt_holds() {
    let (t, n) = (800, 6);
    let p = synthetic(t, n, 7);
    let r = sparse_portfolio(&p, t, n, &lasso(0.5, Some(0)), &mut no_progress()).unwrap();
    assert!(
        r.weights[1] < -0.3 && r.weights[2] < -0.2,
        "{:?}",
        r.weights
    );
    assert!(
        r.adf_statistic < r.adf_critical_values[0],
        "spread should be stationary"
    );
    assert!(r.half_life.is_finite() && r.half_life > 0.0);
    assert_eq!(
        r.adf_critical_values,
        engle_granger_critical_values(r.nonzero, t - 1).to_vec()
    );
    // KKT conditions of 1/(2n)‖r‖² + λ‖β‖₁ on the centred data.
    let mut means = vec![0.0; n];
    for i in 0..t {
        for j in 0..n {
            means[j] += p[i * n + j] / t as f64;
        }
    }
    let resid: Vec<f64> = (0..t).map(|i| r.spread[i] - r.intercept).collect();
    for j in 1..n {
        let g: f64 = (0..t)
            .map(|i| (p[i * n + j] - means[j]) * resid[i])
            .sum::<f64>()
            / t as f64;
        if r.weights[j] != 0.0 {
            // x_jᵀr/n = λ·sign(β_j) and β_j = −w_j.
            assert_close(g, 0.5 * (-r.weights[j]).signum(), 1e-6);
        } else {
            assert!(g.abs() <= 0.5 + 1e-6);
        }
    }
}

#[test]
fn automatic_target_is_the_most_mean_reverting() {
    let (t, n) = (400, 5);
    let p = synthetic(t, n, 11);
    let best = sparse_portfolio(&p, t, n, &lasso(0.3, None), &mut no_progress()).unwrap();
    let mut adfs = vec![];
    for tg in 0..n {
        let r = sparse_portfolio(&p, t, n, &lasso(0.3, Some(tg)), &mut no_progress()).unwrap();
        adfs.push(r.adf_statistic);
    }
    let argmin = (0..n)
        .min_by(|&a, &b| adfs[a].partial_cmp(&adfs[b]).unwrap())
        .unwrap();
    assert_eq!(best.target_index, Some(argmin));
    assert_eq!(best.adf_statistic, adfs[argmin]);
}

#[test]
fn lambda_path_matches_single_fits() {
    let (t, n) = (500, 8);
    let p = synthetic(t, n, 3);
    let cfg = LambdaPathConfig {
        target: 0,
        n_lambdas: 8,
        tolerance: 1e-12,
        max_iterations: 100_000,
        ..Default::default()
    };
    let path = sparse_lambda_path(&p, t, n, &cfg, &mut no_progress()).unwrap();
    assert_eq!(path.lambdas.len(), 8);
    assert_eq!(path.nonzero[0], 1, "λ_max selects nothing");
    assert!(path.lambdas.windows(2).all(|w| w[0] > w[1]));
    assert_close(path.lambdas[7], path.lambdas[0] * 1e-3, 1e-12);
    for (l, &lam) in path.lambdas.iter().enumerate() {
        let r = sparse_portfolio(&p, t, n, &lasso(lam, Some(0)), &mut no_progress()).unwrap();
        assert_eq!(r.nonzero, path.nonzero[l]);
        assert_close(r.adf_statistic, path.adf_statistic[l], 1e-7);
        for j in 0..n {
            assert!((r.weights[j] - path.weights[l * n + j]).abs() < 1e-8);
        }
    }
    // User λ in any order are reported in that order.
    let lams = vec![0.01, 1.0, 0.1];
    let cfg2 = LambdaPathConfig {
        lambdas: Some(lams.clone()),
        ..cfg.clone()
    };
    let p2 = sparse_lambda_path(&p, t, n, &cfg2, &mut no_progress()).unwrap();
    assert_eq!(p2.lambdas, lams);
    assert!(p2.nonzero[1] <= p2.nonzero[2] && p2.nonzero[2] <= p2.nonzero[0]);
}

#[test]
fn symmetric_eigen_small_cases() {
    let (v, q) = symmetric_eigen(&[2.0, 1.0, 1.0, 2.0], 2).unwrap();
    assert_close(v[0], 1.0, 1e-14);
    assert_close(v[1], 3.0, 1e-14);
    assert_close(q[0].abs(), 0.5f64.sqrt(), 1e-14);
    let mut rng = Rng(5);
    let n = 9;
    let b: Vec<f64> = (0..n * n).map(|_| rng.normal()).collect();
    let mut a = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            a[i * n + j] = b[i * n + j] + b[j * n + i];
        }
    }
    let (vals, vecs) = symmetric_eigen(&a, n).unwrap();
    for e in 0..n {
        let v = &vecs[e * n..(e + 1) * n];
        for i in 0..n {
            let av: f64 = (0..n).map(|k| a[i * n + k] * v[k]).sum();
            assert!((av - vals[e] * v[i]).abs() < 1e-12);
        }
        // Orthonormal.
        assert_close(dot(v, v), 1.0, 1e-13);
    }
    assert!(vals.windows(2).all(|w| w[0] <= w[1]));
    // The secular-equation minimum equals the direct one for a bordered matrix.
    let d = [0.5, 1.0, 2.0];
    let z = [0.3, -0.2, 0.7];
    let gamma = 1.5;
    let mut m = vec![0.0; 16];
    for i in 0..3 {
        m[i * 4 + i] = d[i];
        m[i * 4 + 3] = z[i];
        m[3 * 4 + i] = z[i];
    }
    m[15] = gamma;
    let (direct, _) = symmetric_eigen(&m, 4).unwrap();
    let z2: Vec<f64> = z.iter().map(|v| v * v).collect();
    assert_close(bordered_min_eigenvalue(&d, &z2, gamma), direct[0], 1e-13);
}

#[test]
fn box_tiao_invariants_and_greedy() {
    let (t, n) = (600, 6);
    let p = synthetic(t, n, 21);
    let cfg = SparseConfig {
        method: SparseMethod::BoxTiao,
        ..Default::default()
    };
    let bt = sparse_portfolio(&p, t, n, &cfg, &mut no_progress()).unwrap();
    assert_eq!(bt.target_index, None);
    assert_close(bt.weights.iter().map(|w| w * w).sum::<f64>(), 1.0, 1e-12);
    let imax = (0..n)
        .max_by(|&a, &b| {
            bt.weights[a]
                .abs()
                .partial_cmp(&bt.weights[b].abs())
                .unwrap()
        })
        .unwrap();
    assert!(bt.weights[imax] > 0.0);
    let pm = PredictabilityMatrices::new(&p, t, n).unwrap();
    let rq = |w: &[f64]| {
        let (mut num, mut den) = (0.0, 0.0);
        for i in 0..n {
            for j in 0..n {
                num += w[i] * pm.m[i * n + j] * w[j];
                den += w[i] * pm.g0[i * n + j] * w[j];
            }
        }
        num / den
    };
    assert_close(rq(&bt.weights), bt.objective, 1e-10);
    for i in 0..n {
        assert!(bt.objective <= pm.m[i * n + i] / pm.g0[i * n + i] + 1e-12);
    }
    assert_close(
        bt.intercept,
        bt.spread.iter().sum::<f64>() / t as f64,
        1e-12,
    );
    // Greedy: k nonzeros, no better than Box-Tiao, equal to it at k = N.
    let mut steps = vec![];
    for k in 2..=n {
        let cfg = SparseConfig {
            method: SparseMethod::Greedy,
            k: Some(k),
            ..Default::default()
        };
        let g = sparse_portfolio(&p, t, n, &cfg, &mut |i, v| {
            steps.push((i, v));
            true
        })
        .unwrap();
        assert_eq!(g.nonzero, k);
        assert_eq!(g.iterations, k - 1);
        assert!(g.objective >= bt.objective - 1e-12);
        assert_close(rq(&g.weights), g.objective, 1e-10);
        if k == n {
            assert_close(g.objective, bt.objective, 1e-10);
            for j in 0..n {
                assert!((g.weights[j] - bt.weights[j]).abs() < 1e-8);
            }
        }
    }
    assert!(!steps.is_empty());
}

#[test]
fn input_errors() {
    let p = synthetic(50, 4, 1);
    let run = |cfg: &SparseConfig| sparse_portfolio(&p, 50, 4, cfg, &mut no_progress());
    let en = |lambda: f64, alpha: f64| SparseConfig {
        method: SparseMethod::ElasticNet,
        lambda,
        alpha,
        ..Default::default()
    };
    assert!(err_msg(run(&en(-0.1, 0.5))).contains("lambda must be a finite number >= 0"));
    assert!(err_msg(run(&en(f64::NAN, 0.5))).contains("lambda must be a finite number >= 0"));
    assert!(err_msg(run(&en(0.1, 1.5))).contains("alpha (the L1 ratio) must be between 0 and 1"));
    assert!(err_msg(run(&en(0.1, -0.1))).contains("alpha (the L1 ratio) must be between 0 and 1"));
    // Lasso ignores alpha.
    assert!(run(&SparseConfig {
        alpha: 7.0,
        lambda: 0.5,
        ..Default::default()
    })
    .is_ok());
    assert!(err_msg(run(&SparseConfig {
        target: Some(4),
        ..Default::default()
    }))
    .contains("target must be an asset index between 0 and 3"));
    assert!(err_msg(run(&SparseConfig {
        tolerance: 0.0,
        ..Default::default()
    }))
    .contains("tolerance"));
    assert!(err_msg(run(&SparseConfig {
        max_iterations: 0,
        ..Default::default()
    }))
    .contains("max_iterations"));
    let greedy = |k: Option<usize>| SparseConfig {
        method: SparseMethod::Greedy,
        k,
        ..Default::default()
    };
    assert!(err_msg(run(&greedy(None))).contains("k (the basket cardinality) is required"));
    assert!(err_msg(run(&greedy(Some(1))))
        .contains("k must be between 2 and the number of assets (4), got 1"));
    assert!(err_msg(run(&greedy(Some(5))))
        .contains("k must be between 2 and the number of assets (4), got 5"));
    // Shape and values.
    let one: Vec<f64> = (0..50).map(|i| i as f64).collect();
    assert!(err_msg(sparse_portfolio(
        &one,
        50,
        1,
        &SparseConfig::default(),
        &mut no_progress()
    ))
    .contains("at least 2 assets"));
    assert!(err_msg(sparse_portfolio(
        &p[..16],
        4,
        4,
        &SparseConfig::default(),
        &mut no_progress()
    ))
    .contains("at least 10 observations"));
    let mut bad = p.clone();
    bad[9] = f64::NAN;
    assert!(err_msg(sparse_portfolio(
        &bad,
        50,
        4,
        &SparseConfig::default(),
        &mut no_progress()
    ))
    .contains("prices contains NaN at row 2, column 1"));
    bad[9] = f64::INFINITY;
    assert!(err_msg(sparse_portfolio(
        &bad,
        50,
        4,
        &SparseConfig::default(),
        &mut no_progress()
    ))
    .contains("infinite"));
    assert!(err_msg(sparse_portfolio(
        &p[..199],
        50,
        4,
        &SparseConfig::default(),
        &mut no_progress()
    ))
    .contains("has 199 values"));
    // Duplicated and constant columns.
    let mut dup = p.clone();
    for i in 0..50 {
        dup[i * 4 + 3] = dup[i * 4 + 1];
    }
    assert!(err_msg(sparse_portfolio(
        &dup,
        50,
        4,
        &SparseConfig::default(),
        &mut no_progress()
    ))
    .contains("columns 1 and 3 are exactly duplicated"));
    let mut cst = p.clone();
    for i in 0..50 {
        cst[i * 4 + 2] = 5.0;
    }
    assert!(err_msg(sparse_portfolio(
        &cst,
        50,
        4,
        &SparseConfig::default(),
        &mut no_progress()
    ))
    .contains("column 2 is constant"));
    // Exact linear combination: singular Γ0 for Box-Tiao / greedy.
    let mut lin = p.clone();
    for i in 0..50 {
        lin[i * 4 + 3] = 2.0 * lin[i * 4 + 1] - 0.5 * lin[i * 4 + 2];
    }
    let bt = SparseConfig {
        method: SparseMethod::BoxTiao,
        ..Default::default()
    };
    let m = err_msg(sparse_portfolio(&lin, 50, 4, &bt, &mut no_progress()));
    assert!(m.contains("collinear") && m.contains("singular"), "{m}");
    let m = err_msg(sparse_portfolio(
        &lin,
        50,
        4,
        &greedy(Some(4)),
        &mut no_progress(),
    ));
    assert!(m.contains("collinear"), "{m}");
    // Too few observations for the VAR.
    let wide = synthetic(12, 11, 2);
    assert!(
        err_msg(sparse_portfolio(&wide, 12, 11, &bt, &mut no_progress()))
            .contains("need at least 13")
    );
    // Non-convergence is reported.
    let cfg = SparseConfig {
        lambda: 1e-4,
        max_iterations: 1,
        tolerance: 1e-12,
        target: Some(0),
        ..Default::default()
    };
    let e = sparse_portfolio(&p, 50, 4, &cfg, &mut no_progress());
    assert!(
        matches!(e, Err(CoreError::Numerical(ref m)) if m.contains("did not converge in 1 iterations"))
    );
}

#[test]
fn path_errors() {
    let p = synthetic(50, 4, 1);
    let run = |cfg: &LambdaPathConfig| sparse_lambda_path(&p, 50, 4, cfg, &mut no_progress());
    let d = LambdaPathConfig::default();
    assert!(err_msg(run(&LambdaPathConfig {
        target: 9,
        ..d.clone()
    }))
    .contains("target must be an asset index between 0 and 3, got 9"));
    assert!(err_msg(run(&LambdaPathConfig {
        lambdas: Some(vec![]),
        ..d.clone()
    }))
    .contains("lambdas is empty"));
    assert!(err_msg(run(&LambdaPathConfig {
        lambdas: Some(vec![0.1, -1.0]),
        ..d.clone()
    }))
    .contains("lambdas must be finite and >= 0, got -1 at index 1"));
    assert!(err_msg(run(&LambdaPathConfig {
        n_lambdas: 0,
        ..d.clone()
    }))
    .contains("n_lambdas must be between 1 and 1000, got 0"));
    assert!(err_msg(run(&LambdaPathConfig {
        alpha: 0.0,
        ..d.clone()
    }))
    .contains("give lambdas explicitly"));
    assert!(err_msg(run(&LambdaPathConfig {
        alpha: 2.0,
        ..d.clone()
    }))
    .contains("alpha (the L1 ratio) must be between 0 and 1"));
    assert!(run(&LambdaPathConfig {
        alpha: 0.0,
        lambdas: Some(vec![1.0, 0.1]),
        ..d.clone()
    })
    .is_ok());
}

#[test]
fn cancellation() {
    let p = synthetic(200, 5, 4);
    let mut calls = 0;
    let r = sparse_portfolio(&p, 200, 5, &lasso(0.01, Some(0)), &mut |_, _| {
        calls += 1;
        calls < 3
    });
    assert_eq!(r, Err(CoreError::Cancelled));
    let g = SparseConfig {
        method: SparseMethod::Greedy,
        k: Some(3),
        ..Default::default()
    };
    assert_eq!(
        sparse_portfolio(&p, 200, 5, &g, &mut |_, _| false),
        Err(CoreError::Cancelled)
    );
    let cfg = LambdaPathConfig::default();
    assert_eq!(
        sparse_lambda_path(&p, 200, 5, &cfg, &mut |_, _| false),
        Err(CoreError::Cancelled)
    );
}

/// Property (600 random cases): the hashing duplicate finder agrees with the naive O(cols²)
/// double loop it replaced, including the reported pair, with planted duplicates, -0.0/0.0
/// and columns equal on all but one row.
#[test]
fn duplicate_finder_matches_the_naive_double_loop() {
    fn naive(p: &[f64], rows: usize, cols: usize) -> Option<(usize, usize)> {
        for j in 0..cols {
            for k in (j + 1)..cols {
                if (0..rows).all(|t| p[t * cols + j] == p[t * cols + k]) {
                    return Some((j, k));
                }
            }
        }
        None
    }
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move |m: u64| {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s % m
    };
    for _ in 0..600 {
        let rows = 1 + next(6) as usize;
        let cols = 1 + next(12) as usize;
        // few distinct values, so accidental duplicates happen too
        let mut p: Vec<f64> = (0..rows * cols)
            .map(|_| [0.0, -0.0, 1.0, 2.5][next(4) as usize])
            .collect();
        for _ in 0..next(3) {
            let (a, b) = (next(cols as u64) as usize, next(cols as u64) as usize);
            for t in 0..rows {
                p[t * cols + b] = p[t * cols + a];
            }
            if next(2) == 0 {
                let t = next(rows as u64) as usize;
                p[t * cols + b] += 1.0; // equal on all but one row
            }
        }
        assert_eq!(
            first_duplicate_column(&p, rows, cols).unwrap(),
            naive(&p, rows, cols),
            "{rows}x{cols} {p:?}"
        );
    }
}

/// The dense design (the whole Gram matrix at once, few assets) and the lazy one (Gram rows on
/// demand, many assets) fit the same coefficients: same support, equal within the tolerance.
#[test]
fn dense_and_lazy_designs_agree() {
    for &(t, n, seed) in &[(300, 12, 1), (500, 40, 2), (200, 70, 3), (60, 150, 4)] {
        let p = synthetic(t, n, seed);
        let sums = super::validate::validate_prices(&p, t, n).unwrap();
        for &(lambda, alpha) in &[(0.05, 1.0), (0.5, 1.0), (3.0, 1.0), (0.1, 0.5), (1.0, 0.0)] {
            for target in [0, n - 1] {
                let mut fits = vec![];
                for dense in [false, true] {
                    let mut d = if dense {
                        Design::dense(&p, t, n, &sums)
                    } else {
                        Design::with_target(&p, t, n, &sums, Some(target))
                    }
                    .unwrap();
                    assert_eq!(d.is_dense(), dense);
                    let mut w = vec![0.0; n];
                    let f = d
                        .fit_single(
                            target,
                            lambda,
                            alpha,
                            1e-12,
                            1_000_000,
                            &mut w,
                            &mut 0,
                            &mut no_progress(),
                        )
                        .unwrap();
                    assert!(f.converged);
                    fits.push(d.basket(target, &w, lambda, alpha));
                }
                let (a, b) = (&fits[0], &fits[1]);
                let scale = a.weights.iter().fold(0.0f64, |m, v| m.max(v.abs()));
                for j in 0..n {
                    let (x, y) = (a.weights[j], b.weights[j]);
                    assert_eq!(x == 0.0, y == 0.0, "support differs at {j}: {x} vs {y}");
                    assert!(
                        (x - y).abs() <= 1e-8 * scale,
                        "{t}x{n} λ {lambda} α {alpha} target {target} asset {j}: {x} vs {y}"
                    );
                }
                assert!((a.objective - b.objective).abs() <= 1e-10 * a.objective.abs());
                assert!((a.intercept - b.intercept).abs() <= 1e-8 * a.intercept.abs().max(1.0));
            }
        }
    }
}
