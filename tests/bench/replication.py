#!/usr/bin/env python3
"""Replication lag: from an upload's completing chunk to the file `in-sync` in its target region.

    tests/bench/replication.py BASE_URL ADMIN_EMAIL [STORE] [--files-1m N] [--files-64m N]

Against a running deployment whose `admin_emails` includes ADMIN_EMAIL (e.g. the local runtime,
infra/local/up, with SPIN_VARIABLE_ADMIN_EMAILS). Makes sure a region's node serves STORE (a
key-value label, default `blobs_eu`), then for 1 MiB and 64 MiB files: creates the file with an
eventual policy for that region (no dedup, no compression: one copy of each chunk), uploads it
in the deployment's chunk size, and polls `GET /api/replication/files/:id/status` every 2 ms
from the completing chunk's response until the region is `in-sync`. Prints p50 and p99 of that
lag per size, and the upload time beside it (the baseline: what the client already waited).
Standard library only."""

import os
import statistics
import sys
import time
from api import call, percentile, region_of, sign_in


def one(base, token, region, size, chunk):
    status, f = call(base, "POST", "/api/files", token,
                     {"name": f"lag-{size}.bin", "size": size, "deduplicationEnabled": False, "compressionEnabled": False})
    assert status == 201, f
    status, p = call(base, "POST", f"/api/replication/files/{f['id']}/policy", token, {"targetRegions": [region]})
    assert status == 201, p
    data = os.urandom(size)
    started = time.perf_counter()
    for i in range(0, size, chunk):
        status, r = call(base, "POST", f"/api/files/{f['id']}/chunks/{i // chunk}", token, data[i:i + chunk], "application/octet-stream")
        assert status in (200, 201), r
    complete = time.perf_counter()
    while True:
        status, s = call(base, "GET", f"/api/replication/files/{f['id']}/status", token)
        assert status == 200, s
        if all(r["state"] == "in-sync" for r in s["regions"]):
            break
        assert time.perf_counter() - complete < 120, s
        time.sleep(0.002)
    lag = time.perf_counter() - complete
    call(base, "DELETE", f"/api/files/{f['id']}", token)
    return (complete - started) * 1000, lag * 1000


def main():
    args = sys.argv[1:]
    counts = {"1m": 20, "64m": 5}
    for flag in ("--files-1m", "--files-64m"):
        if flag in args:
            i = args.index(flag)
            counts[flag[8:]] = int(args[i + 1])
            del args[i:i + 2]
    base, admin_email = args[0].rstrip("/"), args[1]
    store = args[2] if len(args) > 2 else "blobs_eu"
    admin = sign_in(base, admin_email)
    region = region_of(base, admin, store)
    token = sign_in(base, f"replication-bench-{int(time.time())}@example.com")
    chunk = int(os.environ.get("VAULTX_CHUNK_SIZE", 5 * 1024 * 1024))
    print(f"replication lag to region {region} (store {store}), chunk {chunk} bytes; upload time beside it")
    for label, size in (("1m", 1 << 20), ("64m", 64 << 20)):
        runs = [one(base, token, region, size, chunk) for _ in range(counts[label])]
        uploads, lags = [u for u, _ in runs], [l for _, l in runs]
        print(f"{size >> 20:>3} MiB x {len(runs):>2}: lag p50 {percentile(lags, 50):8.1f} ms  p99 {percentile(lags, 99):8.1f} ms"
              f"   | upload p50 {percentile(uploads, 50):8.1f} ms  (lag/upload {statistics.median(lags) / statistics.median(uploads):.2f})")


if __name__ == "__main__":
    main()
