"""The S3 door as its users meet it: boto3 and aws-cli, configured with nothing but an endpoint
URL, an access key made through the REST API, and path-style addressing. Each check prints
`ok: s3 <name>` or `FAILED: s3 <name>: <why>`; the exit status is the number of failures.

Usage: clients.py BASE_URL
"""
import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid

import boto3
import botocore
from botocore.config import Config
from botocore.exceptions import ClientError

BASE = sys.argv[1].rstrip("/")
failures = 0


def check(name):
    """Runs the decorated function as one named check."""
    def run(fn):
        global failures
        try:
            fn()
            print(f"ok: s3 {name}", flush=True)
        except Exception as e:  # a failed check names itself and goes on
            failures += 1
            print(f"FAILED: s3 {name}: {type(e).__name__}: {e}", flush=True)
        return fn
    return run


def rest(method, path, body=None, token=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(BASE + path, data=data, method=method)
    if body is not None:
        req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def account():
    """A fresh account, signed in, with one access key: (token, key id, secret)."""
    email = f"s3-{uuid.uuid4().hex[:12]}@example.com"
    password = "correct horse battery staple"
    status, body = rest("POST", "/api/auth/register", {"email": email, "password": password})
    assert status == 201, body
    status, body = rest("POST", "/api/auth/login", {"email": email, "password": password})
    assert status == 200, body
    token = json.loads(body)["accessToken"]
    status, body = rest("POST", "/api/users/me/access-keys", {"name": "s3 clients test"}, token)
    assert status == 201, body
    key = json.loads(body)
    # tests/run checks that no secret it was given reached the deployment's logs.
    if os.environ.get("VAULTX_SECRETS_LOG"):
        with open(os.environ["VAULTX_SECRETS_LOG"], "a") as f:
            f.write(key["secretAccessKey"] + "\n")
    return token, key["accessKeyId"], key["secretAccessKey"]


def client(key_id, secret, **config):
    return boto3.client(
        "s3",
        endpoint_url=BASE,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}, **config),
    )


def code_of(fn):
    """The S3 error code and HTTP status `fn` fails with."""
    try:
        fn()
    except ClientError as e:
        return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]
    raise AssertionError("expected an S3 error, the call succeeded")


token, key_id, secret = account()
other_token, other_key_id, other_secret = account()
s3 = client(key_id, secret)
other = client(other_key_id, other_secret)
bucket = f"vx-{uuid.uuid4().hex[:16]}"
other_bucket = f"vx-{uuid.uuid4().hex[:16]}"
blob = random.Random(7).randbytes(1024 * 1024 + 17)


@check("CreateBucket, HeadBucket, ListBuckets, and S3's refusals")
def _():
    s3.create_bucket(Bucket=bucket)
    s3.head_bucket(Bucket=bucket)
    assert bucket in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert bucket not in [b["Name"] for b in other.list_buckets()["Buckets"]]
    assert code_of(lambda: s3.create_bucket(Bucket=bucket)) == ("BucketAlreadyOwnedByYou", 409)
    assert code_of(lambda: other.create_bucket(Bucket=bucket)) == ("BucketAlreadyExists", 409)
    assert code_of(lambda: s3.create_bucket(Bucket="api"))[0] == "InvalidBucketName"
    assert code_of(lambda: s3.head_bucket(Bucket=f"vx-missing-{uuid.uuid4().hex[:8]}"))[1] == 404


@check("PutObject and GetObject: byte-exact, MD5 ETag, ranges, preconditions")
def _():
    put = s3.put_object(Bucket=bucket, Key="dir/blob.bin", Body=blob, ContentType="application/x-test")
    assert put["ETag"] == f'"{hashlib.md5(blob).hexdigest()}"', put["ETag"]
    got = s3.get_object(Bucket=bucket, Key="dir/blob.bin")
    assert got["Body"].read() == blob
    assert got["ContentType"] == "application/x-test" and got["ContentLength"] == len(blob)
    part = s3.get_object(Bucket=bucket, Key="dir/blob.bin", Range="bytes=1000-1999")
    assert part["ResponseMetadata"]["HTTPStatusCode"] == 206 and part["Body"].read() == blob[1000:2000]
    head = s3.head_object(Bucket=bucket, Key="dir/blob.bin")
    assert head["ContentLength"] == len(blob) and head["ETag"] == put["ETag"]
    assert code_of(lambda: s3.get_object(Bucket=bucket, Key="dir/blob.bin", IfNoneMatch=put["ETag"]))[1] == 304
    assert code_of(lambda: s3.get_object(Bucket=bucket, Key="dir/blob.bin", IfMatch='"0123"')) == ("PreconditionFailed", 412)
    assert code_of(lambda: s3.get_object(Bucket=bucket, Key="nope")) == ("NoSuchKey", 404)
    s3.put_object(Bucket=bucket, Key="empty", Body=b"")
    assert s3.get_object(Bucket=bucket, Key="empty")["Body"].read() == b""


@check("PutObject over a key replaces it; If-None-Match: * does not; Content-MD5 and x-amz-checksum-* are checked")
def _():
    s3.put_object(Bucket=bucket, Key="over", Body=b"first")
    s3.put_object(Bucket=bucket, Key="over", Body=b"second")
    assert s3.get_object(Bucket=bucket, Key="over")["Body"].read() == b"second"
    assert code_of(lambda: s3.put_object(Bucket=bucket, Key="over", Body=b"third", IfNoneMatch="*")) == ("PreconditionFailed", 412)
    assert s3.get_object(Bucket=bucket, Key="over")["Body"].read() == b"second"
    import base64
    wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    assert code_of(lambda: s3.put_object(Bucket=bucket, Key="over", Body=b"third", ContentMD5=wrong))[0] == "BadDigest"
    assert code_of(lambda: s3.put_object(Bucket=bucket, Key="over", Body=b"third", ChecksumCRC32="AAAAAA=="))[0] == "BadDigest"
    s3.put_object(Bucket=bucket, Key="summed", Body=b"checked", ChecksumAlgorithm="SHA256")
    assert s3.get_object(Bucket=bucket, Key="over")["Body"].read() == b"second"


@check("user metadata, tags, CopyObject, GetBucketVersioning and ListObjectVersions")
def _():
    s3.put_object(Bucket=bucket, Key="meta/a.txt", Body=b"alpha", Metadata={"mtime": "1700000000.5", "owner-name": "ada"}, Tagging="team=ml&stage=raw")
    head = s3.head_object(Bucket=bucket, Key="meta/a.txt")
    assert head["Metadata"] == {"mtime": "1700000000.5", "owner-name": "ada"}, head["Metadata"]
    assert s3.get_object(Bucket=bucket, Key="meta/a.txt")["Metadata"] == head["Metadata"]
    tags = {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=bucket, Key="meta/a.txt")["TagSet"]}
    assert tags == {"team": "ml", "stage": "raw"}, tags
    s3.put_object_tagging(Bucket=bucket, Key="meta/a.txt", Tagging={"TagSet": [{"Key": "stage", "Value": "clean"}]})
    assert s3.get_object_tagging(Bucket=bucket, Key="meta/a.txt")["TagSet"] == [{"Key": "stage", "Value": "clean"}]
    assert code_of(lambda: s3.put_object(Bucket=bucket, Key="meta/big", Body=b"x", Metadata={"k": "v" * 3000}))[0] in ("MetadataTooLarge", "InvalidArgument")
    # A copy keeps the content, metadata and tags, or replaces the metadata.
    copied = s3.copy_object(Bucket=bucket, Key="meta/b.txt", CopySource={"Bucket": bucket, "Key": "meta/a.txt"})
    assert copied["CopyObjectResult"]["ETag"] == head["ETag"]
    assert s3.get_object(Bucket=bucket, Key="meta/b.txt")["Body"].read() == b"alpha"
    assert s3.head_object(Bucket=bucket, Key="meta/b.txt")["Metadata"] == head["Metadata"]
    assert s3.get_object_tagging(Bucket=bucket, Key="meta/b.txt")["TagSet"] == [{"Key": "stage", "Value": "clean"}]
    s3.copy_object(Bucket=bucket, Key="meta/b.txt", CopySource={"Bucket": bucket, "Key": "meta/b.txt"}, MetadataDirective="REPLACE", Metadata={"mtime": "1"}, ContentType="text/plain")
    replaced = s3.head_object(Bucket=bucket, Key="meta/b.txt")
    assert replaced["Metadata"] == {"mtime": "1"} and replaced["ContentType"] == "text/plain", replaced
    assert code_of(lambda: s3.copy_object(Bucket=bucket, Key="x", CopySource={"Bucket": bucket, "Key": "meta/none"}))[0] == "NoSuchKey"
    assert "Status" not in s3.get_bucket_versioning(Bucket=bucket)
    versions = s3.list_object_versions(Bucket=bucket, Prefix="meta/")
    assert [(v["Key"], v["VersionId"], v["IsLatest"]) for v in versions["Versions"]] == [("meta/a.txt", "null", True), ("meta/b.txt", "null", True)], versions
    # A PUT replaces the object whole: the metadata and tags it does not send are gone.
    s3.put_object(Bucket=bucket, Key="meta/a.txt", Body=b"alpha 2")
    assert s3.head_object(Bucket=bucket, Key="meta/a.txt")["Metadata"] == {}
    assert s3.get_object_tagging(Bucket=bucket, Key="meta/a.txt")["TagSet"] == []


@check("the same object through the REST API and a signed URL")
def _():
    status, body = rest("GET", "/api/files?limit=100", token=token)
    assert status == 200, body
    files = {f["name"]: f for f in json.loads(body)["items"]}
    assert "dir/blob.bin" in files, list(files)
    status, body = rest("POST", f"/api/files/{files['dir/blob.bin']['id']}/signed-url", {"expirationSeconds": 300}, token)
    assert status in (200, 201), body
    url = json.loads(body)["url"]
    with urllib.request.urlopen(url if url.startswith("http") else BASE + url) as r:
        assert r.read() == blob


@check("ListObjectsV2 and ListObjects: prefix, delimiter, pages")
def _():
    keys = [f"list/{d}/{i:02}.txt" for d in ("a", "b", "c") for i in range(7)] + ["list/top.txt", "list/z+%&é.txt"]
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=k.encode())
    seen = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="list/", PaginationConfig={"PageSize": 4}):
        seen += [o["Key"] for o in page.get("Contents", [])]
    assert seen == sorted(keys, key=lambda k: k.encode()), seen
    top = s3.list_objects_v2(Bucket=bucket, Prefix="list/", Delimiter="/")
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["list/a/", "list/b/", "list/c/"], top
    assert sorted(o["Key"] for o in top["Contents"]) == ["list/top.txt", "list/z+%&é.txt"]
    # Pages of one across the rolled-up prefixes: each prefix once.
    given = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="list/", Delimiter="/", PaginationConfig={"PageSize": 1}):
        given += [p["Prefix"] for p in page.get("CommonPrefixes", [])] + [o["Key"] for o in page.get("Contents", [])]
    assert given == ["list/a/", "list/b/", "list/c/", "list/top.txt", "list/z+%&é.txt"], given
    v1 = []
    for page in s3.get_paginator("list_objects").paginate(Bucket=bucket, Prefix="list/b/", PaginationConfig={"PageSize": 3}):
        v1 += [o["Key"] for o in page.get("Contents", [])]
    assert v1 == [k for k in sorted(keys) if k.startswith("list/b/")], v1


@check("multipart: boto3's parallel parts, S3's ETag, unequal parts, the part rules, list and abort")
def _():
    from boto3.s3.transfer import TransferConfig
    mib = 1024 * 1024
    data = random.Random(11).randbytes(21 * mib + 5)
    with tempfile.TemporaryDirectory() as tmp:
        src, back = os.path.join(tmp, "src"), os.path.join(tmp, "back")
        with open(src, "wb") as f:
            f.write(data)
        config = TransferConfig(multipart_threshold=5 * mib, multipart_chunksize=5 * mib, max_concurrency=4)
        s3.upload_file(src, bucket, "mp/parallel.bin", Config=config)
        s3.download_file(bucket, "mp/parallel.bin", back, Config=config)
        assert open(back, "rb").read() == data
    md5s = b"".join(hashlib.md5(data[i:i + 5 * mib]).digest() for i in range(0, len(data), 5 * mib))
    assert s3.head_object(Bucket=bucket, Key="mp/parallel.bin")["ETag"] == f'"{hashlib.md5(md5s).hexdigest()}-5"'
    # Parts of unequal sizes, sent out of order.
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp/unequal.bin")["UploadId"]
    pieces = [data[:6 * mib], data[6 * mib:11 * mib], data[11 * mib:11 * mib + 10]]
    tags = {}
    for n in (3, 1, 2):
        tags[n] = s3.upload_part(Bucket=bucket, Key="mp/unequal.bin", UploadId=up, PartNumber=n, Body=pieces[n - 1])["ETag"]
    listed = s3.list_parts(Bucket=bucket, Key="mp/unequal.bin", UploadId=up)["Parts"]
    assert [(p["PartNumber"], p["Size"]) for p in listed] == [(1, 6 * mib), (2, 5 * mib), (3, 10)], listed
    assert up in [u["UploadId"] for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]
    assert s3.list_objects_v2(Bucket=bucket, Prefix="mp/unequal")["KeyCount"] == 0, "an upload in progress is no object"
    parts = lambda ns: {"Parts": [{"PartNumber": n, "ETag": tags[n]} for n in ns]}
    assert code_of(lambda: s3.complete_multipart_upload(Bucket=bucket, Key="mp/unequal.bin", UploadId=up, MultipartUpload=parts([2, 1]))) == ("InvalidPartOrder", 400)
    assert code_of(lambda: s3.complete_multipart_upload(Bucket=bucket, Key="mp/unequal.bin", UploadId=up, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"00"'}]})) == ("InvalidPart", 400)
    s3.complete_multipart_upload(Bucket=bucket, Key="mp/unequal.bin", UploadId=up, MultipartUpload=parts([1, 2, 3]))
    assert s3.get_object(Bucket=bucket, Key="mp/unequal.bin")["Body"].read() == b"".join(pieces)
    assert code_of(lambda: s3.upload_part(Bucket=bucket, Key="mp/unequal.bin", UploadId=up, PartNumber=1, Body=b"x")) == ("NoSuchUpload", 404)
    # A part but the last under 5 MiB; then abort frees the upload.
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp/small.bin")["UploadId"]
    small = [s3.upload_part(Bucket=bucket, Key="mp/small.bin", UploadId=up, PartNumber=n, Body=b"tiny")["ETag"] for n in (1, 2)]
    assert code_of(lambda: s3.complete_multipart_upload(Bucket=bucket, Key="mp/small.bin", UploadId=up, MultipartUpload={"Parts": [{"PartNumber": n + 1, "ETag": t} for n, t in enumerate(small)]})) == ("EntityTooSmall", 400)
    s3.abort_multipart_upload(Bucket=bucket, Key="mp/small.bin", UploadId=up)
    assert up not in [u["UploadId"] for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]
    assert code_of(lambda: s3.list_parts(Bucket=bucket, Key="mp/small.bin", UploadId=up)) == ("NoSuchUpload", 404)


@check("UploadPartCopy: boto3's managed copy in parts, ranges, the source's preconditions")
def _():
    from boto3.s3.transfer import TransferConfig
    mib = 1024 * 1024
    data = random.Random(13).randbytes(12 * mib + 7)
    s3.put_object(Bucket=bucket, Key="copy/source.bin", Body=data)
    # Over its threshold boto3 copies in parts, each an UploadPartCopy of a range of the source.
    config = TransferConfig(multipart_threshold=5 * mib, multipart_chunksize=5 * mib, max_concurrency=3)
    s3.copy({"Bucket": bucket, "Key": "copy/source.bin"}, bucket, "copy/in-parts.bin", Config=config)
    assert s3.get_object(Bucket=bucket, Key="copy/in-parts.bin")["Body"].read() == data
    md5s = b"".join(hashlib.md5(data[i:i + 5 * mib]).digest() for i in range(0, len(data), 5 * mib))
    assert s3.head_object(Bucket=bucket, Key="copy/in-parts.bin")["ETag"] == f'"{hashlib.md5(md5s).hexdigest()}-3"'
    # By hand: a range, a whole small object, S3's refusals.
    s3.put_object(Bucket=bucket, Key="copy/small.bin", Body=b"tail")
    up = s3.create_multipart_upload(Bucket=bucket, Key="copy/by-hand.bin")["UploadId"]
    source = {"Bucket": bucket, "Key": "copy/source.bin"}
    first = s3.upload_part_copy(Bucket=bucket, Key="copy/by-hand.bin", UploadId=up, PartNumber=1, CopySource=source, CopySourceRange=f"bytes={mib}-{6 * mib - 1}")
    assert first["CopyPartResult"]["ETag"] == f'"{hashlib.md5(data[mib:6 * mib]).hexdigest()}"', first
    second = s3.upload_part_copy(Bucket=bucket, Key="copy/by-hand.bin", UploadId=up, PartNumber=2, CopySource={"Bucket": bucket, "Key": "copy/small.bin"})
    assert code_of(lambda: s3.upload_part_copy(Bucket=bucket, Key="copy/by-hand.bin", UploadId=up, PartNumber=3, CopySource=source, CopySourceRange=f"bytes=0-{len(data)}")) == ("InvalidRange", 416)
    assert code_of(lambda: s3.upload_part_copy(Bucket=bucket, Key="copy/by-hand.bin", UploadId=up, PartNumber=3, CopySource=source, CopySourceRange="bytes=5-")) == ("InvalidArgument", 400)
    assert code_of(lambda: s3.upload_part_copy(Bucket=bucket, Key="copy/by-hand.bin", UploadId=up, PartNumber=3, CopySource=source, CopySourceIfMatch='"0123"')) == ("PreconditionFailed", 412)
    assert code_of(lambda: s3.upload_part_copy(Bucket=bucket, Key="copy/by-hand.bin", UploadId=up, PartNumber=3, CopySource={"Bucket": bucket, "Key": "copy/none"})) == ("NoSuchKey", 404)
    parts = [{"PartNumber": 1, "ETag": first["CopyPartResult"]["ETag"]}, {"PartNumber": 2, "ETag": second["CopyPartResult"]["ETag"]}]
    s3.complete_multipart_upload(Bucket=bucket, Key="copy/by-hand.bin", UploadId=up, MultipartUpload={"Parts": parts})
    assert s3.get_object(Bucket=bucket, Key="copy/by-hand.bin")["Body"].read() == data[mib:6 * mib] + b"tail"


@check("presigned GET and PUT (SigV2 and SigV4, up to 7 days); a tampered URL is refused")
def _():
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "over"}, ExpiresIn=300)
    with urllib.request.urlopen(url) as r:
        assert r.read() == b"second"
    tampered = url.replace("over", "ovex")
    try:
        urllib.request.urlopen(tampered)
        raise AssertionError("a tampered presigned URL was served")
    except urllib.error.HTTPError as e:
        assert e.code == 403, e.code
    v4 = client(key_id, secret, signature_version="s3v4")
    url = v4.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "over"}, ExpiresIn=7 * 24 * 3600)
    assert "X-Amz-Signature=" in url, url
    with urllib.request.urlopen(url) as r:
        assert r.read() == b"second"
    week = v4.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "over"}, ExpiresIn=8 * 24 * 3600)
    try:
        urllib.request.urlopen(week)
        raise AssertionError("a presigned URL of more than 7 days was served")
    except urllib.error.HTTPError as e:
        assert e.code == 400, e.code
    # SigV2 signs the Content-Type, which urllib sets on a PUT: presign the PUT with SigV4.
    put = v4.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "presigned"}, ExpiresIn=300)
    req = urllib.request.Request(put, data=b"by url", method="PUT")
    with urllib.request.urlopen(req) as r:
        assert r.status == 200
    assert s3.get_object(Bucket=bucket, Key="presigned")["Body"].read() == b"by url"


@check("credentials: a wrong secret, an unknown key, another account's bucket -> 403")
def _():
    assert code_of(lambda: client(key_id, secret[:-1] + ("A" if secret[-1] != "A" else "B")).list_buckets()) == ("SignatureDoesNotMatch", 403)
    assert code_of(lambda: client("VXAAAAAAAAAAAAAAAAAA", secret).list_buckets()) == ("InvalidAccessKeyId", 403)
    assert code_of(lambda: other.get_object(Bucket=bucket, Key="over")) == ("AccessDenied", 403)
    assert code_of(lambda: other.put_object(Bucket=bucket, Key="intruder", Body=b"x")) == ("AccessDenied", 403)
    assert code_of(lambda: other.delete_bucket(Bucket=bucket)) == ("AccessDenied", 403)
    # Every kind of operation on another account's bucket or object.
    other.create_bucket(Bucket=other_bucket)
    for name, call in {
        "HeadObject": lambda: other.head_object(Bucket=bucket, Key="over"),
        "ListObjectsV2": lambda: other.list_objects_v2(Bucket=bucket),
        "DeleteObject": lambda: other.delete_object(Bucket=bucket, Key="over"),
        "DeleteObjects": lambda: other.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "over"}]}),
        "CopyObject from it": lambda: other.copy_object(Bucket=other_bucket, Key="stolen", CopySource={"Bucket": bucket, "Key": "over"}),
        "CreateMultipartUpload": lambda: other.create_multipart_upload(Bucket=bucket, Key="intruder"),
        "GetObjectTagging": lambda: other.get_object_tagging(Bucket=bucket, Key="over"),
        "PutObjectTagging": lambda: other.put_object_tagging(Bucket=bucket, Key="over", Tagging={"TagSet": []}),
        "ListObjectVersions": lambda: other.list_object_versions(Bucket=bucket),
        "ListMultipartUploads": lambda: other.list_multipart_uploads(Bucket=bucket),
    }.items():
        # A HEAD answer has no body: its code is the status.
        expected = ("403", 403) if name == "HeadObject" else ("AccessDenied", 403)
        assert code_of(call) == expected, f"{name}: {code_of(call)}"
    assert s3.get_object(Bucket=bucket, Key="over")["Body"].read() == b"second", "a refused request changed the object"


@check("a presigned URL tampered in any component, or expired, and a revoked key -> 403")
def _():
    from urllib.parse import urlsplit, parse_qsl, urlencode, urlunsplit
    v4 = client(key_id, secret, signature_version="s3v4")
    url = v4.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "over"}, ExpiresIn=600)
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    def status(u):
        try:
            with urllib.request.urlopen(u) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code
    assert status(url) == 200
    def digit(value, i):
        return value[:i] + ("1" if value[i] != "1" else "2") + value[i + 1:]
    credential = query["X-Amz-Credential"].split("/")
    scope = lambda i, v: "/".join(credential[:i] + [v] + credential[i + 1:])
    tamperings = {
        "the signature": ("X-Amz-Signature", query["X-Amz-Signature"][:-1] + ("0" if query["X-Amz-Signature"][-1] != "0" else "1")),
        "the signing time": ("X-Amz-Date", digit(query["X-Amz-Date"], len(query["X-Amz-Date"]) - 2)),
        "the lifetime": ("X-Amz-Expires", str(int(query["X-Amz-Expires"]) + 1)),
        "the key id (another valid key)": ("X-Amz-Credential", scope(0, other_key_id)),
        "the scope's date": ("X-Amz-Credential", scope(1, digit(credential[1], 7))),
        "the scope's region": ("X-Amz-Credential", scope(2, "eu-west-1")),
        "the signed headers": ("X-Amz-SignedHeaders", "host;range"),
    }
    for what, (name, value) in tamperings.items():
        assert status(urlunsplit(parts._replace(query=urlencode(dict(query, **{name: value}))))) == 403, f"{what} changed: served"
    assert status(urlunsplit(parts._replace(query=urlencode(dict(query, **{"response-content-type": "text/html"}))))) == 403, "a parameter added: served"
    assert status(urlunsplit(parts._replace(path=parts.path + "x"))) in (403, 404), "the key changed"
    assert status(urlunsplit(parts._replace(path=parts.path.replace(bucket, other_bucket)))) == 403, "the bucket changed"
    expiring = v4.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "over"}, ExpiresIn=1)
    time.sleep(2)
    assert status(expiring) == 403, "an expired URL was served"
    # A revoked key is refused at once, presigned or not.
    revoked_token, revoked_id, revoked_secret = account()
    revoked = client(revoked_id, revoked_secret)
    revoked.list_buckets()
    assert rest("DELETE", f"/api/users/me/access-keys/{revoked_id}", token=revoked_token)[0] == 204
    assert code_of(lambda: revoked.list_buckets()) == ("InvalidAccessKeyId", 403)


@check("aws-cli: mb, cp both ways (a 200 MiB file in parts), ls, sync twice (nothing moves the second time), presign, rm, rb")
def _():
    aws = os.path.join(os.path.dirname(sys.executable), "aws")
    with tempfile.TemporaryDirectory() as tmp:
        config = os.path.join(tmp, "config")
        with open(config, "w") as f:
            f.write("[default]\nregion = us-east-1\ns3 =\n    addressing_style = path\n")
        env = dict(os.environ, AWS_ACCESS_KEY_ID=key_id, AWS_SECRET_ACCESS_KEY=secret, AWS_CONFIG_FILE=config, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
        def run(*args):
            r = subprocess.run([aws, "--endpoint-url", BASE, *args], env=env, capture_output=True, text=True, timeout=300)
            assert r.returncode == 0, f"aws {' '.join(args)}: {r.stderr}{r.stdout}"
            return r.stdout
        cli_bucket = f"vx-cli-{uuid.uuid4().hex[:12]}"
        run("s3", "mb", f"s3://{cli_bucket}")
        tree = os.path.join(tmp, "tree")
        os.makedirs(os.path.join(tree, "sub"))
        for i in range(5):
            with open(os.path.join(tree, "sub" if i % 2 else "", f"f{i}.bin"), "wb") as f:
                f.write(random.Random(i).randbytes(1000 * (i + 1)))
        src = os.path.join(tree, "f0.bin")
        run("s3", "cp", src, f"s3://{cli_bucket}/one/f0.bin")
        back = os.path.join(tmp, "back.bin")
        run("s3", "cp", f"s3://{cli_bucket}/one/f0.bin", back)
        assert open(back, "rb").read() == open(src, "rb").read()
        assert "f0.bin" in run("s3", "ls", f"s3://{cli_bucket}/one/")
        first = run("s3", "sync", tree, f"s3://{cli_bucket}/tree")
        assert first.count("upload:") == 5, first
        second = run("s3", "sync", tree, f"s3://{cli_bucket}/tree")
        assert second.strip() == "", second
        down = os.path.join(tmp, "down")
        run("s3", "sync", f"s3://{cli_bucket}/tree", down)
        for i in range(5):
            rel = os.path.join("sub" if i % 2 else "", f"f{i}.bin")
            assert open(os.path.join(down, rel), "rb").read() == open(os.path.join(tree, rel), "rb").read(), rel
        # 200 MiB: aws-cli's multipart upload (8 MiB parts, in parallel) and download.
        big, big_back = os.path.join(tmp, "big.bin"), os.path.join(tmp, "big-back.bin")
        digest = hashlib.sha256()
        with open(big, "wb") as f:
            chunk = random.Random(5).randbytes(1024 * 1024)
            for i in range(200):
                block = chunk[i:] + chunk[:i]
                f.write(block)
                digest.update(block)
        run("s3", "cp", big, f"s3://{cli_bucket}/big.bin")
        run("s3", "cp", f"s3://{cli_bucket}/big.bin", big_back)
        back_digest = hashlib.sha256()
        with open(big_back, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                back_digest.update(block)
        assert back_digest.hexdigest() == digest.hexdigest(), "the 200 MiB object came back different"
        assert json.loads(run("s3api", "head-object", "--bucket", cli_bucket, "--key", "big.bin"))["ContentLength"] == 200 * 1024 * 1024
        url = run("s3", "presign", f"s3://{cli_bucket}/one/f0.bin").strip()
        with urllib.request.urlopen(url) as r:
            assert r.read() == open(src, "rb").read()
        run("s3", "rm", "--recursive", f"s3://{cli_bucket}")
        assert run("s3", "ls", f"s3://{cli_bucket}").strip() == ""
        run("s3", "rb", f"s3://{cli_bucket}")


def tree(root, seed, files=12):
    """A small directory tree of random files; returns {relative path: bytes}."""
    rng = random.Random(seed)
    made = {}
    for i in range(files):
        rel = os.path.join(f"d{i % 3}", f"sub{i % 2}", f"f{i}.bin") if i % 4 else f"top{i}.bin"
        os.makedirs(os.path.dirname(os.path.join(root, rel)) or root, exist_ok=True)
        data = rng.randbytes(rng.randrange(0, 300_000))
        with open(os.path.join(root, rel), "wb") as f:
            f.write(data)
        made[rel] = data
    return made


def same_tree(a, b):
    def files(root):
        return {os.path.relpath(os.path.join(d, n), root): open(os.path.join(d, n), "rb").read() for d, _, ns in os.walk(root) for n in ns}
    fa, fb = files(a), files(b)
    assert fa.keys() == fb.keys(), (sorted(fa.keys() ^ fb.keys()))[:5]
    assert all(fa[k] == fb[k] for k in fa), [k for k in fa if fa[k] != fb[k]][:5]


@check("rclone: copy, sync (a change and a delete), check (hashes match), copy back")
def _():
    env = dict(os.environ, RCLONE_CONFIG_VX_TYPE="s3", RCLONE_CONFIG_VX_PROVIDER="Other", RCLONE_CONFIG_VX_ACCESS_KEY_ID=key_id,
               RCLONE_CONFIG_VX_SECRET_ACCESS_KEY=secret, RCLONE_CONFIG_VX_ENDPOINT=BASE, RCLONE_CONFIG_VX_REGION="us-east-1",
               RCLONE_CONFIG_VX_FORCE_PATH_STYLE="true", RCLONE_CONFIG=os.devnull)
    # rclone's AWS SDK cannot load a CA bundle into its own transport (and plain HTTP needs none).
    env.pop("AWS_CA_BUNDLE", None)
    def rclone(*args):
        r = subprocess.run(["rclone", *args], env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, f"rclone {' '.join(args)}: {r.stderr[-2000:]}"
        return r.stdout
    with tempfile.TemporaryDirectory() as tmp:
        src, back = os.path.join(tmp, "src"), os.path.join(tmp, "back")
        tree(src, 21)
        target = f"vx:vx-rclone-{uuid.uuid4().hex[:10]}/data"
        rclone("mkdir", target.rsplit("/", 1)[0])
        rclone("copy", src, target)
        rclone("check", src, target)
        with open(os.path.join(src, "top0.bin"), "wb") as f:
            f.write(b"changed")
        os.remove(os.path.join(src, "d1", "sub1", "f1.bin"))
        rclone("sync", src, target)
        rclone("check", src, target)
        rclone("copy", target, back)
        same_tree(src, back)
        rclone("purge", target.rsplit("/", 1)[0])


@check("restic: init, backup, a second backup, check --read-data, forget --prune, restore byte-exact")
def _():
    restic_bucket = f"vx-restic-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=restic_bucket)
    env = dict(os.environ, RESTIC_REPOSITORY=f"s3:{BASE}/{restic_bucket}", AWS_ACCESS_KEY_ID=key_id, AWS_SECRET_ACCESS_KEY=secret,
               RESTIC_PASSWORD="correct horse battery staple", RESTIC_CACHE_DIR=tempfile.mkdtemp())
    def restic(*args):
        r = subprocess.run(["restic", "--quiet", *args], env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, f"restic {' '.join(args)}: {r.stderr[-2000:]}"
        return r.stdout
    with tempfile.TemporaryDirectory() as tmp:
        src, out = os.path.join(tmp, "src"), os.path.join(tmp, "out")
        tree(src, 31, files=30)
        restic("init")
        restic("backup", "--host", "ci", src)
        with open(os.path.join(src, "top4.bin"), "wb") as f:
            f.write(random.Random(1).randbytes(1_000_000))
        restic("backup", "--host", "ci", src)
        restic("check", "--read-data")
        restic("forget", "--keep-last", "1", "--prune")
        restic("check", "--read-data")
        restic("restore", "latest", "--target", out)
        same_tree(src, os.path.join(out, os.path.relpath(src, "/")))


@check("DeleteObjects, then DeleteBucket refuses a bucket with objects and takes an empty one")
def _():
    assert code_of(lambda: s3.delete_bucket(Bucket=bucket)) == ("BucketNotEmpty", 409)
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys += [o["Key"] for o in page.get("Contents", [])]
    done = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys]})
    assert sorted(d["Key"] for d in done["Deleted"]) == sorted(keys) and not done.get("Errors"), done
    s3.delete_object(Bucket=bucket, Key="never-was")
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    s3.delete_bucket(Bucket=bucket)
    assert code_of(lambda: s3.head_bucket(Bucket=bucket))[1] == 404


sys.exit(failures)
