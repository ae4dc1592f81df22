//! ADF statistic and lag selection against statsmodels `adfuller(x, maxlag, regression="c",
//! autolag)` (values in tests/data, written by statsmodels 0.14 on seeded and real series).

use rustcore::adf::{adf, Autolag};
use std::collections::HashMap;

#[test]
fn adf_matches_statsmodels_adfuller() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/");
    let series: HashMap<String, Vec<f64>> = std::fs::read_to_string(format!("{dir}adf_series.txt"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut it = l.split_whitespace();
            let name = it.next().unwrap().to_string();
            (name, it.map(|v| v.parse().unwrap()).collect())
        })
        .collect();
    let mut checked = 0;
    let mut worst: f64 = 0.0;
    for line in std::fs::read_to_string(format!("{dir}adf_expected.txt"))
        .unwrap()
        .lines()
    {
        if line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        let x = &series[f[0]];
        let autolag = Autolag::parse(f[1]).unwrap();
        let max_lag: i64 = f[2].parse().unwrap();
        let (stat, lag, nobs): (f64, usize, usize) = (
            f[3].parse().unwrap(),
            f[4].parse().unwrap(),
            f[5].parse().unwrap(),
        );
        let r = adf(x, (max_lag >= 0).then_some(max_lag as usize), autolag).unwrap();
        assert_eq!((r.used_lag, r.nobs), (lag, nobs), "{line}");
        let rel = (r.statistic - stat).abs() / stat.abs().max(1.0);
        worst = worst.max(rel);
        assert!(rel < 1e-9, "{line}: {} vs {stat}", r.statistic);
        checked += 1;
    }
    assert_eq!(checked, 40);
    eprintln!("worst relative difference from statsmodels: {worst:e}");
}

#[test]
fn adf_rejects_bad_input() {
    let x: Vec<f64> = (0..50).map(|i| ((i * 7919) % 101) as f64).collect();
    assert!(adf(&x, Some(24), Autolag::Aic)
        .unwrap_err()
        .to_string()
        .contains("max_lag must be at most"));
    assert!(adf(&[1.0, 2.0, 4.0], None, Autolag::Aic)
        .unwrap_err()
        .to_string()
        .contains("too short"));
    assert!(adf(&[3.0; 40], None, Autolag::Aic)
        .unwrap_err()
        .to_string()
        .contains("singular"));
    assert!(Autolag::parse("aicc")
        .unwrap_err()
        .to_string()
        .contains("autolag must be one of"));
    let mut y = x.clone();
    y[3] = f64::NAN;
    assert!(adf(&y, None, Autolag::Aic)
        .unwrap_err()
        .to_string()
        .contains("NaN"));
}
