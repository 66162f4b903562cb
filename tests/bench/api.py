"""What the benchmark scripts share: JSON requests to a VaultX deployment, and a signed-in user."""
import json, urllib.request


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
