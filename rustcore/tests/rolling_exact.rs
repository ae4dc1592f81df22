//! Property tests of the rolling z-score against a double-double two-pass reference, on series
//! built to hurt running sums: flat runs, jumps of 1 to 1e9 times the noise, levels from 1e-6 to
//! 1e9, tiny ticks after pauses. Checked at every bar, in batch and streaming (bit-identical).

use proptest::prelude::*;
use rustcore::rolling::{mean_reversion, MeanReversionState, SignalMachine, SignalParams};

/// Double-double (hi + lo) arithmetic, enough for an accurate reference.
#[derive(Clone, Copy, Debug)]
struct Dd(f64, f64);

fn two_sum(a: f64, b: f64) -> Dd {
    let s = a + b;
    let bb = s - a;
    Dd(s, (a - (s - bb)) + (b - bb))
}

fn add(a: Dd, b: Dd) -> Dd {
    let s = two_sum(a.0, b.0);
    two_sum(s.0, s.1 + a.1 + b.1)
}

fn mul(a: Dd, b: Dd) -> Dd {
    let p = a.0 * b.0;
    let e = a.0.mul_add(b.0, -p); // exact error of the product (fma)
    two_sum(p, e + a.0 * b.1 + a.1 * b.0)
}

fn neg(a: Dd) -> Dd {
    Dd(-a.0, -a.1)
}

/// Reference (mean, std, z) of one window ending with `x`, in double-double, two-pass.
fn reference(win: &[f64]) -> (f64, f64, f64) {
    let n = win.len() as f64;
    let mut s = Dd(0.0, 0.0);
    for &v in win {
        s = add(s, Dd(v, 0.0));
    }
    // mean = s / n, to double-double accuracy (one Newton step)
    let q = s.0 / n;
    let r = add(s, neg(mul(Dd(q, 0.0), Dd(n, 0.0))));
    let mean = two_sum(q, r.0 / n);
    let mut ss = Dd(0.0, 0.0);
    for &v in win {
        let d = add(Dd(v, 0.0), neg(mean));
        ss = add(ss, mul(d, d));
    }
    let var = (ss.0 + ss.1) / (n - 1.0);
    let sd = var.sqrt();
    let x = *win.last().unwrap();
    let dx = add(Dd(x, 0.0), neg(mean));
    let z = if sd > 0.0 { (dx.0 + dx.1) / sd } else { 0.0 };
    (mean.0 + mean.1, sd, z)
}

/// A hostile series: a level, noise, flat runs (repeated prices), jumps, pauses then tiny ticks.
fn series() -> impl Strategy<Value = (Vec<f64>, usize)> {
    series_of(60..260)
}

/// [`series`] with `len` bars.
fn series_of(len: std::ops::Range<usize>) -> impl Strategy<Value = (Vec<f64>, usize)> {
    (
        -6i32..=9,    // level 10^e
        -9i32..=-1,   // noise relative to the level 10^e
        0i32..=9,     // jump size, in noise units 10^e
        0.0f64..0.95, // probability that a bar repeats the previous price
        prop::collection::vec((any::<u32>(), any::<u32>()), len),
        2usize..40,
        any::<bool>(), // negative levels too
    )
        .prop_map(|(le, ne, je, p_flat, raw, w, negl)| {
            let level = 10f64.powi(le) * if negl { -1.0 } else { 1.0 };
            let noise = level.abs() * 10f64.powi(ne);
            let jump = noise * 10f64.powi(je);
            let n = raw.len();
            let mut x = Vec::with_capacity(n);
            let mut v = level;
            for (i, &(a, b)) in raw.iter().enumerate() {
                let u = a as f64 / u32::MAX as f64 - 0.5;
                let kind = b % 16;
                if i > 0 && (b as f64 / u32::MAX as f64) < p_flat {
                    // repeat (flat run)
                } else if kind == 0 {
                    v += if u > 0.0 { jump } else { -jump };
                } else if kind == 1 {
                    v += noise * 1e-6 * u.signum(); // a tiny tick (after a pause if the run was flat)
                } else if kind == 2 {
                    v = level + noise * u; // back to the level
                } else {
                    v += noise * u;
                }
                x.push(v);
            }
            (x, w.min(n))
        })
}

fn params() -> SignalParams {
    SignalParams {
        entry: 1.5,
        exit: 0.25,
        stop: Some(3.0),
    }
}

/// Series aimed at the fast path's boundary: a trend against small noise moves the window away
/// from the running sums' shift, so the error bound grows until the test fails (recomputation)
/// and many ticks pass it just below its limit; repeated prices and occasional jumps too.
fn boundary_series() -> impl Strategy<Value = (Vec<f64>, usize)> {
    (
        -6i32..=9,    // level 10^e
        -9i32..=-1,   // noise relative to the level
        -3.0f64..1.0, // trend per bar, log10 of noise units
        0.0f64..0.5,  // probability of a repeated price
        prop::collection::vec((any::<u32>(), any::<u32>()), 200..700),
        2usize..60,
        any::<bool>(),
    )
        .prop_map(|(le, ne, te, p_rep, raw, w, negl)| {
            let level = 10f64.powi(le) * if negl { -1.0 } else { 1.0 };
            let noise = level.abs() * 10f64.powi(ne);
            let trend = noise * 10f64.powf(te);
            let mut x = Vec::with_capacity(raw.len());
            let mut drift = 0.0;
            let mut prev = level;
            for (i, &(a, b)) in raw.iter().enumerate() {
                let u = a as f64 / u32::MAX as f64 - 0.5;
                drift += trend;
                let v = if i > 0 && (b as f64 / u32::MAX as f64) < p_rep {
                    prev
                } else if b % 97 == 0 {
                    drift += noise * 1e3 * u.signum();
                    level + drift
                } else {
                    level + drift + noise * u
                };
                x.push(v);
                prev = v;
            }
            (x, w.min(raw.len()))
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn rolling_z_matches_the_exact_reference((x, w) in series()) {
        check_series(&x, w)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    /// Long enough for many chunks of the batch loop (64 bars): the decisions taken at a chunk's
    /// start (exact state of a flat window, recomputation when the projected bound fails) are
    /// checked against the reference and between stream and batch.
    #[test]
    fn rolling_z_matches_the_exact_reference_on_long_series((x, w) in series_of(600..2000)) {
        check_series(&x, w)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 60, ..ProptestConfig::default() })]

    #[test]
    fn rolling_z_is_exact_at_the_fast_path_boundary((x, w) in boundary_series()) {
        check_series(&x, w)?;
    }
}

/// Every bar of `x` against the double-double reference, batch == streaming bit for bit, and the
/// signals against those of the exact z.
fn check_series(x: &[f64], w: usize) -> Result<(), TestCaseError> {
    {
        let flat_everywhere = x.iter().all(|&v| v == x[0]);
        prop_assume!(!flat_everywhere);
        let r = mean_reversion(x, w, params(), &mut |_, _| true).unwrap();
        let mut stream = MeanReversionState::new(w, params()).unwrap();
        let mut zref = vec![f64::NAN; x.len()];
        for t in 0..x.len() {
            let tick = stream.push(x[t]).unwrap();
            // streaming == batch, bit for bit (signed zeros normalised)
            prop_assert_eq!(tick.mean.to_bits(), r.rolling_mean[t].to_bits());
            prop_assert_eq!(tick.std.to_bits(), r.rolling_std[t].to_bits());
            prop_assert_eq!(tick.zscore.to_bits(), r.zscore[t].to_bits());
            prop_assert_eq!((tick.signal, tick.position), (r.signals[t], r.positions[t]));
            if t + 1 < w {
                prop_assert!(r.zscore[t].is_nan());
                continue;
            }
            for v in [r.rolling_mean[t], r.rolling_std[t], r.zscore[t]] {
                prop_assert!(v.to_bits() != (-0.0f64).to_bits(), "signed zero at {}", t);
            }
            let win = &x[t + 1 - w..=t];
            let (m, sd, z) = reference(win);
            zref[t] = z;
            if win.iter().all(|&v| v == win[0]) {
                prop_assert_eq!(
                    r.rolling_std[t],
                    0.0,
                    "flat window at {} must have std exactly 0",
                    t
                );
                prop_assert_eq!(r.zscore[t], 0.0);
                prop_assert_eq!(r.rolling_mean[t], win[0]);
                continue;
            }
            prop_assert!(sd > 0.0);
            let es = (r.rolling_std[t] - sd).abs() / sd;
            prop_assert!(
                es <= 1e-12,
                "std at {}: {} vs {} (rel {:e}), w {}",
                t,
                r.rolling_std[t],
                sd,
                es,
                w
            );
            let ez = (r.zscore[t] - z).abs() / z.abs().max(1.0);
            prop_assert!(
                ez <= 1e-9,
                "z at {}: {} vs {} ({:e}), w {}",
                t,
                r.zscore[t],
                z,
                ez,
                w
            );
            let spread = win.iter().fold(0.0f64, |a, &v| a.max((v - m).abs()));
            prop_assert!(
                (r.rolling_mean[t] - m).abs() <= 1e-12 * m.abs().max(spread),
                "mean at {}",
                t
            );
        }
        // signals from the exact z are the same, except after a (near-)tie at a threshold
        let mut machine = SignalMachine::new(params()).unwrap();
        let p = params();
        let thresholds = [p.entry, p.exit, p.stop.unwrap()];
        for t in 0..x.len() {
            let (sg, _) = machine.push(zref[t]);
            if sg != r.signals[t] {
                let tie = (0..=t).any(|j| {
                    thresholds
                        .iter()
                        .any(|&h| (zref[j].abs() - h).abs() <= 1e-9 * h.max(1.0))
                });
                prop_assert!(
                    tie,
                    "signal at {} differs from the exact z's without a tie",
                    t
                );
                break;
            }
        }
    }
    Ok(())
}

#[test]
fn issue_examples() {
    // prices near 1e9, noise 1e-3, a +1e6 jump; a flat run; +1e-6 ticks after 30 flat bars
    let mut s = 7u64;
    let mut u = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    };
    let mut x: Vec<f64> = (0..2000)
        .map(|i| 1e9 + 1e-3 * u() + if i >= 1000 { 1e6 } else { 0.0 })
        .collect();
    let mut v = 1e9;
    for i in 0..2000 {
        if i % 31 == 30 {
            v += 1e-6;
        }
        x.push(v);
    }
    for w in [20, 300] {
        let r = mean_reversion(&x, w, params(), &mut |_, _| true).unwrap();
        for t in w - 1..x.len() {
            let win = &x[t + 1 - w..=t];
            let (_, sd, z) = reference(win);
            if win.iter().all(|&v| v == win[0]) {
                assert_eq!((r.rolling_std[t], r.zscore[t]), (0.0, 0.0));
            } else {
                assert!(
                    (r.rolling_std[t] - sd).abs() <= 1e-12 * sd,
                    "std at {t}, w {w}"
                );
                assert!(
                    (r.zscore[t] - z).abs() <= 1e-9 * z.abs().max(1.0),
                    "z at {t}, w {w}"
                );
            }
        }
    }
}

#[test]
fn two_thread_batch_equals_streaming_on_hostile_data() {
    // long enough for the two-thread split; flat runs, jumps and tiny ticks everywhere, so exact
    // recomputations happen at data-dependent bars on both sides of the split
    let mut s = 11u64;
    let mut u = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut v = 1e6;
    let x: Vec<f64> = (0..250_000)
        .map(|_| {
            let r = u();
            if r < 0.5 {
                // repeat
            } else if r < 0.501 {
                v += if u() < 0.5 { 1e5 } else { -1e5 };
            } else if r < 0.6 {
                v += 1e-6 * (u() - 0.5);
            } else {
                v += u() - 0.5;
            }
            v
        })
        .collect();
    for w in [7, 64] {
        let r = mean_reversion(&x, w, params(), &mut |_, _| true).unwrap();
        let mut st = MeanReversionState::new(w, params()).unwrap();
        let b = st.push_many(&x).unwrap();
        for (name, a, c) in [
            ("mean", &r.rolling_mean, &b.rolling_mean),
            ("std", &r.rolling_std, &b.rolling_std),
            ("z", &r.zscore, &b.zscore),
        ] {
            assert!(
                a.iter()
                    .zip(c.iter())
                    .all(|(p, q)| p.to_bits() == q.to_bits()),
                "{name} differs, w {w}"
            );
        }
        assert_eq!(r.signals, b.signals);
    }
}
