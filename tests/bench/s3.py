"""The S3 API against s3s-fs (the s3s project's file-system S3 server, infra/local/s3), and
the 64 MiB download against nginx serving the same bytes from a file when nginx is installed:
one run, the same machine, the same clients.

    python3 tests/bench/s3.py BASE_URL [--small N] [--keys N]

BASE_URL is a running VaultX deployment (`./infra/local/up`, or `spin up`); the script makes
its own account and access key there, and starts s3s-fs (and nginx) itself. Prints one table:
per workload VaultX's figure, s3s-fs's, and their ratio (and nginx's, for the download).

Workloads: 4 KiB PutObject and GetObject at 16 concurrent requests (boto3, a thread pool;
objects/s), one 64 MiB PutObject (boto3) and GetObject (a presigned URL read with urllib3, so
nginx is read by the same client; MiB/s, the median of 5 after a warm-up), and listing 10,000
keys with ListObjectsV2 (pages of 1,000; seconds, and keys/s).
"""
import argparse
import concurrent.futures
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

import boto3
import urllib3
from botocore.config import Config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MIB = 1024 * 1024


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def rest(base, method, path, body=None, token=None):
    req = urllib.request.Request(base + path, data=None if body is None else json.dumps(body).encode(), method=method)
    req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", f"Bearer {token}")
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read() or b"null")


def vaultx_key(base):
    email = f"bench-s3-{uuid.uuid4().hex[:10]}@example.com"
    creds = {"email": email, "password": "correct horse battery staple"}
    rest(base, "POST", "/api/auth/register", creds)
    token = rest(base, "POST", "/api/auth/login", creds)["accessToken"]
    key = rest(base, "POST", "/api/users/me/access-keys", {"name": "bench"}, token)
    return key["accessKeyId"], key["secretAccessKey"]


def client(endpoint, key, secret):
    config = Config(s3={"addressing_style": "path"}, signature_version="s3v4", max_pool_connections=32, retries={"max_attempts": 1})
    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=key, aws_secret_access_key=secret, region_name="us-east-1", config=config)


def rate(n, seconds):
    return n / seconds if seconds > 0 else float("inf")


class Figures(dict):
    """A server's figures, each also told on stderr as it is measured (a long run shows where
    it is)."""

    def __init__(self, server):
        super().__init__()
        self.server = server

    def __setitem__(self, workload, value):
        print(f"{self.server}: {workload}: {value:.1f}", file=sys.stderr, flush=True)
        super().__setitem__(workload, value)


def measure(server, s3, bucket, small, keys, http):
    """One server's figures: {workload: value}."""
    out = Figures(server)
    body = random.Random(1).randbytes(4096)
    names = [f"small/{i:06}" for i in range(small)]
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket=bucket, Key=k, Body=body), names[:64]))  # warm-up
        started = time.perf_counter()
        list(pool.map(lambda k: s3.put_object(Bucket=bucket, Key=k, Body=body), names))
        out["4 KiB PUT, objects/s"] = rate(small, time.perf_counter() - started)
        started = time.perf_counter()
        got = list(pool.map(lambda k: s3.get_object(Bucket=bucket, Key=k)["Body"].read(), names))
        out["4 KiB GET, objects/s"] = rate(small, time.perf_counter() - started)
        assert all(g == body for g in got)
        # The listing: 10,000 keys (the 4 KiB objects count towards them).
        rest_keys = [f"list/{i:06}" for i in range(max(0, keys - small))]
        list(pool.map(lambda k: s3.put_object(Bucket=bucket, Key=k, Body=b"x"), rest_keys))
    started = time.perf_counter()
    listed = sum(len(page.get("Contents", [])) for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket))
    seconds = time.perf_counter() - started
    assert listed == max(keys, small), listed
    out[f"ListObjectsV2 of {listed} keys, keys/s"] = rate(listed, seconds)
    big = random.Random(2).randbytes(64 * MIB)
    times = []
    for _ in range(4):
        started = time.perf_counter()
        s3.put_object(Bucket=bucket, Key="big.bin", Body=big)
        times.append(time.perf_counter() - started)
    out["64 MiB PUT, MiB/s"] = 64 / statistics.median(times[1:])
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "big.bin"}, ExpiresIn=3600)
    out["64 MiB GET, MiB/s"] = download(http, url, len(big))
    return out


def download(http, url, size, runs=5):
    """MiB/s of reading `url` whole, the median of `runs` after a warm-up."""
    times = []
    for _ in range(runs + 1):
        started = time.perf_counter()
        r = http.request("GET", url, preload_content=False)
        n = sum(len(c) for c in r.stream(1 << 20))
        r.release_conn()
        assert r.status == 200 and n == size, (r.status, n)
        times.append(time.perf_counter() - started)
    return size / MIB / statistics.median(times[1:])


def start_s3s_fs(work):
    port = free_port()
    secret = uuid.uuid4().hex
    subprocess.run([os.path.join(ROOT, "infra/local/s3"), "start", os.path.join(work, "s3s"), str(port), "bench", secret, "bench"], check=True)
    return f"http://127.0.0.1:{port}", "bench", secret


def start_nginx(work, big):
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if not nginx:
        return None, None
    root = os.path.join(work, "www")
    os.makedirs(root)
    with open(os.path.join(root, "big.bin"), "wb") as f:
        f.write(big)
    # nginx's workers run as another user: they must be able to read the file.
    for path in (work, root, os.path.join(root, "big.bin")):
        os.chmod(path, 0o755)
    port = free_port()
    conf = os.path.join(work, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"daemon off; pid {work}/nginx.pid; error_log {work}/nginx.log; events {{}} http {{ access_log off; sendfile on; "
                f"server {{ listen 127.0.0.1:{port}; root {root}; }} }}\n")
    proc = subprocess.Popen([nginx, "-c", conf, "-p", work], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return proc, f"http://127.0.0.1:{port}/big.bin"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    return None, None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("base")
    ap.add_argument("--small", type=int, default=2000)
    ap.add_argument("--keys", type=int, default=10_000)
    args = ap.parse_args()
    base = args.base.rstrip("/")
    http = urllib3.PoolManager(maxsize=4)
    work = tempfile.mkdtemp()
    try:
        key, secret = vaultx_key(base)
        vaultx = client(base, key, secret)
        bucket = f"bench-{uuid.uuid4().hex[:12]}"
        vaultx.create_bucket(Bucket=bucket)
        fs_endpoint, fs_key, fs_secret = start_s3s_fs(work)
        fs = client(fs_endpoint, fs_key, fs_secret)
        results = {"VaultX": measure("VaultX", vaultx, bucket, args.small, args.keys, http), "s3s-fs": measure("s3s-fs", fs, "bench", args.small, args.keys, http)}
        print(f"{'workload':<34} {'VaultX':>10} {'s3s-fs':>10} {'VaultX ÷ s3s-fs':>16}")
        for workload, value in results["VaultX"].items():
            other = results["s3s-fs"][workload]
            print(f"{workload:<34} {value:>10.1f} {other:>10.1f} {value / other:>16.2f}", flush=True)
        nginx, url = start_nginx(work, random.Random(2).randbytes(64 * MIB))
        nginx_get = download(http, url, 64 * MIB) if url else None
        if nginx:
            nginx.terminate()
        if nginx_get:
            v = results["VaultX"]["64 MiB GET, MiB/s"]
            print(f"{'64 MiB GET vs nginx, MiB/s':<34} {v:>10.1f} {nginx_get:>10.1f} {v / nginx_get:>16.2f}  (nginx in the second column)")
        else:
            print("nginx is not installed: no download reference (Debian: apt-get install nginx-light)")
    finally:
        subprocess.run([os.path.join(ROOT, "infra/local/s3"), "stop", os.path.join(work, "s3s")], check=False)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
