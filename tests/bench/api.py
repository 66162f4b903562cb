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
