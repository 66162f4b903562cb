#!/usr/bin/env python3
"""Small-request and upload latency, and the cross-account deduplication timing oracle, against
one or more running VaultX deployments (given as base URLs), measured in one run so figures
compare as ratios. Standard library only; sequential keep-alive requests.

  tests/bench/latency.py http://127.0.0.1:3000 [http://127.0.0.1:3001 ...]

For each deployment it prints p50/p99 of
  readiness     GET /health/readiness (one SQLite query)
  file GET      GET /api/files/:id (token, account and file lookups)
  chunk 64 KiB  POST of a new 64 KiB chunk (a one-chunk file: attach + completion)
  chunk 5 MiB   POST of a new 5 MiB chunk (likewise)
and the oracle: account B uploading 5 MiB chunks account A already stores, against chunks
nobody stores. `separable` is the accuracy of the best time threshold at telling the two apart
(0.5: indistinguishable, 1.0: fully separable). With several deployments, ratios to the first.
"""
import hashlib, http.client, json, os, statistics, sys, time, urllib.parse

def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]

class Conn:
    def __init__(self, base):
        u = urllib.parse.urlparse(base)
        self.c = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
    def req(self, method, path, body=None, headers=None):
        t = time.perf_counter()
        self.c.request(method, path, body=body, headers=headers or {})
        r = self.c.getresponse()
        data = r.read()
        return r.status, data, (time.perf_counter() - t) * 1000

def account(conn):
    email = f"bench-{time.time_ns()}-{os.getpid()}@example.com"
    body = json.dumps({"email": email, "password": "correct horse battery staple"})
    h = {"content-type": "application/json"}
    assert conn.req("POST", "/api/auth/register", body, h)[0] == 201
    s, data, _ = conn.req("POST", "/api/auth/login", body, h)
    return {"authorization": "Bearer " + json.loads(data)["accessToken"]}

def new_file(conn, auth, size):
    s, data, _ = conn.req("POST", "/api/files", json.dumps({"name": "b.bin", "size": size}), {**auth, "content-type": "application/json"})
    assert s == 201, data
    return json.loads(data)["id"]

def put(conn, auth, fid, data):
    s, body, ms = conn.req("POST", f"/api/files/{fid}/chunks/0", data, {**auth, "content-type": "application/octet-stream"})
    assert s in (200, 201), body
    return ms

def measure(base):
    conn = Conn(base)
    a, b = account(conn), account(conn)
    out = {}
    out["readiness"] = [conn.req("GET", "/health/readiness")[2] for _ in range(2000)]
    fid = new_file(conn, a, 0)
    out["file GET"] = [conn.req("GET", f"/api/files/{fid}", None, a)[2] for _ in range(2000)]
    small = 64 * 1024
    out["chunk 64 KiB"] = [put(conn, a, new_file(conn, a, small), os.urandom(small)) for _ in range(300)]
    big = 5 * 1024 * 1024
    out["chunk 5 MiB"] = [put(conn, a, new_file(conn, a, big), os.urandom(big)) for _ in range(30)]
    held, fresh = [], []
    for _ in range(30):
        x, y = os.urandom(big), os.urandom(big)
        put(conn, a, new_file(conn, a, big), x)          # A stores x
        held.append(put(conn, b, new_file(conn, b, big), x))   # B uploads what A stores
        fresh.append(put(conn, b, new_file(conn, b, big), y))  # B uploads what nobody stores
    return out, held, fresh

def separable(held, fresh):
    best = 0.5
    for t in sorted(held + fresh):
        acc = (sum(h <= t for h in held) + sum(f > t for f in fresh)) / (len(held) + len(fresh))
        best = max(best, acc, 1 - acc)
    return best

results = [(base, *measure(base)) for base in sys.argv[1:]]
first = results[0][1]
for base, out, held, fresh in results:
    print(f"== {base}")
    for name, xs in out.items():
        p50, p99 = pct(xs, 50), pct(xs, 99)
        ratio = f"  (p50 {p50 / pct(first[name], 50):.2f}x the first)" if len(results) > 1 else ""
        print(f"  {name:<14} p50 {p50:8.2f} ms   p99 {p99:8.2f} ms{ratio}")
    mh, mf = statistics.median(held), statistics.median(fresh)
    print(f"  oracle: another account's content p50 {mh:.1f} ms, new content p50 {mf:.1f} ms, ratio {mh / mf:.2f}, separable {separable(held, fresh):.2f}")
