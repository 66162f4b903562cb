#!/usr/bin/env python3
"""Writes shared/api/openapi.json, the OpenAPI 3.1 contract of the whole API (served at
GET /api/openapi.json), from the operations below. Run after changing a route; `--check`
fails when the file is not current (tests/run runs it). A unit test checks that its paths are
exactly the routes of `routes::TABLE` (so spin.toml's and the Worker's), and schemathesis
checks the running API against it (tests/run)."""
import json
import sys

OUT = "shared/api/openapi.json"


def ref(name):
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema):
    """A property that may also be null (serde reads null as absent for optional fields)."""
    if "type" in schema:
        t = schema["type"]
        return {**schema, "type": sorted(set(t if isinstance(t, list) else [t]) | {"null"})}
    if "enum" in schema:
        return {**schema, "enum": schema["enum"] + [None]}
    if "const" in schema:
        return {"enum": [schema["const"], None]}
    return {"anyOf": [schema, {"type": "null"}]}


def obj(properties, required=(), closed=False, **extra):
    if closed:
        # A request body: its optional fields may be sent as null.
        properties = {k: (v if k in required else nullable(v)) for k, v in properties.items()}
    schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    if closed:
        # The server refuses unknown fields (422), so the contract says so.
        schema["additionalProperties"] = False
    schema.update(extra)
    return schema


STRING = {"type": "string"}
INT = {"type": "integer"}
BOOL = {"type": "boolean"}
TIME = {"type": "string", "format": "date-time"}
NULL_STRING = {"type": ["string", "null"]}
NULL_INT = {"type": ["integer", "null"]}
NULL_TIME = {"type": ["string", "null"], "format": "date-time"}
ANY_OBJECT = {"type": "object"}

SCHEMAS = {
    "Problem": obj(
        {
            "type": STRING,
            "title": STRING,
            "status": INT,
            "detail": STRING,
            "requestId": {"type": "string", "description": "The request's id, as in X-Request-Id: what to quote when reporting an error."},
            "errors": {"type": "array", "items": obj({"field": STRING, "message": STRING})},
        },
        ["type", "title", "status"],
        description="RFC 9457 problem details; `type` is urn:vaultx:problem:<slug> (docs/api.md, Errors).",
    ),
    "Credentials": obj({"email": {"type": "string", "maxLength": 320}, "password": {"type": "string", "maxLength": 256}}, ["email", "password"], closed=True),
    "User": obj({"id": STRING, "email": STRING, "createdAt": TIME, "role": STRING}, ["id", "email"]),
    "AccessKeyCreate": obj({"name": {"type": "string", "maxLength": 64}}, closed=True),
    "AccessKey": obj({"accessKeyId": {"type": "string", "pattern": "^VX[A-Z2-7]{18}$"}, "name": STRING, "createdAt": TIME}, ["accessKeyId", "name", "createdAt"]),
    "NewAccessKey": obj({"accessKeyId": {"type": "string", "pattern": "^VX[A-Z2-7]{18}$"}, "secretAccessKey": {"type": "string", "minLength": 40, "maxLength": 40}, "name": STRING, "createdAt": TIME},
                        ["accessKeyId", "secretAccessKey", "name", "createdAt"], description="The secret is shown this once."),
    "AccessKeys": obj({"items": {"type": "array", "items": ref("AccessKey")}}, ["items"]),
    "AccessToken": obj({"accessToken": STRING, "tokenType": {"const": "Bearer"}, "expiresIn": INT}, ["accessToken", "tokenType", "expiresIn"]),
    "File": obj(
        {
            "id": STRING,
            "name": STRING,
            "originalName": STRING,
            "mimeType": STRING,
            "size": INT,
            "chunkSize": INT,
            "totalChunks": INT,
            "status": {"enum": ["uploading", "available", "archived", "invalid"]},
            "checksum": NULL_STRING,
            "checksumVerified": BOOL,
            "compressionEnabled": BOOL,
            "deduplicationEnabled": BOOL,
            "etag": NULL_STRING,
            "version": INT,
            "versionCount": INT,
            "tags": {"type": "array", "items": STRING},
            "metadata": {"type": "object", "additionalProperties": STRING},
            "createdAt": TIME,
            "updatedAt": TIME,
        },
        ["id", "name", "size", "status"],
    ),
    "FileCreate": obj(
        {
            "name": {"type": "string", "minLength": 1, "maxLength": 255},
            "originalName": {"type": "string", "maxLength": 255},
            "mimeType": {"type": "string", "maxLength": 255},
            "size": {"type": "integer", "minimum": 0},
            "chunkSize": {"type": "integer", "minimum": 65536, "maximum": 16777216},
            "compressionEnabled": BOOL,
            "deduplicationEnabled": BOOL,
            "checksum": {"type": "string", "pattern": "^sha256:[0-9a-f]{64}$"},
            "checksumCrc64nvme": STRING,
        },
        ["name", "size"],
        closed=True,
    ),
    "FilePatch": obj({"name": {"type": "string", "minLength": 1, "maxLength": 255}, "originalName": {"type": "string", "maxLength": 255}, "mimeType": {"type": "string", "maxLength": 255}}, closed=True),
    "FilePage": obj({"items": {"type": "array", "items": ref("File")}, "page": INT, "limit": INT, "total": INT}, ["items"]),
    "SearchPage": obj({"items": {"type": "array", "items": ref("File")}, "limit": INT, "nextCursor": NULL_STRING}, ["items"]),
    "Chunks": obj({"received": {"type": "array", "items": INT}, "missing": {"type": "array", "items": INT}, "totalChunks": INT, "chunkSize": INT, "status": STRING}, ["received", "missing"]),
    "ChunkStored": obj({"index": INT, "digest": STRING}),
    "SignedUrlRequest": obj(
        {"expirationSeconds": {"type": "integer", "minimum": 1, "maximum": 604800}, "permissions": {"type": "array", "items": {"const": "read"}}, "version": {"type": "integer", "minimum": 1}},
        closed=True,
    ),
    "SignedUrl": obj({"url": STRING, "path": STRING, "token": STRING, "expiresAt": TIME, "permissions": {"type": "array", "items": STRING}, "version": INT}, ["path", "token"]),
    "VersionCreate": obj(
        {"size": {"type": "integer", "minimum": 0}, "chunkSize": {"type": "integer", "minimum": 65536, "maximum": 16777216}, "checksum": {"type": "string", "pattern": "^sha256:[0-9a-f]{64}$"}, "checksumCrc64nvme": STRING},
        ["size"],
        closed=True,
    ),
    "Version": obj({"version": INT, "current": BOOL, "status": STRING, "size": INT, "uploadId": NULL_STRING, "createdAt": TIME}),
    # At most 10 distinct tags per file after the merge (the same tag sent twice counts once).
    "Tags": obj({"tags": {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 128}}}, ["tags"], closed=True),
    "MetadataChange": obj(
        {"set": {"type": "object", "additionalProperties": STRING}, "remove": {"type": "array", "items": STRING}, "replace": {"type": "object", "additionalProperties": STRING}},
        closed=True,
    ),
    "AuditPage": obj({"items": {"type": "array", "items": ANY_OBJECT}, "nextCursor": NULL_STRING}, ["items"]),
    "Usage": obj({"files": INT, "availableFiles": INT, "logicalBytes": INT, "storedBytes": INT, "savedBytes": INT, "byStatus": ANY_OBJECT, "versions": ANY_OBJECT, "quota": ANY_OBJECT, "remaining": ANY_OBJECT}),
    "Quota": obj({"maxBytes": {"type": "integer", "minimum": 0}, "maxFiles": {"type": "integer", "minimum": 0}}, ["maxBytes", "maxFiles"], closed=True),
    "Jobs": obj({"jobs": {"type": "array", "items": ANY_OBJECT}, "counts": ANY_OBJECT}, ["jobs"]),
    "RegionCreate": obj({"code": {"type": "string", "minLength": 1, "maxLength": 32}, "name": {"type": "string", "minLength": 1, "maxLength": 128}}, ["code", "name"], closed=True),
    "Region": obj({"id": STRING, "code": STRING, "name": STRING, "status": STRING, "health": STRING, "nodes": {"type": "array", "items": ANY_OBJECT}}, ["id", "code"]),
    "NodeCreate": obj(
        {"regionId": STRING, "name": {"type": "string", "minLength": 1, "maxLength": 128}, "kind": {"enum": ["key-value", "s3", "r2"]}, "store": {"type": "string", "minLength": 1}, "capacityBytes": {"type": "integer", "minimum": 0}},
        ["regionId", "name", "kind", "store"],
        closed=True,
    ),
    "Node": obj({"id": STRING, "regionId": STRING, "name": STRING, "kind": STRING, "store": STRING, "capacityBytes": INT, "status": STRING}, ["id", "regionId"]),
    "ReplicationPolicy": obj({"targetRegions": {"type": "array", "items": STRING, "minItems": 1}, "consistency": {"enum": ["eventual", "strong"]}}, ["targetRegions"], closed=True),
    "Health": obj({"status": STRING, "checks": ANY_OBJECT, "stores": {"type": "array", "items": ANY_OBJECT}}, ["status"]),
}

JSON = "application/json"


def body(schema, media=JSON, required=True):
    return {"required": required, "content": {media: {"schema": schema}}}


def ok(status, schema=None, description="OK", media=JSON):
    r = {"description": description}
    if schema is not None:
        r["content"] = {media: {"schema": schema}}
    return {str(status): r}


def path_param(name, description, schema=None):
    return {"name": name, "in": "path", "required": True, "description": description, "schema": schema or STRING}


def query(name, schema, description=""):
    p = {"name": name, "in": "query", "required": False, "schema": schema}
    if description:
        p["description"] = description
    return p


ID = path_param("id", "A file's id.")
FILE_ID = path_param("fileId", "A file's id.")
VERSION = path_param("version", "A version number (1, 2, …).", {"type": "integer", "minimum": 1})
SORT = query("sort", {"enum": ["createdAt", "updatedAt", "name", "size"]})
ORDER = query("order", {"enum": ["asc", "desc"]})
STATUS = query("status", {"enum": ["uploading", "available", "archived", "invalid"]})

CHUNK_PARAMS = [ID, path_param("index", "The chunk's index, a plain decimal.", {"type": "integer", "minimum": 0}),
                {"name": "Content-Digest", "in": "header", "required": False, "schema": STRING, "description": "sha-256=:<base64>: — a mismatch stores nothing"}]
CHUNK_BODY = {"required": True, "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                                            "multipart/form-data": {"schema": obj({"chunk": {"type": "string", "format": "binary"}}, ["chunk"])}}}

# path, method, operation id, summary, auth (None | "user" | "admin" | "metrics"), parameters,
# request body, success responses (besides the problem documents every operation may answer).
OPS = [
    ("/api/auth/register", "post", "register", "Create an account", None, [], body(ref("Credentials")), ok(201, ref("User"), "Created")),
    ("/api/auth/login", "post", "login", "Sign in: an HS256 access token", None, [], body(ref("Credentials")), ok(200, ref("AccessToken"))),
    ("/api/users/me", "get", "me", "The account of the bearer token", "user", [], None, ok(200, ref("User"))),
    ("/api/users/me/access-keys", "get", "listAccessKeys", "The caller's S3 access keys, without their secrets", "user", [], None, ok(200, ref("AccessKeys"))),
    ("/api/users/me/access-keys", "post", "createAccessKey", "A new S3 access key; its secret is shown this once (at most 5 per account)", "user", [], body(ref("AccessKeyCreate"), required=False), ok(201, ref("NewAccessKey"), "Created")),
    ("/api/users/me/access-keys/{keyId}", "delete", "deleteAccessKey", "Revoke one of the caller's access keys", "user", [path_param("keyId", "An access key id.")], None, ok(204, description="Deleted")),
    ("/api/files", "post", "createFile", "Create a file entry (status uploading; an empty file is available at once)", "user", [], body(ref("FileCreate")), ok(201, ref("File"), "Created")),
    ("/api/files", "get", "listFiles", "The caller's files, a page at a time", "user",
     [query("page", {"type": "integer", "minimum": 1}), query("limit", {"type": "integer", "minimum": 1, "maximum": 100}), SORT, ORDER, STATUS], None, ok(200, ref("FilePage"))),
    ("/api/files/stats/usage", "get", "usage", "The caller's storage usage and quota", "user", [], None, ok(200, ref("Usage"))),
    ("/api/files/search", "get", "searchFiles", "Search the caller's files (keyset cursor)", "user",
     [query("q", STRING, "name contains (case-insensitive)"), query("tags", STRING, "all of, comma-separated"), query("anyTags", STRING, "any of, comma-separated"),
      query("type", STRING, "image/png or image/*"), query("minSize", {"type": "integer", "minimum": 0}), query("maxSize", {"type": "integer", "minimum": 0}),
      query("createdFrom", STRING), query("createdTo", STRING), query("updatedFrom", STRING), query("updatedTo", STRING), STATUS,
      query("minVersions", {"type": "integer", "minimum": 0}), query("maxVersions", {"type": "integer", "minimum": 0}), SORT, ORDER,
      query("limit", {"type": "integer", "minimum": 1, "maximum": 100}), query("cursor", STRING, "nextCursor of the previous page, same criteria")], None, ok(200, ref("SearchPage"))),
    ("/api/files/{id}", "get", "getFile", "One file, with its version, tags and metadata", "user", [ID], None, ok(200, ref("File"))),
    ("/api/files/{id}", "patch", "patchFile", "Change a file's name, original name or media type", "user", [ID], body(ref("FilePatch")), ok(200, ref("File"))),
    ("/api/files/{id}", "delete", "deleteFile", "Delete a file and every version", "user", [ID], None, ok(204, None, "Deleted")),
    ("/api/files/{id}/chunks", "get", "chunks", "Upload progress: received and missing chunks", "user", [ID], None, ok(200, ref("Chunks"))),
    *[("/api/files/{id}/chunks/{index}", method, op_id, "Upload one chunk (raw or multipart field `chunk`; PUT and POST alike)", "user", CHUNK_PARAMS, CHUNK_BODY,
       {**ok(201, ref("ChunkStored"), "Stored"), **ok(200, ref("ChunkStored"), "Already had it")}) for method, op_id in [("post", "postChunk"), ("put", "putChunk")]],
    ("/api/files/{id}/complete", "post", "complete", "Finish an upload whose chunks have all arrived", "user", [ID], None, ok(200, ref("File"))),
    ("/api/files/{id}/signed-url", "post", "signedUrl", "A temporary download URL", "user", [ID], body(ref("SignedUrlRequest"), required=False),
     {"201": {"description": "Created", "content": {JSON: {"schema": ref("SignedUrl")}},
              "links": {"download": {"operationId": "download", "parameters": {"token": "$response.body#/token"}}}}}),
    ("/api/files/{id}/versions", "get", "versions", "A file's versions, oldest first", "user", [ID], None, ok(200, obj({"count": INT, "current": INT, "items": {"type": "array", "items": ref("Version")}}, ["items"]))),
    ("/api/files/{id}/versions", "post", "createVersion", "Start a new version (its chunks go to /api/files/<uploadId>/chunks/:index)", "user", [ID], body(ref("VersionCreate")), ok(201, ANY_OBJECT, "Created")),
    ("/api/files/{id}/versions/{version}", "get", "version", "One version", "user", [ID, VERSION], None, ok(200, ref("Version"))),
    ("/api/files/{id}/versions/{version}", "delete", "deleteVersion", "Delete a version that is not the current one", "user", [ID, VERSION], None, ok(204, None, "Deleted")),
    ("/api/files/{id}/versions/{version}/restore", "post", "restoreVersion", "Make an older version current again (no data copied)", "user", [ID, VERSION], None, ok(200, ref("File"))),
    ("/api/files/{id}/archive", "post", "archive", "Archive a file: kept, not served", "user", [ID], None, ok(200, ref("File"))),
    ("/api/files/{id}/restore-archive", "post", "restoreArchive", "Bring an archived file back", "user", [ID], None, ok(200, ref("File"))),
    ("/api/files/{id}/tags", "get", "tags", "A file's tags", "user", [ID], None, ok(200, obj({"tags": {"type": "array", "items": STRING}}, ["tags"]))),
    ("/api/files/{id}/tags", "post", "addTags", "Add tags (at most 10 per file) → the file", "user", [ID], body(ref("Tags")), ok(200, ref("File"))),
    ("/api/files/{id}/tags/{tag}", "delete", "removeTag", "Remove one tag", "user", [ID, path_param("tag", "The tag, percent-encoded.")], None, ok(204, None, "Removed")),
    ("/api/files/{id}/metadata", "get", "metadata", "A file's custom metadata", "user", [ID], None, ok(200, obj({"metadata": {"type": "object", "additionalProperties": STRING}}))),
    ("/api/files/{id}/metadata", "post", "changeMetadata", "Set, remove or replace metadata keys (2 KiB in all)", "user", [ID], body(ref("MetadataChange")), ok(200, ref("File"))),
    ("/api/files/{id}/audit", "get", "fileAudit", "The audit log of one of the caller's files", "user",
     [ID, query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}), query("cursor", STRING)], None, ok(200, ref("AuditPage"))),
    ("/api/files/download/{token}", "get", "download", "The bytes, through a signed URL (Range, ETag, If-None-Match, If-Range)", None,
     [path_param("token", "The signed URL's token."), {"name": "Range", "in": "header", "required": False, "schema": STRING}],
     None, {**ok(200, {"type": "string", "format": "binary"}, media="application/octet-stream"), **ok(206, {"type": "string", "format": "binary"}, "Partial content", "application/octet-stream"), **ok(304, None, "Not modified")}),
    ("/api/admin/integrity", "get", "integrity", "Audit every store's invariants (administrators)", "admin", [], None, ok(200, obj({"ok": BOOL, "violations": {"type": "array"}}, ["ok"]))),
    ("/api/admin/jobs", "get", "jobs", "Background jobs by state and kind (administrators)", "admin",
     [query("state", {"enum": ["queued", "running", "done", "dead"]}), query("kind", {"enum": ["verify", "dedup", "compress", "replicate"]}), query("limit", {"type": "integer", "minimum": 1, "maximum": 1000})], None, ok(200, ref("Jobs"))),
    ("/api/admin/jobs/{id}/retry", "post", "retryJob", "Retry a dead job (administrators)", "admin", [path_param("id", "A job's id.")], None, ok(200, ANY_OBJECT)),
    ("/api/admin/users/{id}/quota", "get", "quota", "A user's quota and use (administrators)", "admin", [path_param("id", "A user's id.")], None, ok(200, ANY_OBJECT)),
    ("/api/admin/users/{id}/quota", "put", "setQuota", "Set a user's quota (administrators)", "admin", [path_param("id", "A user's id.")], body(ref("Quota")), ok(200, ANY_OBJECT)),
    ("/api/admin/users/{id}/quota", "delete", "resetQuota", "Back to the configured default quota (administrators)", "admin", [path_param("id", "A user's id.")], None, ok(200, ANY_OBJECT)),
    ("/api/admin/audit", "get", "audit", "The audit log, newest first (administrators)", "admin",
     [query("user", STRING), query("action", STRING), query("from", STRING), query("to", STRING), query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}), query("cursor", STRING)], None, ok(200, ref("AuditPage"))),
    ("/api/storage/regions", "get", "regions", "Every region with its nodes and health (administrators)", "admin", [], None, ok(200, ANY_OBJECT)),
    ("/api/storage/regions", "post", "createRegion", "Create a region (administrators)", "admin", [], body(ref("RegionCreate")), ok(201, ref("Region"), "Created")),
    ("/api/storage/regions/{id}", "get", "region", "One region, by id or code, with its nodes and health (administrators)", "admin", [path_param("id", "A region's id or code.")], None, ok(200, ref("Region"))),
    ("/api/storage/regions/{id}/deactivate", "patch", "deactivateRegion", "The region takes no new blocks; reads fail over (administrators)", "admin", [path_param("id", "A region's id or code.")], None, ok(200, ref("Region"))),
    ("/api/storage/regions/{regionId}/nodes", "get", "regionNodes", "One region's nodes (administrators)", "admin", [path_param("regionId", "A region's id or code.")], None, ok(200, ANY_OBJECT)),
    ("/api/storage/nodes", "get", "nodes", "Every storage node (administrators)", "admin", [], None, ok(200, ANY_OBJECT)),
    ("/api/storage/nodes", "post", "createNode", "Add one of the deployment's blob stores to an active region (administrators)", "admin", [], body(ref("NodeCreate")), ok(201, ref("Node"), "Created")),
    ("/api/replication/files/{fileId}/policy", "post", "setPolicy", "Replicate a file's blocks to regions (eventual or strong)", "user", [FILE_ID], body(ref("ReplicationPolicy")), ok(201, ANY_OBJECT, "Created")),
    ("/api/replication/files/{fileId}/status", "get", "replicationStatus", "Per target region: state, bytes present, lag", "user", [FILE_ID], None, ok(200, ANY_OBJECT)),
    ("/health", "get", "health", "Every dependency's check (200, or 503 with the same document)", None, [], None, {**ok(200, ref("Health")), **ok(503, ref("Health"), "A dependency fails")}),
    ("/health/liveness", "get", "liveness", "The function runs", None, [], None, ok(200, ANY_OBJECT)),
    ("/health/readiness", "get", "readiness", "The metadata store answers (else 503 not-ready)", None, [], None, ok(200, ANY_OBJECT)),
    ("/health/metrics", "get", "metrics", "Prometheus metrics (text format 0.0.4)", "metrics", [], None, ok(200, STRING, media="text/plain; version=0.0.4; charset=utf-8")),
    ("/api/openapi.json", "get", "openapi", "This contract", None, [], None, ok(200, ANY_OBJECT)),
]

PROBLEM_RESPONSE = {"description": "A problem document (docs/api.md, Errors)", "content": {"application/problem+json": {"schema": ref("Problem")}}}


def render():
    paths = {}
    for path, method, op_id, summary, auth, params, request, responses in OPS:
        op = {"operationId": op_id, "summary": summary, "responses": {**responses, "default": PROBLEM_RESPONSE}}
        if params:
            op["parameters"] = params
        if request:
            op["requestBody"] = request
        if auth in ("user", "admin"):
            op["security"] = [{"bearer": []}]
        elif auth == "metrics":
            # Open unless the deployment sets metrics_token.
            op["security"] = [{}, {"bearer": []}]
        else:
            op["security"] = []
        if auth == "admin":
            op["description"] = "Administrators only (admin_emails); 403 for other accounts."
        paths.setdefault(path, {})[method] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "VaultX",
            "version": "0.1.0",
            "description": "An object store as WebAssembly functions at the edge. Every error is application/problem+json "
            "(RFC 9457) and names its request; every response carries X-Request-Id. HEAD is answered wherever GET is.",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {"schemas": SCHEMAS, "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
    }


if __name__ == "__main__":
    text = json.dumps(render(), indent=1, ensure_ascii=False) + "\n"
    if sys.argv[1:] == ["--check"]:
        if open(OUT, encoding="utf-8").read() != text:
            sys.exit(f"{OUT} is out of date: run python3 infra/openapi.py")
    else:
        open(OUT, "w", encoding="utf-8").write(text)
