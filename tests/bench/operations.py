#!/usr/bin/env python3
"""What operations cost (issue 12): the latency of a scrape of GET /health/metrics, and the
cost of the per-request log line and host counters on small requests — the same requests to a
build with them (URL) and to a baseline build without them (--baseline URL), interleaved in
rounds in the same run, over keep-alive connections.

usage: tests/bench/operations.py URL [--baseline URL] [--requests 2000] [--rounds 10]
Prints p50/p99 of each and the ratios."""
import argparse
import http.client
import statistics
import time
import urllib.parse


def client(url):
    u = urllib.parse.urlparse(url)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=30)


def timed(conn, path, n):
    out = []
    for _ in range(n):
        t = time.perf_counter()
        conn.request("GET", path)
        r = conn.getresponse()
        body = r.read()
        out.append((time.perf_counter() - t) * 1000)
        assert r.status == 200, (path, r.status, body[:200])
    return out


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--baseline")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=10)
    a = ap.parse_args()
    per_round = a.requests // a.rounds
    targets = {"with": a.url}
    if a.baseline:
        targets["baseline"] = a.baseline
    conns = {k: client(u) for k, u in targets.items()}
    for k in conns:  # warm instances
        timed(conns[k], "/health/liveness", 50)
    for path in ["/health/liveness", "/health/readiness"]:
        samples = {k: [] for k in targets}
        for _ in range(a.rounds):
            for k in targets:
                samples[k] += timed(conns[k], path, per_round)
        line = [f"{path}: {len(samples['with'])} requests each"]
        for k in targets:
            line.append(f"{k} p50 {statistics.median(samples[k]):.3f} ms p99 {pct(samples[k], 0.99):.3f} ms")
        if a.baseline:
            line.append(f"p50 ratio with/baseline {statistics.median(samples['with']) / statistics.median(samples['baseline']):.2f}")
        print("; ".join(line))
    conn = conns["with"]
    conn.request("GET", "/health/metrics")
    r = conn.getresponse()
    text = r.read().decode()
    routes = {l.split('route="', 1)[1].split('"', 1)[0] for l in text.splitlines() if l.startswith("vaultx_http_requests_total{") and 'route="' in l}
    scrape = timed(conn, "/health/metrics", 200)
    print(f"/health/metrics: {len(text)} bytes, {len(text.splitlines())} lines, {len(routes)} routes counted; "
          f"p50 {statistics.median(scrape):.2f} ms p99 {pct(scrape, 0.99):.2f} ms over 200 scrapes")


if __name__ == "__main__":
    main()
