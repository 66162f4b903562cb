#!/usr/bin/env python3
"""A region outage, measured: download throughput from a replica against the home region, and
what a client pays while the home store goes down (failed requests, added latency).

    tests/bench/regions.py BASE_URL ADMIN_EMAIL S3_CONTROL [--home s3:home] [--replica blobs_eu]
                           [--size-mib 64] [--runs 8] [--small-runs 40]
    tests/bench/regions.py BASE_URL ADMIN_EMAIL --deactivate [--home key-value:blobs] ...

Against a running local runtime whose home blob store (`home_blob_store`) is the S3-compatible
store `--home` and whose `admin_emails` includes ADMIN_EMAIL; S3_CONTROL is a command taking
`stop` and `start` for that S3 server (as tests/run writes one). Makes sure a region's node
serves the home store and another's the key-value store `--replica`, stores a large and a
1 MiB file (no dedup, no compression) with an eventual policy for the replica's region, waits
until they are in sync, then:

1. downloads the large file `--runs` times from the home region (the baseline), and times
   the small one `--small-runs` times;
2. stops the S3 server and keeps downloading the small file, one request after another, until
   `/health` shows the home store's breaker open: every request's status and latency (the
   outage's cost while the breaker counts failures);
3. downloads both again, now served from the replica, the same number of times;
4. starts the S3 server again.

Prints throughput (MB/s, median of runs) per phase and their ratio, small-download latency p50
and p99 per phase, and the outage window's requests, failures and added latency. Standard
library only.

With `--deactivate` instead of S3_CONTROL, step 2 deactivates the home region (for good: use a
fresh runtime) and the replica phase reads the copies a deactivated home leaves them to; any
home store kind works, e.g. `--home key-value:blobs` to compare two key-value stores."""

import os
import subprocess
import sys
import time
import urllib.request
from api import call, percentile, region_of, sign_in


def replicated_file(base, token, region, size, chunk):
    status, f = call(base, "POST", "/api/files", token,
                     {"name": f"bench-{size}.bin", "size": size, "deduplicationEnabled": False, "compressionEnabled": False})
    assert status == 201, f
    data = os.urandom(size)
    for i in range(0, size, chunk):
        status, r = call(base, "POST", f"/api/files/{f['id']}/chunks/{i // chunk}", token, data[i:i + chunk], "application/octet-stream")
        assert status in (200, 201), r
    status, p = call(base, "POST", f"/api/replication/files/{f['id']}/policy", token, {"targetRegions": [region]})
    assert status == 201, p
    started = time.time()
    while True:
        status, s = call(base, "GET", f"/api/replication/files/{f['id']}/status", token)
        if all(r["state"] == "in-sync" for r in s["regions"]):
            break
        assert time.time() - started < 300, s
        time.sleep(0.05)
    status, url = call(base, "POST", f"/api/files/{f['id']}/signed-url", token, {"expirationSeconds": 3600})
    assert status == 201, url
    return base + url["path"], data


def download(url):
    """(status, seconds, bytes) of one whole download; a transport failure is status 0."""
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(url) as r:
            body = r.read()
            return r.status, time.perf_counter() - started, body
    except urllib.error.HTTPError as e:
        return e.code, time.perf_counter() - started, b""
    except (urllib.error.URLError, ConnectionError) as e:
        return 0, time.perf_counter() - started, b""


def throughput(url, data, runs):
    rates = []
    for _ in range(runs):
        status, secs, body = download(url)
        assert status == 200 and body == data, (status, len(body))
        rates.append(len(data) / secs / 1e6)
    return sorted(rates)[len(rates) // 2]


def latencies(url, data, runs):
    out = []
    for _ in range(runs):
        status, secs, body = download(url)
        assert status == 200 and body == data, (status, len(body))
        out.append(secs * 1000)
    return out


def breaker(base, kind, store):
    status, health = call(base, "GET", "/health")
    for s in health["stores"]:
        if s["kind"] == kind and s["store"] == store:
            return s["breaker"]["state"]
    return "unknown"


def main():
    args = sys.argv[1:]
    opts = {"--home": "s3:home", "--replica": "blobs_eu", "--size-mib": "64", "--runs": "8", "--small-runs": "40"}
    for flag in list(opts):
        if flag in args:
            i = args.index(flag)
            opts[flag] = args[i + 1]
            del args[i:i + 2]
    deactivate = "--deactivate" in args
    if deactivate:
        args.remove("--deactivate")
        opts["--home"] = opts["--home"] if "--home" in sys.argv else "key-value:blobs"
    base, admin_email = args[0].rstrip("/"), args[1]
    control = None if deactivate else args[2]
    home_kind, home_store = opts["--home"].split(":", 1)
    admin = sign_in(base, admin_email)
    home_region = region_of(base, admin, home_store, home_kind, "bench-home")
    replica = region_of(base, admin, opts["--replica"], "key-value", "bench-replica")
    token = sign_in(base, f"regions-bench-{int(time.time())}@example.com")
    chunk = 5 * 1024 * 1024
    big_url, big = replicated_file(base, token, replica, int(opts["--size-mib"]) * 1024 * 1024, chunk)
    small_url, small = replicated_file(base, token, replica, 1024 * 1024, chunk)
    runs, small_runs = int(opts["--runs"]), int(opts["--small-runs"])
    throughput(big_url, big, 2)  # warm both paths' instances
    # The baseline is the home store's: wait out a breaker a previous run left open.
    started = time.time()
    while breaker(base, home_kind, home_store) != "closed":
        download(small_url)
        assert time.time() - started < 120, "the home store's breaker stays open"
        time.sleep(0.5)

    home_rate = throughput(big_url, big, runs)
    home_small = latencies(small_url, small, small_runs)

    window = []
    if deactivate:
        status, r = call(base, "PATCH", f"/api/storage/regions/{home_region}/deactivate", admin)
        assert status == 200, r
    else:
        subprocess.run([control, "stop"], check=True)
        started = time.time()
        while breaker(base, home_kind, home_store) != "open":
            status, secs, body = download(small_url)
            window.append((status == 200 and body == small, secs * 1000))
            assert time.time() - started < 60, "the breaker never opened"
    replica_rate = throughput(big_url, big, runs)
    replica_small = latencies(small_url, small, small_runs)
    if not deactivate:
        subprocess.run([control, "start"], check=True)

    print(f"large file: {len(big) / 2**20:.0f} MiB, {runs} downloads per phase (median); small file: 1 MiB, {small_runs} downloads per phase")
    print(f"throughput from the home region ({opts['--home']}):  {home_rate:8.1f} MB/s")
    why = "home deactivated" if deactivate else "home down"
    print(f"throughput from the replica ({opts['--replica']}, {why}): {replica_rate:8.1f} MB/s   ratio replica/home {replica_rate / home_rate:.2f}")
    print(f"1 MiB latency, home region:    p50 {percentile(home_small, 50):7.2f} ms  p99 {percentile(home_small, 99):7.2f} ms")
    print(f"1 MiB latency, replica:        p50 {percentile(replica_small, 50):7.2f} ms  p99 {percentile(replica_small, 99):7.2f} ms")
    if deactivate:
        return
    ok = [ms for good, ms in window if good]
    failed = len(window) - len(ok)
    added = (percentile(ok, 50) - percentile(home_small, 50)) if ok else float("nan")
    print(f"outage window (S3 stopped until the breaker opened): {len(window)} requests, {failed} failed, "
          f"latency p50 {percentile(ok, 50) if ok else float('nan'):.2f} ms (+{added:.2f} ms over the home baseline), max {max(ok) if ok else float('nan'):.2f} ms")


if __name__ == "__main__":
    main()
