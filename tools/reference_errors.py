"""Issue 13 closing table: worst error of each family against its exact / trusted reference, on both
backends (PyO3 and gRPC, whose results are also checked bit-identical), on seeded hostile data
(levels 1e-6..1e9, flat runs, jumps of 1..1e9 x the noise) and real series.

    .venv/bin/python tools/reference_errors.py [--cases N]

Prints a Markdown table. References: fractions.Fraction (rolling z / std), a NumPy Baum-Welch
(HMM EM iterates), statsmodels OLS / adfuller / coint / coint_johansen, scikit-learn ElasticNet
(lasso over two Gram blocks), NumPy (Kalman filter)."""

from __future__ import annotations

import argparse
import os
import sys
import warnings

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def hostile_prices(r, n, cols):
    level = 10.0 ** r.integers(-6, 10)
    noise = [1e-9, 1e-6, 1e-3, 1e-2][r.integers(0, 4)]
    inc = noise * r.standard_normal((n, cols))
    for _ in range(r.integers(0, 4)):
        a = r.integers(0, n)
        inc[a : a + r.integers(2, 26)] = 0.0
    for _ in range(r.integers(0, 3)):
        inc[r.integers(1, n)] = np.clip([1.0, 1e3, 1e6, 1e9][r.integers(0, 4)] * noise * r.choice([-1, 1]), -3, 3)
    return level * np.exp(np.cumsum(inc, axis=0))


def same(a, b):
    for k, v in vars(a).items():
        w = getattr(b, k)
        if isinstance(v, np.ndarray):
            assert v.tobytes() == w.tobytes(), k
        elif isinstance(v, float):
            assert np.float64(v).tobytes() == np.float64(w).tobytes(), k


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, default=40)
    cases = ap.parse_args().cases
    from hft_lab.backends import BackendConfig
    from hft_lab.backends.grpc_backend import GrpcBackend
    from hft_lab.backends.pyo3_backend import Pyo3Backend
    from hft_lab.backends.server import ServerManager
    from test_hostile_properties import numpy_baum_welch
    from test_rolling_exact import exact_rolling

    m = ServerManager(BackendConfig())
    m.start()
    bk = {"pyo3": Pyo3Backend(), "grpc": GrpcBackend(BackendConfig(call_timeout_s=300), address=lambda: m.address)}
    rows = []
    r = np.random.default_rng(13)
    try:
        # rolling z-score / std vs exact rationals
        ez = es = 0.0
        for _ in range(cases):
            x = hostile_prices(r, int(r.integers(60, 200)), 1)[:, 0]
            w = int(r.integers(2, 40))
            res = [b.calculate_mean_reversion(x, lookback=w, threshold=2.0) for b in bk.values()]
            same(res[0], res[1])
            mean, std, z, flat = exact_rolling(x, w)
            k = slice(w - 1, None)
            nf = ~flat[k]
            if nf.any():
                es = max(es, float(np.max(np.abs(res[0].rolling_std[k][nf] - std[k][nf]) / std[k][nf])))
            ez = max(ez, float(np.max(np.abs(res[0].zscore[k] - z[k]) / np.maximum(1, np.abs(z[k])))))
        rows.append(
            ("rolling z (batch; streaming bit-identical)", "fractions.Fraction", f"z {ez:.1e} (abs/max(1,|z|)); std {es:.1e} rel")
        )

        # HMM EM iterates vs a NumPy Baum-Welch
        e_ll = e_mu = e_p = 0.0
        for _ in range(cases):
            n = int(r.integers(40, 260))
            scale, off = 10.0 ** r.integers(-6, 10), [0.0, 1.0, 1e3][r.integers(0, 3)]
            st_ = np.cumsum(r.random(n) < 0.05) % 2
            x = scale * (off + np.array([0.0, 3.0])[st_] + r.standard_normal(n))
            k = int(r.integers(1, 4))
            srt = np.sort(x)
            init = dict(
                start_prob=np.full(k, 1 / k),
                transmat=np.full((k, k), 0.1 / max(k - 1, 1)) + np.eye(k) * (0.9 - 0.1 / max(k - 1, 1))
                if k > 1
                else np.ones((1, 1)),
                means=np.array([srt[j * n // k : (j + 1) * n // k].mean() for j in range(k)]),
                variances=np.full(k, x.var()),
            )
            res = [b.run_hmm(x, n_states=k, max_iterations=5, tolerance=0.0, init=init) for b in bk.values()]
            same(res[0], res[1])
            a = res[0]
            ref = numpy_baum_welch(x, init["start_prob"], init["transmat"], init["means"], init["variances"], a.iterations)
            o = np.argsort(ref["means"], kind="stable")
            e_ll = max(e_ll, float(np.max(np.abs(a.log_likelihood_history - ref["history"]))) / n)
            e_mu = max(e_mu, float(np.max(np.abs(a.means - ref["means"][o]))) / x.std())
            e_p = max(e_p, float(np.max(np.abs(a.posteriors - ref["post"][:, o]))))
        rows.append(
            (
                "HMM 1-D EM iterates",
                "NumPy Baum-Welch (log space)",
                f"LL {e_ll:.1e}/obs; means {e_mu:.1e}·std; posteriors {e_p:.1e}",
            )
        )

        # OU fit: the AR(1) slope b against exact rational least squares
        from fractions import Fraction

        def exact_slope(xs, ys):
            fx = [Fraction(float(v)) for v in xs]
            fy = [Fraction(float(v)) for v in ys]
            mx, my = sum(fx) / len(fx), sum(fy) / len(fy)
            sxx = sum((a - mx) ** 2 for a in fx)
            return float(sum((a - mx) * (c - my) for a, c in zip(fx, fy)) / sxx) if sxx else float("nan")

        e_b = 0.0
        for _ in range(cases):
            x = hostile_prices(r, int(r.integers(40, 200)), 1)[:, 0]
            try:
                fits = [b.fit_ou(x) for b in bk.values()]
            except ValueError:
                continue
            same(fits[0], fits[1])
            bx = exact_slope(x[:-1], x[1:])
            e_b = max(e_b, abs(fits[0].b - bx) / abs(bx))
        rows.append(("OU fit (AR(1) slope b)", "exact rational OLS", f"b {e_b:.1e} rel"))

        # Engle-Granger scan: hedge ratio and lag-0 ADF statistic against exact rationals
        from decimal import Decimal, localcontext

        e_h = e_s = 0.0
        for _ in range(cases // 2):
            p = hostile_prices(r, int(r.integers(40, 120)), 3)
            try:
                sc = [b.scan_pairs(p, max_lag=0) for b in bk.values()]
            except ValueError:
                continue
            same(sc[0], sc[1])
            s = sc[0]
            for k in range(len(s)):
                y = [Fraction(float(v)) for v in p[:, s.i[k]]]
                xx = [Fraction(float(v)) for v in p[:, s.j[k]]]
                my, mx = sum(y) / len(y), sum(xx) / len(xx)
                beta = sum((a - mx) * (c - my) for a, c in zip(xx, y)) / sum((a - mx) ** 2 for a in xx)
                e_h = max(e_h, abs(s.hedge_ratio[k] - float(beta)) / abs(float(beta)))
                if not np.isfinite(s.statistic[k]):
                    continue
                e = [c - my - beta * (a - mx) for a, c in zip(xx, y)]
                lag, d = e[:-1], [e[t + 1] - e[t] for t in range(len(e) - 1)]
                sll = sum(v * v for v in lag)
                g = sum(a * c for a, c in zip(lag, d)) / sll
                ssr = sum((c - g * a) ** 2 for a, c in zip(lag, d))
                with localcontext() as ctx:
                    ctx.prec = 40
                    q = ssr / (len(d) - 1) / sll
                    st = float(
                        Decimal(g.numerator) / Decimal(g.denominator) / (Decimal(q.numerator) / Decimal(q.denominator)).sqrt()
                    )
                e_s = max(e_s, abs(s.statistic[k] - st) / abs(st))
        rows.append(
            (
                "pairs scan (Engle-Granger, lag 0)",
                "exact rational OLS + ADF",
                f"hedge ratio {e_h:.1e} rel; statistic {e_s:.1e} rel",
            )
        )

        # Johansen vs statsmodels
        from statsmodels.tsa.vector_ar.vecm import coint_johansen

        e_eig = e_tr = 0.0
        refused = 0
        for _ in range(cases):
            p = hostile_prices(r, int(r.integers(40, 120)), 3)
            det, kd = int(r.integers(-1, 2)), int(r.integers(0, 3))
            try:
                js = [b.johansen(p, det, kd) for b in bk.values()]
            except ValueError:
                refused += 1
                continue
            same(js[0], js[1])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ref = coint_johansen(p, det, kd)
            e_eig = max(e_eig, float(np.max(np.abs(js[0].eigenvalues - ref.eig))))
            e_tr = max(e_tr, float(np.max(np.abs(js[0].trace_stat - ref.lr1) / np.maximum(1, np.abs(ref.lr1)))))
        rows.append(
            (
                "Johansen",
                "statsmodels coint_johansen",
                f"eigenvalues {e_eig:.1e} abs; trace {e_tr:.1e} rel ({refused}/{cases} refused as collinear)",
            )
        )

        # Kalman hedge vs an independent NumPy filter
        e_k = 0.0
        for _ in range(cases):
            p = hostile_prices(r, int(r.integers(30, 150)), 2)
            y, x = p[:, 0], p[:, 1]
            ks = [b.kalman_hedge(y, x, 1e-4, 1e-3) for b in bk.values()]
            same(ks[0], ks[1])
            vw = 1e-4 / (1 - 1e-4)
            th, P = np.zeros(2), np.zeros((2, 2))
            beta = np.empty(len(y))
            for t in range(len(y)):
                R = P + vw * np.eye(2)
                F = np.array([x[t], 1.0])
                Q = F @ R @ F + 1e-3
                e = y[t] - F @ th
                K = R @ F / Q
                th = th + K * e
                P = R - np.outer(K, F @ R)
                beta[t] = th[0]
            e_k = max(e_k, float(np.max(np.abs(ks[0].hedge_ratio - beta) / np.maximum(np.abs(beta), np.abs(y / x)))))
        rows.append(("Kalman hedge ratio", "NumPy filter", f"{e_k:.1e} rel (to max(|β|, |y/x|))"))
    finally:
        bk["grpc"].close()
        m.stop()
    print("| family | reference | worst error, both backends (bit-identical) |")
    print("|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
