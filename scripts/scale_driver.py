#!/usr/bin/env python3
"""Load for scripts/scale-test.sh: ordinary requests and a sign-in storm through
the round-robin front, while the script SIGKILLs and restarts one cutover copy.
Standard library only (threads, http.client).

    scale_driver.py --front URL --users N --signin-concurrency C --load-concurrency L
                    --pids-file FILE --out FILE.json

- Load: L threads, each on its own keep-alive connection, GET / with a pinned
  anonymous browser cookie (cutover sends it to the trivial legacy upstream),
  until the storm is over.
- Storm: C threads sign the N pending users (`storm<i>@bench.test`) in once
  each through Kernia's route; cutover migrates each password on the way. A
  sign-in answered 5xx, 429 or not at all is retried the way a person would
  (after Retry-After or half a second) for up to 120 s; each attempt is kept.
- Every answer is recorded with the copy that served it: the front adds
  `x-cutover-copy: $upstream_addr` (when nginx retried on another copy it lists
  each address; the last one answered).
- Each second the copies' RSS and CPU time are read from /proc (pids from
  --pids-file, rewritten by the script when a copy restarts).

Writes every figure as JSON to --out and a summary to stdout.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import queue
import threading
import time
import urllib.parse

PASSWORD = "storm-password"
PIN = "cutover_route=b.00000000000000000000000000000000"


class Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        # t, kind, status, copy, ms, user (-1 for load)
        self.events: list[tuple[float, str, int, str, float, int]] = []

    def add(self, kind: str, status: int, copy: str, ms: float, user: int = -1) -> None:
        with self.lock:
            self.events.append((time.time(), kind, status, copy, ms, user))


def connect(front: urllib.parse.SplitResult) -> http.client.HTTPConnection:
    # Long enough that an overloaded machine never makes the driver give up on
    # (and retry) a sign-in the server is still working on.
    return http.client.HTTPConnection(front.hostname, front.port, timeout=180)


def request(conn, method, path, body=None, headers=None):
    """(status, copy, retry_after, conn) — status 0 when the connection failed."""
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        r.read()
        copy = (r.getheader("x-cutover-copy") or "").split(",")[-1].strip()
        if r.getheader("connection", "").lower() == "close":
            conn.close()
        return r.status, copy, r.getheader("retry-after"), conn
    except (OSError, http.client.HTTPException):
        conn.close()
        return 0, "", None, conn


def load_worker(front, rec: Recorder, stop: threading.Event) -> None:
    conn = connect(front)
    while not stop.is_set():
        t = time.perf_counter()
        status, copy, _, conn = request(conn, "GET", "/", headers={"cookie": PIN})
        rec.add("load", status, copy, (time.perf_counter() - t) * 1000)
        time.sleep(0.002)


def signin_worker(front, rec: Recorder, users: queue.Queue, outcome: dict) -> None:
    conn = connect(front)
    while True:
        try:
            i = users.get_nowait()
        except queue.Empty:
            return
        body = json.dumps({"email": f"storm{i}@bench.test", "password": PASSWORD})
        deadline = time.time() + 120
        attempts = []
        while True:
            t = time.perf_counter()
            status, copy, retry_after, conn = request(
                conn, "POST", "/api/auth/sign-in/email", body,
                {"content-type": "application/json"})
            rec.add("signin", status, copy, (time.perf_counter() - t) * 1000, i)
            attempts.append(status)
            if status == 200 or (status not in (0, 429) and status < 500) or time.time() > deadline:
                break
            try:
                wait = min(float(retry_after), 5.0) if retry_after else 0.5
            except ValueError:
                wait = 0.5
            time.sleep(wait)
        outcome[i] = attempts


def sampler(pids_file: str, stop: threading.Event, samples: list) -> None:
    tick = os.sysconf("SC_CLK_TCK")
    while not stop.is_set():
        try:
            with open(pids_file) as f:
                pids = [line.split() for line in f if line.strip()]
        except OSError:
            pids = []
        now = time.time()
        for name, pid in pids:
            try:
                with open(f"/proc/{pid}/status") as f:
                    rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                cpu = (int(fields[11]) + int(fields[12])) / tick
                samples.append({"t": now, "copy": name, "pid": int(pid), "rss_kib": rss, "cpu_s": cpu})
            except (OSError, StopIteration, IndexError, ValueError):
                pass
        stop.wait(1.0)


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(int(len(v) * p), len(v) - 1)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--front", required=True)
    ap.add_argument("--users", type=int, required=True)
    ap.add_argument("--signin-concurrency", type=int, default=6)
    ap.add_argument("--load-concurrency", type=int, default=4)
    ap.add_argument("--pids-file", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--warmup", type=float, default=3.0)
    args = ap.parse_args()
    front = urllib.parse.urlsplit(args.front)

    rec, stop, samples = Recorder(), threading.Event(), []
    threading.Thread(target=sampler, args=(args.pids_file, stop, samples), daemon=True).start()
    loaders = [threading.Thread(target=load_worker, args=(front, rec, stop), daemon=True)
               for _ in range(args.load_concurrency)]
    for t in loaders:
        t.start()
    time.sleep(args.warmup)

    users: queue.Queue = queue.Queue()
    for i in range(args.users):
        users.put(i)
    outcome: dict[int, list[int]] = {}
    started = time.time()
    print(f"storm: {args.users} sign-ins, {args.signin_concurrency} at a time, "
          f"{args.load_concurrency} load connections", flush=True)
    signers = [threading.Thread(target=signin_worker, args=(front, rec, users, outcome))
               for _ in range(args.signin_concurrency)]
    for t in signers:
        t.start()
    for t in signers:
        t.join()
    storm_secs = time.time() - started
    stop.set()
    for t in loaders:
        t.join()

    events = rec.events
    by_copy: dict[str, dict[str, int]] = {}
    for _, kind, status, copy, _, _ in events:
        c = by_copy.setdefault(copy or "(no answer)", {})
        key = f"{kind}_{status // 100}xx" if status else f"{kind}_noanswer"
        c[key] = c.get(key, 0) + 1
        if status >= 500:
            c[f"{kind}_{status}"] = c.get(f"{kind}_{status}", 0) + 1
    load_ms = [ms for _, k, s, _, ms, _ in events if k == "load" and s == 200]
    load_secs = (events[-1][0] - events[0][0]) if events else 0
    result = {
        "users": args.users,
        "storm_secs": storm_secs,
        "signed_in": sum(1 for a in outcome.values() if a and a[-1] == 200),
        "signin_failed": {i: a for i, a in outcome.items() if not a or a[-1] != 200},
        "signin_retried": sum(1 for a in outcome.values() if len(a) > 1),
        "signin_attempts": sum(len(a) for a in outcome.values()),
        "load_requests": len([1 for e in events if e[1] == "load"]),
        "load_ok_per_sec": len(load_ms) / load_secs if load_secs else 0,
        "load_p50_ms": pct(load_ms, 0.5),
        "load_p99_ms": pct(load_ms, 0.99),
        "by_copy": by_copy,
        "events_5xx": [(t, k, s, c, u) for t, k, s, c, _, u in events if s >= 500 or s == 0],
        "samples": samples,
    }
    with open(args.out, "w") as f:
        json.dump(result, f)
    print(f"storm: {result['signed_in']}/{args.users} signed in in {storm_secs:.1f} s "
          f"({result['signed_in'] / storm_secs:.2f}/s), {result['signin_retried']} retried "
          f"({result['signin_attempts']} attempts)")
    print(f"load: {result['load_requests']} requests, {result['load_ok_per_sec']:.0f}/s ok, "
          f"p50 {result['load_p50_ms']:.2f} ms, p99 {result['load_p99_ms']:.2f} ms")


if __name__ == "__main__":
    main()
