"""Protobuf fuzzer for grpcd: random bytes and mutated valid messages against every RPC.

    python tools/fuzz_grpc.py [--seconds 60] [--seed N] [--memory-limit 1G] [--json]
    (FUZZ_GRPCD=/path/to/grpcd fuzzes another build; --memory-limit none for builds without it)

Starts its own grpcd (target/release/grpcd, loopback, port 0) with a small memory budget, then,
until the time is up, picks an RPC of hftlab.v1.HftLab and sends one of:
  * random bytes (0-4 KiB),
  * a valid request with some fields replaced by hostile values (huge/zero sizes, NaN/inf,
    ragged float64 payloads, rows x cols that do not match the data, unknown methods, ...),
  * such a message with its bytes mutated (bit flips, truncation, insertion, duplication),
through grpcio generic calls (the raw bytes are sent as they are; streaming RPCs get several).

A *crash* is grpcd exiting (or no longer answering health checks); the server is restarted and
the fuzzing goes on. INTERNAL answers are counted too: they mean a handler failed (a bug).
Exit status 1 when there was a crash or an INTERNAL answer. `make fuzz` runs 60 s.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import os
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "desktop"))

import grpc  # noqa: E402
import numpy as np  # noqa: E402
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402
from hft_lab._proto.hftlab.v1 import hftlab_pb2 as pb  # noqa: E402

SERVICE = pb.DESCRIPTOR.services_by_name["HftLab"]
F64_EDGES = [0.0, -0.0, 1.0, -1.0, 1e-300, 1e300, -1e308, math.nan, math.inf, -math.inf, 5e-324, 2.0, 0.5, 1e6]
U32_EDGES = [0, 1, 2, 3, 7, 50, 1000, 65535, 2**31 - 1, 2**31, 2**32 - 1]
U64_EDGES = U32_EDGES + [2**63, 2**64 - 1]
STR_EDGES = [
    "",
    "lasso",
    "elastic_net",
    "box_tiao",
    "greedy",
    "max_sharpe",
    "min_variance",
    "risk_parity",
    "equal_weight",
    "simple",
    "log",
    "sample",
    "ledoit_wolf",
    "\x00",
    "é" * 50,
    "x" * 3000,
]


def grpcd_binary() -> Path:
    p = Path(os.environ.get("FUZZ_GRPCD") or ROOT / "target" / "release" / "grpcd")
    if not p.exists():
        raise SystemExit(f"{p} is missing: run 'make build'")
    return p


class Server:
    def __init__(self, memory_limit: str):
        self.memory_limit = memory_limit
        self.proc: subprocess.Popen | None = None
        self.addr = ""
        self.stderr_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"fuzz_grpcd_{os.getpid()}.log"

    def start(self) -> None:
        self.err = open(self.stderr_path, "ab")
        self.proc = subprocess.Popen(
            [
                str(grpcd_binary()),
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--max-message-mb",
                "64",
                *(["--memory-limit", self.memory_limit] if self.memory_limit not in ("", "none") else []),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.err,
        )
        line = self.proc.stdout.readline().decode()
        info = json.loads(line)
        self.addr = f"127.0.0.1:{info['port']}"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.err.close()

    def peak_rss_mb(self) -> float:
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return float("nan")

    def stderr_tail(self, n: int = 5) -> str:
        try:
            return "\n".join(self.stderr_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


# ---------- message generation ----------


def prices_1d(rng: random.Random, n: int) -> bytes:
    g = np.random.default_rng(rng.getrandbits(32))
    return (100 + g.standard_normal(n).cumsum()).astype("<f8").tobytes()


def hostile_f64_bytes(rng: random.Random) -> bytes:
    k = rng.random()
    if k < 0.3:
        return prices_1d(rng, rng.choice([0, 1, 2, 3, 5, 20, 100, 500, 2000]))
    if k < 0.5:
        return np.array([rng.choice(F64_EDGES) for _ in range(rng.randint(0, 64))], dtype="<f8").tobytes()
    if k < 0.65:
        return bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 100)))  # often ragged (not 8k bytes)
    if k < 0.8:
        b = bytearray(prices_1d(rng, rng.randint(5, 300)))
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(b) // 8) * 8
            b[i : i + 8] = np.array([rng.choice(F64_EDGES)], "<f8").tobytes()
        return bytes(b)
    return np.full(rng.randint(1, 400), rng.choice([100.0, 0.0, -5.0]), "<f8").tobytes()  # constant


def fill(msg, rng: random.Random, depth: int = 0, mutate_p: float = 0.5) -> None:
    """Set the fields of `msg` to plausible or hostile values."""
    for f in msg.DESCRIPTOR.fields:
        if f.containing_oneof is not None and rng.random() < 0.5:
            continue
        hostile = rng.random() < mutate_p
        if f.message_type is not None:
            if f.is_repeated or (depth > 3):
                continue
            if rng.random() < 0.1:
                continue  # leave unset
            sub = getattr(msg, f.name)
            name = f.message_type.name
            if name == "Vector":
                sub.data = hostile_f64_bytes(rng) if hostile else prices_1d(rng, rng.randint(30, 400))
            elif name == "Matrix":
                rows, cols = rng.randint(5, 120), rng.randint(1, 12)
                g = np.random.default_rng(rng.getrandbits(32))
                data = (100 + g.standard_normal((rows, cols)).cumsum(0)).astype("<f8")
                raw = None
                if hostile:
                    choice = rng.random()
                    if choice < 0.3:
                        rows, cols = rng.choice(U32_EDGES), rng.choice(U32_EDGES)
                    elif choice < 0.6:
                        raw = hostile_f64_bytes(rng)  # any length, possibly ragged
                    elif choice < 0.72:
                        data = data[:, :1].repeat(cols, 1)  # duplicated columns
                    elif choice < 0.8:
                        # wide: 10 x 60000 (4.8 MB) asks for a 60000 x 60000 Gram matrix (28.8 GB)
                        rows, cols = 10, 60000
                        data = 100 + np.random.default_rng(rng.getrandbits(32)).standard_normal((rows, cols)).cumsum(0)
                    else:
                        cols = rng.choice([1, 2, 3000])
                        rows = 10
                        data = np.ones(rows * cols)
                sub.rows, sub.cols = rows, cols
                sub.data = raw if raw is not None else np.ascontiguousarray(data, "<f8").tobytes()
            else:
                sub.SetInParent()
                fill(sub, rng, depth + 1, mutate_p)
            continue
        t = f.type
        if f.is_repeated:
            n = rng.choice([0, 0, 1, 3, 20]) if not hostile else rng.choice([0, 1, 1001, 5000])
            vals = getattr(msg, f.name)
            for _ in range(n):
                if t == f.TYPE_DOUBLE:
                    vals.append(rng.choice(F64_EDGES) if hostile else rng.uniform(0, 2))
                elif t == f.TYPE_STRING:
                    vals.append(rng.choice(STR_EDGES))
                elif t in (f.TYPE_UINT32,):
                    vals.append(rng.choice(U32_EDGES))
                elif t in (f.TYPE_UINT64,):
                    vals.append(rng.choice(U64_EDGES))
                elif t in (f.TYPE_INT32, f.TYPE_INT64):
                    vals.append(rng.choice([-1, 0, 1, 2**31 - 1]))
            continue
        if t == f.TYPE_DOUBLE:
            v = rng.choice(F64_EDGES) if hostile else rng.choice([0.1, 0.5, 1.0, 2.0, 1e-4, 252.0])
        elif t == f.TYPE_UINT32:
            v = rng.choice(U32_EDGES) if hostile else rng.choice([2, 3, 5, 10, 20, 50])
        elif t == f.TYPE_UINT64:
            v = rng.choice(U64_EDGES) if hostile else rng.randint(0, 100)
        elif t in (f.TYPE_INT32, f.TYPE_INT64):
            v = rng.choice([-1, 0, 1, 2**31 - 1])
        elif t == f.TYPE_STRING:
            v = rng.choice(STR_EDGES)
        elif t == f.TYPE_BYTES:
            v = hostile_f64_bytes(rng) if hostile else prices_1d(rng, rng.randint(1, 200))
        elif t == f.TYPE_BOOL:
            v = rng.random() < 0.5
        else:
            continue
        setattr(msg, f.name, v)


def mutate_bytes(b: bytes, rng: random.Random) -> bytes:
    b = bytearray(b)
    for _ in range(rng.randint(1, 6)):
        op = rng.random()
        if not b or op < 0.2:
            b[rng.randint(0, len(b)) : rng.randint(0, len(b))] = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 16)))
        elif op < 0.5:
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        elif op < 0.65:
            del b[rng.randrange(len(b)) :]
        elif op < 0.8:
            i = rng.randrange(len(b))
            b[i] = rng.choice([0x00, 0x7F, 0x80, 0xFF, 0x0A, 0x12, 0x1A])
        else:
            i, j = sorted(rng.randrange(len(b) + 1) for _ in range(2))
            b[j:j] = b[i:j]
    return bytes(b)


def request_bytes(method, rng: random.Random) -> bytes:
    cls = getattr(pb, method.input_type.name)
    k = rng.random()
    if k < 0.15:
        return bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 4096)))
    msg = cls()
    fill(msg, rng, mutate_p=rng.choice([0.0, 0.2, 0.5, 1.0]))
    b = msg.SerializeToString()
    if k < 0.45:
        b = mutate_bytes(b, rng)
    return b


def stream_messages(rng: random.Random) -> list[bytes]:
    msgs = []
    if rng.random() < 0.85:
        cfg = pb.StreamConfig(lookback=rng.choice([2, 5, 20, 100]) if rng.random() < 0.6 else rng.choice(U32_EDGES))
        fill(cfg.signal, rng, mutate_p=0.3) if rng.random() < 0.7 else None
        if rng.random() < 0.5:
            cfg.signal.entry_threshold = 2.0
            cfg.signal.exit_threshold = 0.0
        msgs.append(pb.StreamRequest(config=cfg).SerializeToString())
    for _ in range(rng.randint(0, 6)):
        r = rng.random()
        if r < 0.6:
            m = pb.StreamRequest(
                ticks=pb.Vector(data=hostile_f64_bytes(rng) if rng.random() < 0.4 else prices_1d(rng, rng.randint(1, 300)))
            )
            msgs.append(m.SerializeToString())
        elif r < 0.75:
            msgs.append(pb.StreamRequest(config=pb.StreamConfig(lookback=rng.choice(U32_EDGES))).SerializeToString())
        elif r < 0.85:
            msgs.append(b"")
        else:
            msgs.append(mutate_bytes(pb.StreamRequest(ticks=pb.Vector(data=prices_1d(rng, 10))).SerializeToString(), rng))
    return msgs


# ---------- the loop ----------


def identity(b):
    return b


def run(seconds: float = 60.0, seed: int | None = None, memory_limit: str = "1G", timeout: float = 2.0, log=print) -> dict:
    seed = random.randrange(2**32) if seed is None else seed
    rng = random.Random(seed)
    server = Server(memory_limit)
    server.start()
    codes: collections.Counter = collections.Counter()
    per_rpc: collections.Counter = collections.Counter()
    crashes, internal, examples = [], [], []
    requests = 0
    methods = list(SERVICE.methods)
    channel = None
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            if channel is None:
                channel = grpc.insecure_channel(
                    server.addr, options=[("grpc.enable_retries", 0), ("grpc.max_receive_message_length", 64 << 20)]
                )
            m = rng.choice(methods)
            path = f"/{SERVICE.full_name}/{m.name}"
            try:
                if m.client_streaming:
                    msgs = stream_messages(rng)
                    call = channel.stream_stream(path, request_serializer=identity, response_deserializer=identity)
                    for _ in call(iter(msgs), timeout=timeout):
                        pass
                elif m.server_streaming:
                    call = channel.unary_stream(path, request_serializer=identity, response_deserializer=identity)
                    for _ in call(request_bytes(m, rng), timeout=timeout):
                        pass
                else:
                    call = channel.unary_unary(path, request_serializer=identity, response_deserializer=identity)
                    call(request_bytes(m, rng), timeout=timeout)
                code = "OK"
            except grpc.RpcError as e:
                code = e.code().name
                if e.code() == grpc.StatusCode.INTERNAL:
                    internal.append(f"{m.name}: {e.details()}")
            requests += 1
            codes[code] += 1
            per_rpc[m.name] += 1
            if code == "UNAVAILABLE" or not server.alive():
                time.sleep(0.05)
                if not server.alive() or not healthy(server.addr):
                    rc = server.proc.poll()
                    crashes.append({"rpc": m.name, "returncode": rc, "stderr": server.stderr_tail()})
                    log(f"CRASH after {m.name}: returncode {rc}\n{server.stderr_tail()}")
                    server.stop()
                    server.start()
                    channel.close()
                    channel = None
        ok_after = healthy(server.addr)
        peak = server.peak_rss_mb()
    finally:
        if channel is not None:
            channel.close()
        server.stop()
    summary = {
        "seconds": seconds,
        "seed": seed,
        "requests": requests,
        "requests_per_s": round(requests / seconds, 1),
        "crashes": len(crashes),
        "internal_errors": len(internal),
        "codes": dict(codes.most_common()),
        "per_rpc": dict(per_rpc.most_common()),
        "healthy_after": ok_after,
        "peak_rss_mb": round(peak, 1),
        "memory_limit": memory_limit,
        "crash_details": crashes[:5],
        "internal_details": internal[:5],
    }
    del examples
    return summary


def healthy(addr: str) -> bool:
    try:
        with grpc.insecure_channel(addr) as ch:
            r = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=SERVICE.full_name), timeout=3)
            return r.status == health_pb2.HealthCheckResponse.SERVING
    except grpc.RpcError:
        return False


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--memory-limit", default="1G", help="grpcd --memory-limit during the fuzzing (default 1G)")
    ap.add_argument("--timeout", type=float, default=2.0, help="deadline of each call in seconds")
    ap.add_argument("--json", action="store_true", help="print the summary as JSON only")
    a = ap.parse_args()
    s = run(a.seconds, a.seed, a.memory_limit, a.timeout, log=(lambda *_: None) if a.json else print)
    if a.json:
        print(json.dumps(s))
    else:
        print(
            f"fuzzed grpcd for {s['seconds']:.0f} s (seed {s['seed']}): {s['requests']} requests "
            f"({s['requests_per_s']}/s), crashes = {s['crashes']}, INTERNAL answers = {s['internal_errors']}, "
            f"healthy after: {s['healthy_after']}, peak RSS {s['peak_rss_mb']} MB (budget {s['memory_limit']})"
        )
        print("status codes:", ", ".join(f"{k} {v}" for k, v in s["codes"].items()))
        print("per RPC:", ", ".join(f"{k} {v}" for k, v in s["per_rpc"].items()))
        for d in s["internal_details"]:
            print("INTERNAL:", d)
    return 1 if s["crashes"] or s["internal_errors"] or not s["healthy_after"] else 0


if __name__ == "__main__":
    sys.exit(main())
