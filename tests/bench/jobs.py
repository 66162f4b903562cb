#!/usr/bin/env python3
"""Background-job latency: from the commit that enqueues a job to the job recorded done.

    tests/bench/jobs.py BASE_URL ADMIN_EMAIL [FILES]

Against a running deployment whose `admin_emails` includes ADMIN_EMAIL (e.g. the local runtime
with SPIN_VARIABLE_ADMIN_EMAILS). Uploads FILES (default 100) small compressible files, one at a
time (each completion enqueues a `dedup` job, which enqueues `compress`), waits for every job,
then prints p50/p99 of `updatedAt - createdAt` per kind, and the wall time, from the jobs'
own rows (`GET /api/admin/jobs`). Standard library only."""

import statistics
import sys
import time
from datetime import datetime
from api import call, percentile


def millis(stamp):
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp() * 1000


def main():
    base, admin = sys.argv[1].rstrip("/"), sys.argv[2]
    files = int(sys.argv[3]) if len(sys.argv) > 3 else 100
    account = {"email": admin, "password": "job latency bench password"}
    call(base, "POST", "/api/auth/register", body=account)
    status, login = call(base, "POST", "/api/auth/login", body=account)
    assert status == 200, login
    token = login["accessToken"]
    words = b"edge object store region replica chunk manifest lease sweep block queue "
    started = time.time()
    subjects = set()
    for i in range(files):
        content = (words * 700)[: 40_000 + i]
        status, f = call(base, "POST", "/api/files", token,
                         {"name": f"job-{i}.txt", "size": len(content), "compressionEnabled": True})
        assert status == 201, f
        status, chunk = call(base, "POST", f"/api/files/{f['id']}/chunks/0", token, content, "application/octet-stream")
        assert status in (200, 201), chunk
        subjects.add(f["id"])
    deadline = time.time() + 300
    while True:
        status, listing = call(base, "GET", "/api/admin/jobs?limit=1000", token)
        assert status == 200, listing
        mine = [j for j in listing["jobs"] if j["subject"] in subjects]
        busy = any(listing["counts"].get(state) for state in ("queued", "running"))
        # Each file gets dedup then compress.
        if len(mine) >= 2 * files and not busy:
            break
        if time.time() > deadline:
            sys.exit(f"jobs did not settle in 5 minutes: {listing['counts']}")
        time.sleep(0.05)
    wall = time.time() - started
    print(f"{files} uploads, {len(mine)} jobs, all settled in {wall:.1f} s")
    for kind in sorted({j["kind"] for j in mine}):
        latencies = [millis(j["updatedAt"]) - millis(j["createdAt"]) for j in mine if j["kind"] == kind]
        dead = sum(1 for j in mine if j["kind"] == kind and j["state"] == "dead")
        print(f"{kind:<9} commit -> done: p50 {statistics.median(latencies):.0f} ms, p99 {percentile(latencies, 99):.0f} ms"
              f" ({len(latencies)} jobs, {dead} dead)")


if __name__ == "__main__":
    main()
