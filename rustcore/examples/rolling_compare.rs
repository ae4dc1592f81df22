//! Interleaved timing of the rolling z-score: the algorithm before exactness (commit a9f2b36,
//! copied below as `old`) against the current one, in the same process, on three kinds of data:
//! (a) a drifting random walk (the `make bench` input: 100 + cumsum N(0, 1)), (b) white noise
//! around 100, (c) tick data on a 1-cent grid with flat runs (70% of ticks repeat the price).
//! Reports medians of process CPU time (both threads of the batch path) and wall time.
//! Not a test: `cargo run --release -p rustcore --example rolling_compare [reps]`.
use rustcore::rolling::{
    mean_reversion, rolling_into, MeanReversionState, RollingZ, SignalMachine, SignalParams,
};
use std::hint::black_box;
use std::time::Instant;

#[repr(C)]
struct Timespec {
    sec: i64,
    nsec: i64,
}
extern "C" {
    fn clock_gettime(clk: i32, ts: *mut Timespec) -> i32;
}
/// Process CPU time in seconds (CLOCK_PROCESS_CPUTIME_ID).
fn cpu() -> f64 {
    let mut t = Timespec { sec: 0, nsec: 0 };
    // SAFETY: a valid pointer to a timespec-layout struct
    unsafe { clock_gettime(2, &mut t) };
    t.sec as f64 + t.nsec as f64 * 1e-9
}

/// The rolling z-score as of commit a9f2b36 (before exact flat windows / error bounds).
mod old {
    use std::sync::atomic::{AtomicBool, Ordering};
    fn recentre_every(w: usize) -> usize {
        w * 256usize.div_ceil(w).max(1)
    }
    pub struct RollingZ {
        lookback: usize,
        buf: Vec<f64>,
        head: usize,
        count: usize,
        shift: f64,
        s1: f64,
        s2: f64,
        since_recentre: usize,
        every: usize,
    }
    impl RollingZ {
        pub fn new(lookback: usize) -> Self {
            RollingZ {
                lookback,
                buf: vec![0.0; lookback],
                head: 0,
                count: 0,
                shift: 0.0,
                s1: 0.0,
                s2: 0.0,
                since_recentre: 0,
                every: recentre_every(lookback),
            }
        }
        fn recentre(&mut self) {
            let n = self.count as f64;
            let mean = self.buf[..self.count].iter().sum::<f64>() / n;
            self.shift = mean;
            let (mut s1, mut s2) = (0.0, 0.0);
            for &v in &self.buf[..self.count] {
                let d = v - mean;
                s1 += d;
                s2 += d * d;
            }
            self.s1 = s1;
            self.s2 = s2;
            self.since_recentre = 0;
        }
        #[inline]
        pub fn push(&mut self, x: f64) -> (f64, f64, f64) {
            let w = self.lookback;
            if self.count < w {
                self.buf[self.count] = x;
                self.count += 1;
                if self.count < w {
                    return (f64::NAN, f64::NAN, f64::NAN);
                }
                self.head = 0;
                self.recentre();
            } else {
                let old = self.buf[self.head];
                self.buf[self.head] = x;
                self.head += 1;
                if self.head == w {
                    self.head = 0;
                }
                self.since_recentre += 1;
                if self.since_recentre >= self.every {
                    self.recentre();
                } else {
                    let dn = x - self.shift;
                    let dold = old - self.shift;
                    self.s1 += dn - dold;
                    self.s2 += dn * dn - dold * dold;
                }
            }
            let n = w as f64;
            let mean_off = self.s1 * (1.0 / n);
            let var = ((self.s2 - self.s1 * mean_off) * (1.0 / (n - 1.0))).max(0.0);
            let std = var.sqrt();
            let mean = self.shift + mean_off;
            let z = if std > 0.0 {
                ((x - self.shift) - mean_off) / std
            } else {
                0.0
            };
            (mean, std, z)
        }
    }

    pub struct Batch {
        pub mean: Vec<f64>,
        pub std: Vec<f64>,
        pub zscore: Vec<f64>,
        pub signals: Vec<i8>,
        pub positions: Vec<i8>,
    }
    /// The streaming state of a9f2b36 (its push_many pushed into Vecs with capacity).
    pub struct State {
        pub r: RollingZ,
        pub m: super::SignalMachine,
    }
    impl State {
        pub fn push_many(&mut self, ticks: &[f64]) -> Batch {
            assert!(ticks.iter().all(|v| v.is_finite()));
            let n = ticks.len();
            let mut b = Batch {
                mean: Vec::with_capacity(n),
                std: Vec::with_capacity(n),
                zscore: Vec::with_capacity(n),
                signals: Vec::with_capacity(n),
                positions: Vec::with_capacity(n),
            };
            for &p in ticks {
                let (m, s, z) = self.r.push(p);
                let (g, q) = self.m.push(z);
                b.mean.push(m);
                b.std.push(s);
                b.zscore.push(z);
                b.signals.push(g);
                b.positions.push(q);
            }
            b
        }
    }

    pub fn rolling_into(x: &[f64], w: usize, mean: &mut [f64], std: &mut [f64], z: &mut [f64]) {
        let n = x.len();
        let warm = (w - 1).min(n);
        for i in 0..warm {
            mean[i] = f64::NAN;
            std[i] = f64::NAN;
            z[i] = f64::NAN;
        }
        let every = recentre_every(w);
        let blocks = (n - warm).div_ceil(every);
        if n < 200_000 || blocks < 2 {
            rolling_blocks(
                x,
                w,
                warm,
                &mut mean[warm..],
                &mut std[warm..],
                &mut z[warm..],
                &AtomicBool::new(false),
            );
            return;
        }
        let mid = warm + blocks.div_ceil(2) * every;
        let (m1, m2) = mean[warm..].split_at_mut(mid - warm);
        let (s1, s2) = std[warm..].split_at_mut(mid - warm);
        let (z1, z2) = z[warm..].split_at_mut(mid - warm);
        let stop = AtomicBool::new(false);
        std::thread::scope(|scope| {
            let stop_ref = &stop;
            let second = scope.spawn(move || rolling_blocks(x, w, mid, m2, s2, z2, stop_ref));
            rolling_blocks(&x[..mid], w, warm, m1, s1, z1, &stop);
            second.join().unwrap();
        })
    }

    fn rolling_blocks(
        x: &[f64],
        w: usize,
        start: usize,
        mean: &mut [f64],
        std: &mut [f64],
        z: &mut [f64],
        stop: &AtomicBool,
    ) {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: AVX2 checked above
                return unsafe { rolling_blocks_avx2(x, w, start, mean, std, z, stop) };
            }
        }
        rolling_blocks_generic(x, w, start, mean, std, z, stop)
    }
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn rolling_blocks_avx2(
        x: &[f64],
        w: usize,
        start: usize,
        mean: &mut [f64],
        std: &mut [f64],
        z: &mut [f64],
        stop: &AtomicBool,
    ) {
        rolling_blocks_generic(x, w, start, mean, std, z, stop)
    }
    #[inline(always)]
    fn rolling_blocks_generic(
        x: &[f64],
        w: usize,
        start: usize,
        mean: &mut [f64],
        std: &mut [f64],
        z: &mut [f64],
        stop: &AtomicBool,
    ) {
        let n = x.len();
        let nf = w as f64;
        let (inv_n, inv_dof) = (1.0 / nf, 1.0 / (nf - 1.0));
        let every = recentre_every(w);
        let mut next_report = start + (1usize << 16);
        let mut t0 = start;
        while t0 < n {
            if t0 >= next_report {
                next_report += 1 << 16;
                if stop.load(Ordering::Relaxed) {
                    return;
                }
            }
            let win = &x[t0 + 1 - w..=t0];
            let shift = win.iter().sum::<f64>() / nf;
            let (mut s1, mut s2) = (0.0, 0.0);
            for &v in win {
                let d = v - shift;
                s1 += d;
                s2 += d * d;
            }
            let end = (t0 + every).min(n);
            let xs = &x[t0..end];
            let olds = &x[t0 + 1 - w..end - w];
            let (a, b) = (t0 - start, end - start);
            let (zb, sb, mb) = (&mut z[a..b], &mut std[a..b], &mut mean[a..b]);
            let mean_off = s1 * inv_n;
            zb[0] = mean_off;
            sb[0] = ((s2 - s1 * mean_off) * inv_dof).max(0.0);
            for (((&xn, &xo), zk), sk) in xs[1..]
                .iter()
                .zip(olds)
                .zip(zb[1..].iter_mut())
                .zip(sb[1..].iter_mut())
            {
                let dn = xn - shift;
                let dold = xo - shift;
                s1 += dn - dold;
                s2 += dn * dn - dold * dold;
                let mean_off = s1 * inv_n;
                *zk = mean_off;
                *sk = ((s2 - s1 * mean_off) * inv_dof).max(0.0);
            }
            for (((xi, zi), si), mi) in xs
                .iter()
                .zip(zb.iter_mut())
                .zip(sb.iter_mut())
                .zip(mb.iter_mut())
            {
                let mean_off = *zi;
                let sd = si.sqrt();
                *mi = shift + mean_off;
                *si = sd;
                *zi = if sd > 0.0 {
                    ((xi - shift) - mean_off) / sd
                } else {
                    0.0
                };
            }
            t0 = end;
        }
    }

    /// a9f2b36's mean_reversion: validate, five fresh outputs, rolling, signals, entries/exits.
    pub fn mean_reversion(x: &[f64], w: usize) -> (Batch, Vec<usize>, Vec<usize>) {
        assert!(x.iter().all(|v| v.is_finite()));
        assert!(!x.iter().all(|&p| p == x[0]));
        let n = x.len();
        let mut b = Batch {
            mean: vec![0.0; n],
            std: vec![0.0; n],
            zscore: vec![0.0; n],
            signals: vec![0; n],
            positions: vec![0; n],
        };
        rolling_into(x, w, &mut b.mean, &mut b.std, &mut b.zscore);
        let mut mach = super::SignalMachine::new(super::SignalParams::default()).unwrap();
        mach.run(&b.zscore, &mut b.signals, &mut b.positions);
        let (mut entries, mut exits) = (Vec::new(), Vec::new());
        let mut prev = 0i8;
        for (i, &sig) in b.signals.iter().enumerate() {
            if sig != prev {
                if prev != 0 {
                    exits.push(i);
                }
                if sig != 0 {
                    entries.push(i);
                }
                prev = sig;
            }
        }
        (b, entries, exits)
    }
}

struct Rng(u64);
impl Rng {
    fn u(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    /// standard normal (Box-Muller)
    fn normal(&mut self) -> f64 {
        let (a, b) = (self.u().max(1e-300), self.u());
        (-2.0 * a.ln()).sqrt() * (std::f64::consts::TAU * b).cos()
    }
}

fn data(kind: &str, n: usize) -> Vec<f64> {
    let mut r = Rng(0x9E3779B97F4A7C15);
    let mut v = 100.0;
    match kind {
        "walk" => (0..n)
            .map(|_| {
                v += r.normal();
                v
            })
            .collect(),
        "noise" => (0..n).map(|_| 100.0 + r.normal()).collect(),
        // 1-cent grid, 70% of ticks repeat the price, else ±1..3 cents
        "ticks" => {
            let mut c: i64 = 10_000;
            (0..n)
                .map(|_| {
                    if r.u() >= 0.7 {
                        let s = 1 + (r.u() * 3.0) as i64;
                        c += if r.u() < 0.5 { -s } else { s };
                    }
                    c as f64 / 100.0
                })
                .collect()
        }
        _ => unreachable!(),
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Runs `f` and returns (cpu s, wall s).
fn time(f: &mut dyn FnMut()) -> (f64, f64) {
    let (c, t) = (cpu(), Instant::now());
    f();
    (cpu() - c, t.elapsed().as_secs_f64())
}

fn main() {
    let reps: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(21);
    let only: Option<String> = std::env::args().nth(2);
    let n = 1_000_000;
    let w = 20;
    for kind in ["walk", "noise", "ticks"] {
        if only.as_deref().is_some_and(|o| o != kind) {
            continue;
        }
        let x = data(kind, n);
        // check that old and new agree roughly (sanity: same algorithm family)
        let (mut m, mut sd, mut z) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        let (mut m2, mut sd2, mut z2) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        let names = [
            "rolling_into 1M",
            "mean_reversion 1M",
            "RollingZ::push x1M",
            "State::push x1M",
            "push_many 1M",
            "push_many 1k x1000",
        ];
        // [variant][old/new] -> samples (cpu, wall)
        let mut cpu_s = vec![[Vec::new(), Vec::new()]; names.len()];
        let mut wall_s = vec![[Vec::new(), Vec::new()]; names.len()];
        for rep in 0..reps {
            for (vi, _) in names.iter().enumerate() {
                let order = if rep % 2 == 0 { [0, 1] } else { [1, 0] };
                for which in order {
                    let mut f: Box<dyn FnMut()> = match (vi, which) {
                        (0, 0) => Box::new(|| old::rolling_into(&x, w, &mut m, &mut sd, &mut z)),
                        (0, _) => Box::new(|| {
                            rolling_into(&x, w, &mut m2, &mut sd2, &mut z2, &mut |_, _| true);
                        }),
                        (1, 0) => Box::new(|| {
                            black_box(old::mean_reversion(&x, w));
                        }),
                        (1, _) => Box::new(|| {
                            black_box(
                                mean_reversion(&x, w, SignalParams::default(), &mut |_, _| true)
                                    .unwrap(),
                            );
                        }),
                        (2, 0) => Box::new(|| {
                            let mut r = old::RollingZ::new(w);
                            let mut acc = 0.0;
                            for &v in &x {
                                acc += black_box(r.push(v)).2;
                            }
                            black_box(acc);
                        }),
                        (2, _) => Box::new(|| {
                            let mut r = RollingZ::new(w).unwrap();
                            let mut acc = 0.0;
                            for &v in &x {
                                acc += black_box(r.push(v)).2;
                            }
                            black_box(acc);
                        }),
                        (3, 0) => Box::new(|| {
                            let mut r = old::RollingZ::new(w);
                            let mut mach = SignalMachine::new(SignalParams::default()).unwrap();
                            let mut acc = 0i64;
                            for &v in &x {
                                // a9f2b36's State::push: the finite check, then the two pushes
                                assert!(v.is_finite());
                                let (_, _, zz) = black_box(r.push(v));
                                acc += black_box(mach.push(zz)).0 as i64;
                            }
                            black_box(acc);
                        }),
                        (3, _) => Box::new(|| {
                            let mut s =
                                MeanReversionState::new(w, SignalParams::default()).unwrap();
                            let mut acc = 0i64;
                            for &v in &x {
                                acc += black_box(s.push(v).unwrap()).signal as i64;
                            }
                            black_box(acc);
                        }),
                        (4, 0) => Box::new(|| {
                            let mut s = old::State {
                                r: old::RollingZ::new(w),
                                m: SignalMachine::new(SignalParams::default()).unwrap(),
                            };
                            black_box(s.push_many(&x));
                        }),
                        (4, _) => Box::new(|| {
                            let mut s =
                                MeanReversionState::new(w, SignalParams::default()).unwrap();
                            black_box(s.push_many(&x).unwrap());
                        }),
                        (5, 0) => Box::new(|| {
                            let mut s = old::State {
                                r: old::RollingZ::new(w),
                                m: SignalMachine::new(SignalParams::default()).unwrap(),
                            };
                            for c in x.chunks(1000) {
                                black_box(s.push_many(c));
                            }
                        }),
                        (5, _) => Box::new(|| {
                            let mut s =
                                MeanReversionState::new(w, SignalParams::default()).unwrap();
                            for c in x.chunks(1000) {
                                black_box(s.push_many(c).unwrap());
                            }
                        }),
                        _ => unreachable!(),
                    };
                    let (c, t) = time(&mut f);
                    drop(f);
                    cpu_s[vi][which].push(c);
                    wall_s[vi][which].push(t);
                }
            }
        }
        let dz = z
            .iter()
            .zip(&z2)
            .skip(w)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f64, f64::max);
        println!("== {kind} (n = {n}, w = {w}, {reps} reps; max |z_old - z_new| {dz:.1e})");
        println!(
            "{:<22} {:>10} {:>10} {:>7} | {:>10} {:>10}",
            "", "old cpu ms", "new cpu ms", "new/old", "old wall", "new wall"
        );
        for (vi, name) in names.iter().enumerate() {
            let (co, cn) = (
                median(&mut cpu_s[vi][0]) * 1e3,
                median(&mut cpu_s[vi][1]) * 1e3,
            );
            let (wo, wn) = (
                median(&mut wall_s[vi][0]) * 1e3,
                median(&mut wall_s[vi][1]) * 1e3,
            );
            println!(
                "{name:<22} {co:>10.2} {cn:>10.2} {:>7.3} | {wo:>10.2} {wn:>10.2}",
                cn / co
            );
        }
    }
}
