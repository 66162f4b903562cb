"""What the benchmark scripts share: JSON requests to a VaultX deployment, a signed-in user,
percentiles."""
import json, urllib.error, urllib.request


def request(base, method, path, token=None, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method)
    if data is not None:
        req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", "Bearer " + token)
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read() or b"null")


def user(base, email):
    """Registers and signs in `email`: (access token, user id)."""
    creds = {"email": email, "password": "correct horse battery staple"}
    request(base, "POST", "/api/auth/register", body=creds)
    token = request(base, "POST", "/api/auth/login", body=creds)["accessToken"]
    return token, request(base, "GET", "/api/users/me", token)["id"]


def call(base, method, path, token=None, body=None, content_type="application/json"):
    """One request whose failure is an answer too: (status, JSON body). `body` is bytes as
    they are (sent as `content_type`), or anything else as JSON."""
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    if token:
        req.add_header("authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("content-type", content_type)
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def percentile(values, p):
    """The nearest-rank `p`th percentile of `values`."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def sign_in(base, email, password="bench password"):
    """Registers `email` if it is new and signs in: the access token."""
    account = {"email": email, "password": password}
    call(base, "POST", "/api/auth/register", body=account)
    status, login = call(base, "POST", "/api/auth/login", body=account)
    assert status == 200, login
    return login["accessToken"]


def region_of(base, admin, store, kind="key-value", code=None):
    """The code of the region whose node serves the blob store `kind`/`store`, created (as
    `code`, else `bench-<store>`) with one node if none does."""
    status, nodes = call(base, "GET", "/api/storage/nodes", admin)
    assert status == 200, nodes
    for n in nodes["nodes"]:
        if n["kind"] == kind and n["store"] == store:
            return n["regionCode"]
    code = code or "bench-" + store.replace("_", "-")
    call(base, "POST", "/api/storage/regions", admin, {"code": code, "name": f"bench {store}"})
    status, node = call(base, "POST", "/api/storage/nodes", admin,
                        {"regionId": code, "name": store.replace("_", "-"), "kind": kind, "store": store, "capacityBytes": 1 << 40})
    assert status == 201, node
    return code
