#!/usr/bin/env python3
"""Metadata latency, SQLite vs PostgreSQL, at 10 k and at 1 M files, in one run: two local
runtimes from the same build, one per backend (the PostgreSQL one on a fresh database of the
server at 127.0.0.1:5432), the same requests through the HTTP API of each.

Each backend and size gets its own runtime and database, all seeded first and then measured
back to back (with `--after PID`, once that process has exited). Measured per backend and size: a small metadata GET (`GET /api/files/:id`), the list route
(`GET /api/files`, first page), and search (newest first, a page after a name cursor, a tag, a
name substring). The files are seeded inside each database by one SQL statement per table (the
API would take hours to create a million), as rows the API itself writes: heads with names and
their trigrams, one tag each and 'red' on 1 in 10. A second user owns as many files, so every
index holds other users' rows too.

    cargo build --release -p vaultx-runtime && <build the components> && tests/bench/metadata.py [--max 1000000] [--after PID]
"""
import concurrent.futures, os, shutil, statistics, subprocess, sys, tempfile, time, uuid

from api import request, user

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PG_SERVER = "postgres://postgres@127.0.0.1:5432"
ROUNDS = 300
T0 = 1_760_000_000_000
QUERIES = [
    ("metadata GET /api/files/:id", "/api/files/{file}"),
    ("list GET /api/files (page 1)", "/api/files?limit=20"),
    ("search: newest first", "/api/files/search?limit=20"),
    ("search: by name, after a cursor", "/api/files/search?limit=20&sort=name&order=asc&cursor={cursor}"),
    ("search: tag", "/api/files/search?limit=20&tags=red"),
    ("search: name contains (rare trigram)", "/api/files/search?limit=20&q=4321"),
]

# One dialect each: the series of numbers, a UUID-shaped id and the file name from number i.
DIALECTS = {
    "sqlite": {
        "series": "WITH RECURSIVE g_{c}({c}) AS (SELECT {lo} UNION ALL SELECT {c} + 1 FROM g_{c} WHERE {c} + 1 < {hi}) SELECT {c} FROM g_{c}",
        "id": "printf('%08x-{salt}-4000-8000-%012x', i, i)",
        "name": "printf('file-%07d.dat', i)",
    },
    "postgres": {
        "series": "SELECT generate_series({lo}, {hi} - 1) AS {c}",
        "id": "lpad(to_hex(i), 8, '0') || '-{salt}-4000-8000-' || lpad(to_hex(i), 12, '0')",
        "name": "'file-' || lpad(i::text, 7, '0') || '.dat'",
    },
}


def seed_sql(dialect, owner, lo, hi):
    d = DIALECTS[dialect]
    series = d["series"].format(lo=lo, hi=hi, c="i")
    offsets = d["series"].format(lo=1, hi=15, c="k")
    fid, name = d["id"].format(salt=owner[:4]), d["name"]
    mime = "CASE i % 4 WHEN 0 THEN 'image/png' WHEN 1 THEN 'image/jpeg' WHEN 2 THEN 'text/plain' ELSE 'application/pdf' END"
    return [
        f"INSERT INTO files (id, owner_id, name, original_name, mime_type, size, chunk_size, compression_enabled, deduplication_enabled, status, created_at, updated_at) "
        f"SELECT {fid}, '{owner}', {name}, {name}, {mime}, (i * 37) % 1000, 65536, 0, 1, 'available', {T0} + i * 1000, {T0} + i * 1000 FROM ({series}) s",
        f"INSERT INTO file_tags (file_id, owner_id, tag) SELECT {fid}, '{owner}', 'batch-' || (i / 100) FROM ({series}) s",
        f"INSERT INTO file_tags (file_id, owner_id, tag) SELECT {fid}, '{owner}', 'red' FROM ({series}) s WHERE i % 10 = 0",
        # Names are 16 characters: 14 trigrams each (the API writes the distinct ones).
        f"INSERT INTO file_name_grams (owner_id, gram, file_id) SELECT DISTINCT '{owner}', substr({name}, k, 3), {fid} "
        f"FROM ({series}) s, ({offsets}) t",
    ]


class Backend:
    def __init__(self, kind, work):
        self.kind, self.dir = kind, os.path.join(work, kind)
        os.makedirs(self.dir)
        self.db = f"vaultx_bench_{os.getpid()}_{os.path.basename(work)}"
        env = dict(os.environ, SPIN_VARIABLE_JWT_SECRET="bench-jwt-secret-bench-jwt-secret-0123",
                   SPIN_VARIABLE_URL_SIGNING_KEYS="k1:bench-url-key-bench-url-key-0123456789")
        if kind == "postgres":
            psql("postgres", f"DROP DATABASE IF EXISTS {self.db}")
            psql("postgres", f"CREATE DATABASE {self.db}")
            env["SPIN_VARIABLE_DATABASE_URL"] = f"{PG_SERVER}/{self.db}"
        ready = os.path.join(self.dir, "url")
        self.process = subprocess.Popen(
            [os.path.join(ROOT, "target/release/vaultx-runtime"), "--manifest", os.path.join(ROOT, "spin.toml"), "--listen", "127.0.0.1:0",
             "--data-dir", os.path.join(self.dir, "data"), "--cache-dir", os.path.join(ROOT, "target/vaultx-cache"),
             "--migrations", os.path.join(ROOT, "infra/migrations"), "--ready-file", ready, "--sweep-interval", "0"],
            env=env, stdout=open(os.path.join(self.dir, "log"), "w"), stderr=subprocess.STDOUT)
        for _ in range(1200):
            if os.path.exists(ready) and open(ready).read().strip():
                break
            time.sleep(0.25)
        self.base = open(ready).read().strip()

    def run_sql(self, statements):
        if self.kind == "postgres":
            psql(self.db, ";\n".join(statements))
        else:
            script = "PRAGMA foreign_keys = ON; PRAGMA synchronous = OFF; BEGIN;\n" + ";\n".join(statements) + ";\nCOMMIT;"
            subprocess.run(["sqlite3", os.path.join(self.dir, "data", "sqlite_db.db")], input=script.encode(), check=True)

    def analyze(self):
        self.run_sql(["ANALYZE"])

    def stop(self):
        self.process.terminate()
        self.process.wait()
        if self.kind == "postgres":
            psql("postgres", f"DROP DATABASE IF EXISTS {self.db}")


def psql(db, sql):
    subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", f"{PG_SERVER}/{db}"], input=sql.encode(), check=True, stdout=subprocess.DEVNULL)


def grow(b, owners, lo, hi):
    step = 100_000
    for start in range(lo, hi, step):
        for o in owners:
            b.run_sql(seed_sql(b.kind, o, start, min(hi, start + step)))
    b.analyze()


def measure(b):
    # Seeding a million rows can outlast an access token.
    b.token = request(b.base, "POST", "/api/auth/login", body={"email": b.email, "password": "correct horse battery staple"})["accessToken"]
    first = request(b.base, "GET", "/api/files/search?sort=name&order=asc&limit=20", b.token)
    values = {"cursor": first["nextCursor"], "file": b.file}
    out = {}
    for name, q in QUERIES:
        path = q.format(**values)
        for _ in range(10):
            request(b.base, "GET", path, b.token)
        times = []
        for _ in range(ROUNDS):
            t = time.perf_counter()
            request(b.base, "GET", path, b.token)
            times.append((time.perf_counter() - t) * 1000)
        times.sort()
        out[name] = (statistics.median(times), times[int(len(times) * 0.99) - 1])
    return out


def main():
    big = int(sys.argv[sys.argv.index("--max") + 1]) if "--max" in sys.argv else 1_000_000
    # Measure only once this process (e.g. a build) has exited: seeding can overlap other
    # work, the timed part must not.
    after = int(sys.argv[sys.argv.index("--after") + 1]) if "--after" in sys.argv else None
    small = 10_000
    work = tempfile.mkdtemp()
    backends = []
    try:
        # One runtime per backend and size, all seeded first, then all measured back to back.
        for n in (small, big):
            for kind in ("sqlite", "postgres"):
                b = Backend(kind, os.path.join(work, str(n)))
                backends.append(b)
                b.n = n
                b.email = f"bench-{uuid.uuid4()}@example.com"
                b.token, owner = user(b.base, b.email)
                _, other = user(b.base, f"bench-{uuid.uuid4()}@example.com")
                b.owners = [owner, other]
                # One file made by the API: the metadata GET reads it among the seeded rows.
                b.file = request(b.base, "POST", "/api/files", b.token, {"name": "probe.bin", "size": 0})["id"]

        def seed(b):
            t = time.time()
            grow(b, b.owners, 0, b.n)
            print(f"{b.kind}: seeded {b.n:,} files per user in {time.time() - t:.1f} s", flush=True)

        # The SQLite and PostgreSQL seeds run side by side (one core each).
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            for kind in ("sqlite", "postgres"):
                pool.submit(lambda kind=kind: [seed(b) for b in backends if b.kind == kind])
        while after is not None and os.path.exists(f"/proc/{after}"):
            time.sleep(5)
        results = {}
        for b in backends:
            results[(b.kind, b.n)] = measure(b)
        print(f"\nlatency through the API, {ROUNDS} runs each, p50 (p99) in ms; ratio = PostgreSQL p50 / SQLite p50")
        for n in (small, big):
            print(f"\n{n:,} files per user")
            print(f"{'request':38} {'SQLite':>16} {'PostgreSQL':>16} {'ratio':>6}")
            for name, _ in QUERIES:
                s, p = results[("sqlite", n)][name], results[("postgres", n)][name]
                print(f"{name:38} {s[0]:7.2f} ({s[1]:6.2f}) {p[0]:7.2f} ({p[1]:6.2f}) {p[0] / s[0]:6.2f}")
        print(f"\np50 at {big:,} / p50 at {small:,} files")
        print(f"{'request':38} {'SQLite':>8} {'PostgreSQL':>10}")
        for name, _ in QUERIES:
            print(f"{name:38} " + " ".join(f"{results[(k, big)][name][0] / results[(k, small)][name][0]:{w}.2f}" for k, w in (("sqlite", 8), ("postgres", 10))))
    finally:
        for b in backends:
            b.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
