//! Quick timing of the rolling z-score core parts (not a test; `make bench` is the real benchmark).
use rustcore::error::check;
use rustcore::rolling::{mean_reversion, rolling_into, SignalMachine, SignalParams};
use std::time::Instant;
fn main() {
    let n = 1_000_000;
    let mut s = 1u64;
    let mut v = 100.0;
    let x: Vec<f64> = (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            v += (s >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
            v
        })
        .collect();
    let (mut m, mut sd, mut z) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    let (mut sig, mut pos) = (vec![0i8; n], vec![0i8; n]);
    for _ in 0..5 {
        let t = Instant::now();
        check::finite("x", &x).unwrap();
        let _ = std::hint::black_box(x.iter().all(|&p| p == x[0]));
        let a = t.elapsed();
        let t = Instant::now();
        rolling_into(&x, 20, &mut m, &mut sd, &mut z, &mut |_, _| true);
        let b = t.elapsed();
        let t = Instant::now();
        let mut mach = SignalMachine::new(SignalParams::default()).unwrap();
        mach.run(&z, &mut sig, &mut pos);
        std::hint::black_box((&sig, &pos));
        let c = t.elapsed();
        let t = Instant::now();
        let r = mean_reversion(&x, 20, SignalParams::default(), &mut |_, _| true).unwrap();
        println!(
            "checks {a:?} rolling {b:?} signals {c:?}; whole (fresh Vecs) {:?} ({} entries)",
            t.elapsed(),
            r.entries.len()
        );
    }
}
