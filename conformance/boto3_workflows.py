#!/usr/bin/env python3
"""boto3 workflows for the s3ferry conformance suite.

    python3 conformance/boto3_workflows.py            # every workflow, stops at the first failure
    python3 conformance/boto3_workflows.py NAME...    # only these
    python3 conformance/boto3_workflows.py --list     # workflow names

Reads S3_ENDPOINT (default http://127.0.0.1:8333), AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_DEFAULT_REGION, CONF_RUN_ID (a suffix that keeps runs apart) and CONF_BOTO3_BUCKET
(an existing bucket to work in, default `demo`). Every workflow cleans up after itself.
Prints one PASS line per workflow; on a failure prints the workflow name and the reason and
exits 1.
"""

import base64
import collections
import concurrent.futures
import datetime
import hashlib
import io
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zlib

import boto3
import botocore
import botocore.handlers
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

from workflow_runner import AK, EP, REGION, RUN, SK, MiB, Workflows, log

BUCKET = os.environ.get("CONF_BOTO3_BUCKET", "demo")
PREFIX = f"boto3-{RUN}/"

workflow = Workflows("boto3")


def client(secret=SK, access_key=AK, signature_version=None, addressing_style=None, **extra):
    """A boto3 S3 client on the gateway; fails fast (no retries, short timeouts)."""
    cfg = dict(
        connect_timeout=5,
        read_timeout=20,
        retries={"mode": "standard", "total_max_attempts": 1},
        max_pool_connections=16,
    )
    if signature_version:
        cfg["signature_version"] = signature_version
    if addressing_style:
        cfg["s3"] = {"addressing_style": addressing_style}
    cfg.update(extra)
    return boto3.session.Session().client(
        "s3",
        endpoint_url=EP,
        region_name=REGION,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret,
        config=Config(**cfg),
    )


def record_urls(c):
    """Collects the URL of every request the client sends."""
    urls = []
    c.meta.events.register("before-send.s3", lambda request, **_: urls.append(request.url))
    return urls


def expect_error(fn, code=None, status=None, what=""):
    """Calls fn, which must raise ClientError with this code and/or HTTP status."""
    try:
        r = fn()
    except ClientError as e:
        got_code = e.response.get("Error", {}).get("Code")
        got_status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        assert code is None or got_code == code, f"{what}: expected error code {code}, got {got_code} (HTTP {got_status}): {e}"
        assert status is None or got_status == status, f"{what}: expected HTTP {status}, got {got_status} ({got_code}): {e}"
        log(f"{what}: {got_code} / HTTP {got_status} as expected")
        return e
    meta = r.get("ResponseMetadata", {}) if isinstance(r, dict) else {}
    raise AssertionError(f"{what}: expected ClientError {code or ''} {status or ''}, the call succeeded (HTTP {meta.get('HTTPStatusCode')})")


def md5_etag(data):
    return '"' + hashlib.md5(data).hexdigest() + '"'


def crc32_b64(data):
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def http(method, url, data=None, headers=None):
    """Plain urllib request: returns (status, headers, body) and never raises on HTTP errors."""
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def list_keys(c, prefix, **kw):
    keys = []
    for page in c.get_paginator("list_objects_v2").paginate(Bucket=kw.pop("Bucket", BUCKET), Prefix=prefix, **kw):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return keys


def delete_prefix(c, prefix, bucket=BUCKET):
    keys = list_keys(c, prefix, Bucket=bucket)
    for i in range(0, len(keys), 1000):
        r = c.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[i : i + 1000]], "Quiet": True})
        assert not r.get("Errors"), f"delete_objects errors: {r.get('Errors')[:5]}"
    return len(keys)


# ---------------------------------------------------------------------------------------
@workflow("put-get-head-delete")
def wf_put_get_head_delete():
    for label, c in (("default client", client()), ("Config(s3.addressing_style=path)", client(addressing_style="path"))):
        urls = record_urls(c)
        key = f"{PREFIX}basic/{label.split()[0].split('(')[0]}.txt"
        body = f"hello from boto3 ({label}) {RUN}\n".encode()
        put = c.put_object(Bucket=BUCKET, Key=key, Body=body, ContentType="text/plain", Metadata={"color": "green"})
        assert put["ETag"] == md5_etag(body), f"{label}: PUT ETag {put['ETag']} is not the MD5 {md5_etag(body)}"
        got = c.get_object(Bucket=BUCKET, Key=key)
        data = got["Body"].read()
        assert data == body, f"{label}: GET returned {data!r}, expected {body!r}"
        assert got["ContentLength"] == len(body), f"{label}: GET ContentLength {got['ContentLength']}"
        assert got["ETag"] == put["ETag"], f"{label}: GET ETag {got['ETag']} != PUT ETag {put['ETag']}"
        h = c.head_object(Bucket=BUCKET, Key=key)
        assert h["ContentLength"] == len(body), f"{label}: HEAD ContentLength {h['ContentLength']}"
        assert h["ContentType"] == "text/plain", f"{label}: HEAD ContentType {h.get('ContentType')}"
        assert h["Metadata"] == {"color": "green"}, f"{label}: HEAD Metadata {h.get('Metadata')}"
        assert h["ETag"] == put["ETag"], f"{label}: HEAD ETag {h['ETag']}"
        c.delete_object(Bucket=BUCKET, Key=key)
        expect_error(lambda: c.head_object(Bucket=BUCKET, Key=key), status=404, what=f"{label}: HEAD after delete")
        expect_error(lambda: c.get_object(Bucket=BUCKET, Key=key), code="NoSuchKey", status=404, what=f"{label}: GET after delete")
        # Deleting a missing key is not an error in S3.
        d = c.delete_object(Bucket=BUCKET, Key=key)
        assert d["ResponseMetadata"]["HTTPStatusCode"] == 204, f"{label}: DELETE of a missing key: HTTP {d['ResponseMetadata']['HTTPStatusCode']}"
        bad = [u for u in urls if not u.startswith(f"{EP}/{BUCKET}/")]
        assert not bad, f"{label}: requests were not path-style: {bad[:3]}"
        log(f"{label}: put/get/head/delete ok, {len(urls)} path-style requests")

    # A 0-byte object (the keep-alive behaviour after it has its own workflow below).
    c = client()
    key = f"{PREFIX}basic/empty"
    c.put_object(Bucket=BUCKET, Key=key, Body=b"")
    h = c.head_object(Bucket=BUCKET, Key=key)
    assert h["ContentLength"] == 0, f"empty object: ContentLength {h['ContentLength']}"
    assert h["ETag"] == md5_etag(b""), f"empty object: ETag {h['ETag']}"
    assert c.get_object(Bucket=BUCKET, Key=key)["Body"].read() == b"", "empty object: GET body not empty"
    c.delete_object(Bucket=BUCKET, Key=key)
    log("0-byte object: put/head/get/delete ok")


@workflow("empty-put-then-put-same-connection")
def wf_empty_put_keepalive():
    """botocore sends `Expect: 100-continue` on every PUT. When a server answers a 0-byte PUT
    with its final response and no `100 Continue`, botocore keeps that status line for the
    connection's next Expect request, so a PUT with a body right after it on the same
    keep-alive connection hangs until the read timeout. Real S3 works, so the gateway must
    either send `100 Continue` for these requests or close the connection after them."""
    c = client(read_timeout=5, max_pool_connections=1)
    base = f"{PREFIX}keepalive/"
    t0 = time.monotonic()
    c.put_object(Bucket=BUCKET, Key=base + "empty", Body=b"")
    try:
        c.put_object(Bucket=BUCKET, Key=base + "next", Body=b"the PUT right after a 0-byte PUT")
    except botocore.exceptions.ReadTimeoutError as e:
        raise AssertionError(
            f"the PUT right after a 0-byte PUT on the same connection hung for {time.monotonic() - t0:.1f}s "
            "(the 0-byte PUT's `Expect: 100-continue` was answered without `100 Continue` and the connection kept open)"
        ) from e
    got = c.get_object(Bucket=BUCKET, Key=base + "next")["Body"].read()
    assert got == b"the PUT right after a 0-byte PUT", f"second object has body {got!r}"
    c.put_object(Bucket=BUCKET, Key=base + "empty2", Body=b"")
    c.upload_fileobj(io.BytesIO(b"x" * 1000), BUCKET, base + "fileobj")
    c.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": base + k} for k in ("empty", "next", "empty2", "fileobj")]})
    log(f"0-byte PUT, then PUTs on the same connection: {time.monotonic() - t0:.2f}s")


AWKWARD_KEYS = [
    "with space.txt",
    "plus+sign.txt",
    "percent%20literal%2Fand%.txt",
    "tilde~name.txt",
    "unicodé-日本語-ключ.txt",
    "emoji-🚀.bin",
    # Not here: "a//b" and "trailing/" (a 0-byte folder marker). The embedded local provider
    # stores keys as files, so it folds "//" and cannot hold a key ending in "/"; the cargo
    # tests check that s3ferry carries both faithfully to moto (tests/it/moto.rs).
    "amp&eq=semi;comma,.txt",
    "paren(1)[2]{3}!*'$@:.txt",
    "quote\"and<angle>.txt",
]


@workflow("awkward-keys")
def wf_awkward_keys():
    put_c = client()
    get_c = client(addressing_style="path")
    base = f"{PREFIX}awk/"
    bodies = {}
    problems = []
    for k in AWKWARD_KEYS:
        key = base + k
        # "trailing/" is a 0-byte folder marker, as consoles make them. It is sent on a
        # connection of its own: the keep-alive after a 0-byte PUT has its own workflow.
        body = b"" if k.endswith("/") else f"body of {k}".encode()
        bodies[key] = body
        try:
            (client() if not body else put_c).put_object(Bucket=BUCKET, Key=key, Body=body)
        except ClientError as e:
            problems.append(f"PUT {key!r}: {e}")
            continue
        try:
            got = get_c.get_object(Bucket=BUCKET, Key=key)["Body"].read()
            if got != body:
                problems.append(f"GET {key!r}: body {got[:60]!r} != {body[:60]!r}")
            h = get_c.head_object(Bucket=BUCKET, Key=key)
            if h["ContentLength"] != len(body):
                problems.append(f"HEAD {key!r}: ContentLength {h['ContentLength']} != {len(body)}")
        except ClientError as e:
            problems.append(f"GET/HEAD {key!r}: {e}")
    # Listing with boto3's default EncodingType=url (keys come back percent-encoded and
    # boto3 decodes them) and without it (raw keys in the XML).
    want = sorted(bodies)
    try:
        listed = list_keys(get_c, base)
        if sorted(listed) != want:
            problems.append(
                f"ListObjectsV2 (EncodingType=url): missing {sorted(set(want) - set(listed))}, unexpected {sorted(set(listed) - set(want))}"
            )
    except ClientError as e:
        problems.append(f"ListObjectsV2 (EncodingType=url): {e}")
    raw = client()
    raw.meta.events.unregister("before-parameter-build.s3.ListObjectsV2", botocore.handlers.set_list_objects_encoding_type_url)
    try:
        r = raw.list_objects_v2(Bucket=BUCKET, Prefix=base)
        assert "EncodingType" not in r, "the raw listing was still url-encoded"
        listed = [o["Key"] for o in r.get("Contents", [])]
        if sorted(listed) != want:
            problems.append(
                f"ListObjectsV2 (no EncodingType): missing {sorted(set(want) - set(listed))}, unexpected {sorted(set(listed) - set(want))}"
            )
    except ClientError as e:
        problems.append(f"ListObjectsV2 (no EncodingType): {e}")
    # Server-side copy from awkward keys (x-amz-copy-source is percent-encoded by boto3).
    for k in ("with space.txt", "plus+sign.txt", "unicodé-日本語-ключ.txt", "percent%20literal%2Fand%.txt"):
        src, dst = base + k, f"{PREFIX}awk-copy/{k}"
        try:
            put_c.copy_object(Bucket=BUCKET, Key=dst, CopySource={"Bucket": BUCKET, "Key": src})
            got = get_c.get_object(Bucket=BUCKET, Key=dst)["Body"].read()
            if got != bodies[src]:
                problems.append(f"COPY {src!r}: copy has body {got[:60]!r}")
            put_c.delete_object(Bucket=BUCKET, Key=dst)
        except ClientError as e:
            problems.append(f"COPY {src!r} -> {dst!r}: {e}")
    for key in want:
        try:
            put_c.delete_object(Bucket=BUCKET, Key=key)
            expect_error(lambda: get_c.head_object(Bucket=BUCKET, Key=key), status=404, what=f"HEAD {key!r} after delete")
        except (ClientError, AssertionError) as e:
            problems.append(f"DELETE {key!r}: {e}")
    try:
        left = list_keys(get_c, PREFIX + "awk")
        if left:
            problems.append(f"keys left after deleting them all: {left}")
    except ClientError as e:
        problems.append(f"final listing: {e}")
    assert not problems, f"{len(problems)} problem(s) with awkward keys:\n    " + "\n    ".join(problems)
    log(f"{len(AWKWARD_KEYS)} awkward keys: put, get, head, list (both encodings), copy, delete")


@workflow("multipart-upload-fileobj-12MiB")
def wf_multipart():
    c = client()
    data = os.urandom(12 * MiB)
    key = f"{PREFIX}mp/twelve.bin"
    tc = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB, max_concurrency=4)
    sent = collections.Counter()
    checksum_headers = set()

    def watch(request, **_):
        q = urllib.parse.urlsplit(request.url).query
        op = "UploadPart" if "partNumber=" in q else "Complete" if "uploadId=" in q else "Create" if "uploads" in q else "other"
        sent[op] += 1
        checksum_headers.update(h.lower() for h in request.headers.keys() if h.lower().startswith("x-amz-checksum") or h.lower() == "x-amz-sdk-checksum-algorithm")

    c.meta.events.register("before-send.s3", watch)
    # boto3 1.43 defaults: request_checksum_calculation=when_supported (CRC32).
    c.upload_fileobj(io.BytesIO(data), BUCKET, key, Config=tc)
    log(f"requests: {dict(sent)}; checksum headers sent: {sorted(checksum_headers)}")
    assert sent["UploadPart"] == 3, f"expected 3 UploadPart requests for 12 MiB in 5 MiB parts, saw {dict(sent)}"
    h = c.head_object(Bucket=BUCKET, Key=key, ChecksumMode="ENABLED")
    assert h["ContentLength"] == len(data), f"ContentLength {h['ContentLength']} != {len(data)}"
    assert h["ETag"].endswith('-3"'), f"ETag {h['ETag']} is not a 3-part multipart ETag"
    log(f"ETag {h['ETag']}, checksum {h.get('ChecksumCRC32')} ({h.get('ChecksumType')})")
    buf = io.BytesIO()
    c.download_fileobj(BUCKET, key, buf, Config=tc)
    assert hashlib.sha256(buf.getvalue()).digest() == hashlib.sha256(data).digest(), "download_fileobj content differs from the upload"
    whole = c.get_object(Bucket=BUCKET, Key=key, ChecksumMode="ENABLED")["Body"].read()
    assert whole == data, "get_object content differs from the upload"
    # A single PUT with boto3's default CRC32: the stored checksum, when returned, must match.
    small = os.urandom(64 * 1024)
    c.put_object(Bucket=BUCKET, Key=key + ".single", Body=small)
    h = c.head_object(Bucket=BUCKET, Key=key + ".single", ChecksumMode="ENABLED")
    if "ChecksumCRC32" in h:
        assert h["ChecksumCRC32"] == crc32_b64(small), f"ChecksumCRC32 {h['ChecksumCRC32']} != {crc32_b64(small)}"
        log("single PUT: CRC32 stored and returned correctly")
    else:
        log("single PUT: no ChecksumCRC32 returned on HEAD (allowed)")
    assert c.get_object(Bucket=BUCKET, Key=key + ".single", ChecksumMode="ENABLED")["Body"].read() == small
    # An aborted upload leaves nothing behind.
    up = c.create_multipart_upload(Bucket=BUCKET, Key=key + ".aborted")
    c.upload_part(Bucket=BUCKET, Key=key + ".aborted", UploadId=up["UploadId"], PartNumber=1, Body=os.urandom(MiB))
    c.abort_multipart_upload(Bucket=BUCKET, Key=key + ".aborted", UploadId=up["UploadId"])
    expect_error(
        lambda: c.upload_part(Bucket=BUCKET, Key=key + ".aborted", UploadId=up["UploadId"], PartNumber=2, Body=b"x"),
        code="NoSuchUpload",
        what="UploadPart after abort",
    )
    expect_error(lambda: c.head_object(Bucket=BUCKET, Key=key + ".aborted"), status=404, what="HEAD of the aborted upload's key")
    c.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": key}, {"Key": key + ".single"}]})
    log("12 MiB upload_fileobj (3 parts) + download_fileobj + abort ok")


@workflow("list-objects-v2-paginator-1200-keys")
def wf_paginate():
    c = client()
    base = f"{PREFIX}pg/"
    keys = [f"{base}{i % 3}/k{i:05d}" for i in range(1200)]
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as ex:
        list(ex.map(lambda k: c.put_object(Bucket=BUCKET, Key=k, Body=k.encode()), keys))
    log(f"put 1200 objects in {time.monotonic() - t0:.1f}s")
    pages = list(c.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=base, PaginationConfig={"PageSize": 500}))
    sizes = [len(p.get("Contents", [])) for p in pages]
    assert sizes == [500, 500, 200], f"page sizes {sizes}, expected [500, 500, 200]"
    assert [p["IsTruncated"] for p in pages] == [True, True, False], f"IsTruncated {[p['IsTruncated'] for p in pages]}"
    assert all(p.get("KeyCount") == n for p, n in zip(pages, sizes)), f"KeyCount {[p.get('KeyCount') for p in pages]}"
    assert all(p.get("MaxKeys") == 500 for p in pages), f"MaxKeys {[p.get('MaxKeys') for p in pages]}"
    listed = [o["Key"] for p in pages for o in p.get("Contents", [])]
    counts = collections.Counter(listed)
    dup = [k for k, n in counts.items() if n > 1]
    missing = set(keys) - set(listed)
    assert not dup, f"{len(dup)} keys listed more than once, e.g. {dup[:5]}"
    assert not missing, f"{len(missing)} keys never listed, e.g. {sorted(missing)[:5]}"
    assert listed == sorted(keys), "keys are not in lexicographic order across pages"
    log("ListObjectsV2 paginator: 3 pages (500/500/200), every key exactly once, in order")
    v1 = [o["Key"] for p in c.get_paginator("list_objects").paginate(Bucket=BUCKET, Prefix=base, PaginationConfig={"PageSize": 500}) for o in p.get("Contents", [])]
    assert v1 == sorted(keys), f"ListObjects (v1) paginator: {len(v1)} keys, {len(set(v1))} distinct"
    log("ListObjects (v1) paginator: every key exactly once, in order")
    r = c.list_objects_v2(Bucket=BUCKET, Prefix=base, Delimiter="/")
    cps = [p["Prefix"] for p in r.get("CommonPrefixes", [])]
    assert cps == [f"{base}0/", f"{base}1/", f"{base}2/"], f"CommonPrefixes {cps}"
    assert not r.get("Contents"), f"Delimiter listing has Contents: {r.get('Contents')[:3]}"
    r = c.list_objects_v2(Bucket=BUCKET, Prefix=base, StartAfter=sorted(keys)[599], MaxKeys=10)
    assert [o["Key"] for o in r["Contents"]] == sorted(keys)[600:610], "StartAfter listing wrong"
    log("Delimiter and StartAfter ok")
    t0 = time.monotonic()
    deleted = 0
    for i in range(0, len(keys), 1000):
        d = c.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": k} for k in keys[i : i + 1000]]})
        assert not d.get("Errors"), f"delete_objects errors: {d['Errors'][:3]}"
        deleted += len(d.get("Deleted", []))
    assert deleted == 1200, f"delete_objects reported {deleted} deletions"
    assert list_keys(c, base) == [], "keys left after deleting all 1200"
    log(f"delete_objects of 1200 keys (1000 + 200) in {time.monotonic() - t0:.1f}s")


@workflow("range-get")
def wf_range():
    c = client()
    key = f"{PREFIX}range.bin"
    data = bytes(range(256)) * 4
    c.put_object(Bucket=BUCKET, Key=key, Body=data)
    for rng, want, cr in (
        ("bytes=10-19", data[10:20], "bytes 10-19/1024"),
        ("bytes=-5", data[-5:], "bytes 1019-1023/1024"),
        ("bytes=1000-", data[1000:], "bytes 1000-1023/1024"),
        ("bytes=0-0", data[:1], "bytes 0-0/1024"),
        ("bytes=1000-5000", data[1000:], "bytes 1000-1023/1024"),
    ):
        r = c.get_object(Bucket=BUCKET, Key=key, Range=rng)
        body = r["Body"].read()
        status = r["ResponseMetadata"]["HTTPStatusCode"]
        assert status == 206, f"{rng}: HTTP {status}, expected 206"
        assert body == want, f"{rng}: got {len(body)} bytes {body[:16]!r}..., expected {want[:16]!r}..."
        assert r.get("ContentRange") == cr, f"{rng}: Content-Range {r.get('ContentRange')!r}, expected {cr!r}"
        assert r["ContentLength"] == len(want), f"{rng}: ContentLength {r['ContentLength']}"
        log(f"{rng}: 206, {cr}")
    expect_error(lambda: c.get_object(Bucket=BUCKET, Key=key, Range="bytes=5000-6000"), code="InvalidRange", status=416, what="unsatisfiable range")
    c.delete_object(Bucket=BUCKET, Key=key)


@workflow("conditional-get")
def wf_conditional():
    c = client()
    key = f"{PREFIX}cond.txt"
    c.put_object(Bucket=BUCKET, Key=key, Body=b"conditional")
    h = c.head_object(Bucket=BUCKET, Key=key)
    etag, lm = h["ETag"], h["LastModified"]
    expect_error(lambda: c.get_object(Bucket=BUCKET, Key=key, IfNoneMatch=etag), code="304", status=304, what="GET If-None-Match: <etag>")
    expect_error(lambda: c.head_object(Bucket=BUCKET, Key=key, IfNoneMatch=etag), status=304, what="HEAD If-None-Match: <etag>")
    r = c.get_object(Bucket=BUCKET, Key=key, IfNoneMatch='"0123456789abcdef0123456789abcdef"')
    assert r["Body"].read() == b"conditional", "If-None-Match with another ETag should return the object"
    r = c.get_object(Bucket=BUCKET, Key=key, IfMatch=etag)
    assert r["Body"].read() == b"conditional", "If-Match with the ETag should return the object"
    expect_error(
        lambda: c.get_object(Bucket=BUCKET, Key=key, IfMatch='"0123456789abcdef0123456789abcdef"'),
        code="PreconditionFailed",
        status=412,
        what="GET If-Match: <other etag>",
    )
    expect_error(lambda: c.get_object(Bucket=BUCKET, Key=key, IfModifiedSince=lm), status=304, what="GET If-Modified-Since: <LastModified>")
    expect_error(
        lambda: c.get_object(Bucket=BUCKET, Key=key, IfUnmodifiedSince=lm - datetime.timedelta(days=1)),
        code="PreconditionFailed",
        status=412,
        what="GET If-Unmodified-Since: <a day before>",
    )
    r = c.get_object(Bucket=BUCKET, Key=key, IfModifiedSince=lm - datetime.timedelta(days=1))
    assert r["Body"].read() == b"conditional", "If-Modified-Since a day before should return the object"
    c.delete_object(Bucket=BUCKET, Key=key)


@workflow("presigned-sigv4-get-put")
def wf_presign_v4():
    c = client(signature_version="s3v4")
    key = f"{PREFIX}presign/v4 ü.txt"
    body = f"presigned v4 {RUN}".encode()
    c.put_object(Bucket=BUCKET, Key=key, Body=body)
    url = c.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": key}, ExpiresIn=300)
    assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in url, f"not a SigV4 URL: {url}"
    assert url.startswith(f"{EP}/{BUCKET}/"), f"not a path-style URL: {url}"
    st, _, got = http("GET", url)
    assert st == 200 and got == body, f"presigned GET: HTTP {st}, body {got[:300]!r}"
    log("presigned GET (SigV4) ok")
    key2 = f"{PREFIX}presign/uploaded.txt"
    put_url = c.generate_presigned_url("put_object", Params={"Bucket": BUCKET, "Key": key2}, ExpiresIn=300)
    payload = f"uploaded through a presigned PUT {RUN}".encode()
    st, _, resp = http("PUT", put_url, data=payload, headers={"Content-Type": "application/octet-stream"})
    assert st == 200, f"presigned PUT: HTTP {st}: {resp[:500]!r}"
    got = c.get_object(Bucket=BUCKET, Key=key2)["Body"].read()
    assert got == payload, f"object written by the presigned PUT has body {got[:100]!r}"
    log("presigned PUT (SigV4) ok")
    # A changed signature, and an expired URL, are refused.
    bad = url[:-1] + ("0" if url[-1] != "0" else "1")
    st, _, resp = http("GET", bad)
    assert st == 403 and b"SignatureDoesNotMatch" in resp, f"tampered SigV4 URL: HTTP {st}: {resp[:300]!r}"
    log("tampered SigV4 URL: 403 SignatureDoesNotMatch")
    short = c.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": key}, ExpiresIn=1)
    time.sleep(2.2)
    st, _, resp = http("GET", short)
    assert st == 403, f"expired SigV4 URL: HTTP {st}: {resp[:300]!r}"
    log(f"expired SigV4 URL: 403 ({resp[:120]!r})")
    c.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": key}, {"Key": key2}]})


@workflow("presigned-sigv2-get")
def wf_presign_v2():
    c = client()
    key = f"{PREFIX}presign/v2 file.txt"
    body = f"presigned v2 {RUN}".encode()
    c.put_object(Bucket=BUCKET, Key=key, Body=body)
    c2 = client(signature_version="s3")
    url = c2.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": key}, ExpiresIn=300)
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    assert {"AWSAccessKeyId", "Signature", "Expires"} <= set(q), f"not a SigV2 URL: {url}"
    st, _, got = http("GET", url)
    assert st == 200 and got == body, f"presigned GET (SigV2): HTTP {st}, body {got[:300]!r}"
    log("presigned GET (SigV2) ok")
    bad = url.replace("Signature=", "Signature=AAAA", 1)
    st, _, resp = http("GET", bad)
    assert st == 403, f"tampered SigV2 URL: HTTP {st}: {resp[:300]!r}"
    log("tampered SigV2 URL: 403")
    c.delete_object(Bucket=BUCKET, Key=key)


def post_form(url, fields, filename, data):
    """POSTs a browser form (multipart/form-data, fields in order, then the file) with urllib,
    as a browser sends it; returns (status, headers (case-insensitive), body) without following
    redirects."""
    boundary = "----s3ferryConformance" + uuid.uuid4().hex
    out = io.BytesIO()
    for name, value in fields.items():
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode())
        out.write(value.encode() + b"\r\n")
    out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'.encode())
    out.write(b"Content-Type: application/octet-stream\r\n\r\n" + data + f"\r\n--{boundary}--\r\n".encode())

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    req = urllib.request.Request(
        url, data=out.getvalue(), method="POST", headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    try:
        with urllib.request.build_opener(NoRedirect).open(req, timeout=30) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


@workflow("post-policy-form-upload")
def wf_post_policy():
    """botocore's generate_presigned_post (SigV4 policy), posted as a browser would."""
    c = client(signature_version="s3v4")
    key = f"{PREFIX}post/${{filename}}"
    data = os.urandom(300 * 1024)
    post = c.generate_presigned_post(
        BUCKET,
        key,
        Fields={"Content-Type": "image/png", "x-amz-meta-origin": "browser", "success_action_status": "201"},
        Conditions=[
            ["starts-with", "$Content-Type", "image/"],
            {"x-amz-meta-origin": "browser"},
            {"success_action_status": "201"},
            ["content-length-range", 1, 1024 * 1024],
        ],
        ExpiresIn=300,
    )
    assert post["url"].startswith(f"{EP}/{BUCKET}"), f"not a path-style form URL: {post['url']}"
    st, headers, resp = post_form(post["url"], post["fields"], "shot.png", data)
    assert st == 201, f"form upload: HTTP {st}: {resp[:500]!r}"
    assert b"<PostResponse>" in resp and f"<Key>{PREFIX}post/shot.png</Key>".encode() in resp, f"201 body: {resp[:500]!r}"
    got = c.get_object(Bucket=BUCKET, Key=f"{PREFIX}post/shot.png")
    assert got["Body"].read() == data, "the stored object differs from the file"
    assert got["ContentType"] == "image/png" and got["Metadata"].get("origin") == "browser", f"headers: {got['ContentType']} {got['Metadata']}"
    assert got["ETag"] == md5_etag(data), f"ETag {got['ETag']}"
    log("generate_presigned_post (SigV4) + urllib multipart POST: 201 PostResponse, object stored with its headers")

    # Refused as AWS refuses: a file over content-length-range, a field the policy does not allow,
    # a forged signature. None of them stores anything.
    big = os.urandom(1024 * 1024 + 1)
    st, _, resp = post_form(post["url"], post["fields"], "big.png", big)
    assert st == 400 and b"EntityTooLarge" in resp, f"file over the range: HTTP {st}: {resp[:300]!r}"
    log("file over content-length-range: 400 EntityTooLarge")
    wrong_type = dict(post["fields"], **{"Content-Type": "text/html"})
    st, _, resp = post_form(post["url"], wrong_type, "page.html", b"<script>")
    assert st == 403 and b"AccessDenied" in resp, f"Content-Type outside the policy: HTTP {st}: {resp[:300]!r}"
    log("Content-Type outside the policy: 403 AccessDenied")
    forged = dict(post["fields"], **{"x-amz-signature": "0" * 64})
    st, _, resp = post_form(post["url"], forged, "forged.png", b"x")
    assert st == 403 and b"SignatureDoesNotMatch" in resp, f"forged signature: HTTP {st}: {resp[:300]!r}"
    log("forged signature: 403 SignatureDoesNotMatch")
    for name in ("big.png", "page.html", "forged.png"):
        expect_error(lambda: c.head_object(Bucket=BUCKET, Key=f"{PREFIX}post/{name}"), status=404, what=f"refused {name} stored nothing")

    # success_action_redirect: a 303 to the app with bucket, key and ETag.
    redirect = "http://app.example/uploaded"
    post2 = c.generate_presigned_post(
        BUCKET, f"{PREFIX}post/redirected.txt", Fields={"success_action_redirect": redirect},
        Conditions=[{"success_action_redirect": redirect}], ExpiresIn=300,
    )
    st, headers, resp = post_form(post2["url"], post2["fields"], "r.txt", b"redirected")
    location = headers.get("Location", "")
    assert st == 303 and location.startswith(redirect + "?bucket=" + BUCKET), f"redirect: HTTP {st}, Location {location!r}: {resp[:300]!r}"
    log(f"success_action_redirect: 303 to {location}")
    delete_prefix(c, f"{PREFIX}post/")


@workflow("sigv2-header-auth")
def wf_sigv2_header():
    c2 = client(signature_version="s3")
    key = f"{PREFIX}v2/header-signed.txt"
    body = b"signed with AWS (SigV2) headers"
    steps = [
        ("PutObject", lambda: c2.put_object(Bucket=BUCKET, Key=key, Body=body, ContentType="text/plain")),
        ("GetObject", lambda: c2.get_object(Bucket=BUCKET, Key=key)["Body"].read() == body or "body differs"),
        ("HeadBucket (bucket-level: botocore signs the resource /bucket/)", lambda: c2.head_bucket(Bucket=BUCKET)),
        ("ListObjectsV2 (bucket-level)", lambda: key in list_keys(c2, f"{PREFIX}v2/") or "key not listed"),
        ("ListBuckets", lambda: c2.list_buckets()),
        ("DeleteObject", lambda: c2.delete_object(Bucket=BUCKET, Key=key)),
    ]
    problems = []
    for what, fn in steps:
        try:
            r = fn()
            if isinstance(r, str):
                problems.append(f"{what}: {r}")
            else:
                log(f"SigV2 {what}: ok")
        except ClientError as e:
            problems.append(f"{what}: {e}")
    client().delete_object(Bucket=BUCKET, Key=key)
    assert not problems, "SigV2 header-signed requests failed:\n    " + "\n    ".join(problems)
    bad = client(secret="wrong-secret", signature_version="s3")
    expect_error(lambda: bad.list_objects_v2(Bucket=BUCKET), code="SignatureDoesNotMatch", status=403, what="SigV2 with a wrong secret")
    log("SigV2 header-signed put/get/list/delete ok")


@workflow("wrong-secret")
def wf_wrong_secret():
    bad = client(secret="not-the-secret")
    expect_error(lambda: bad.list_objects_v2(Bucket=BUCKET), code="SignatureDoesNotMatch", status=403, what="ListObjectsV2 with a wrong secret")
    expect_error(lambda: bad.list_buckets(), code="SignatureDoesNotMatch", status=403, what="ListBuckets with a wrong secret")
    key = f"{PREFIX}should-not-exist.txt"
    expect_error(lambda: bad.put_object(Bucket=BUCKET, Key=key, Body=b"nope"), code="SignatureDoesNotMatch", status=403, what="PutObject with a wrong secret")
    expect_error(lambda: client().head_object(Bucket=BUCKET, Key=key), status=404, what="the refused PUT stored nothing")
    st, _, resp = http("GET", f"{EP}/{BUCKET}?list-type=2")
    assert st == 403, f"anonymous ListObjectsV2: HTTP {st}, expected 403: {resp[:300]!r}"
    log(f"anonymous request: 403 ({resp[:100]!r})")


@workflow("unknown-access-key")
def wf_unknown_key():
    bad = client(access_key="AKIANOSUCHKEY000000", secret=SK)
    expect_error(lambda: bad.list_objects_v2(Bucket=BUCKET), code="InvalidAccessKeyId", status=403, what="ListObjectsV2 with an unknown access key")
    expect_error(lambda: bad.get_object(Bucket=BUCKET, Key="x"), code="InvalidAccessKeyId", status=403, what="GetObject with an unknown access key")
    url = bad.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "x"}, ExpiresIn=60)
    st, _, resp = http("GET", url)
    assert st == 403 and b"InvalidAccessKeyId" in resp, f"presigned URL with an unknown key: HTTP {st}: {resp[:300]!r}"
    log("presigned URL with an unknown key: 403 InvalidAccessKeyId")


@workflow("bucket-lifecycle")
def wf_bucket_lifecycle():
    c = client()
    b = f"conf-boto3-{RUN}".lower()
    c.create_bucket(Bucket=b)
    c.head_bucket(Bucket=b)
    names = [x["Name"] for x in c.list_buckets()["Buckets"]]
    assert b in names, f"list_buckets does not show the new bucket {b}: {names}"
    c.put_object(Bucket=b, Key="k", Body=b"v")
    expect_error(lambda: c.delete_bucket(Bucket=b), code="BucketNotEmpty", status=409, what="DeleteBucket of a non-empty bucket")
    c.delete_object(Bucket=b, Key="k")
    c.delete_bucket(Bucket=b)
    expect_error(lambda: c.head_bucket(Bucket=b), status=404, what="HeadBucket after delete")
    expect_error(lambda: c.get_object(Bucket=b, Key="k"), code="NoSuchBucket", status=404, what="GetObject in a deleted bucket")
    names = [x["Name"] for x in c.list_buckets()["Buckets"]]
    assert b not in names, f"list_buckets still shows {b}"


@workflow("grants-and-anonymous")
def wf_grants_and_anonymous():
    """The example config's read-only and upload-only keys, and the anonymous bucket run.sh adds."""
    admin = client()
    reports = client(access_key="s3ferry-reports", secret="s3ferry-reports-secret")
    partner = client(access_key="s3ferry-partner", secret="s3ferry-partner-secret")
    key = f"{PREFIX}granted.txt"
    admin.put_object(Bucket=BUCKET, Key=key, Body=b"granted")
    try:
        assert reports.get_object(Bucket=BUCKET, Key=key)["Body"].read() == b"granted"
        assert key in list_keys(reports, PREFIX), "the read-only key lists"
        expect_error(lambda: reports.put_object(Bucket=BUCKET, Key=f"{PREFIX}no.txt", Body=b"x"), code="AccessDenied", status=403, what="PutObject with the read-only key")
        expect_error(lambda: reports.delete_object(Bucket=BUCKET, Key=key), code="AccessDenied", status=403, what="DeleteObject with the read-only key")
        names = sorted(b["Name"] for b in reports.list_buckets()["Buckets"])
        assert names == ["demo", "photos"], f"ListBuckets of the read-only key: {names}"
        upload = f"incoming/{PREFIX}partner.txt"
        partner.put_object(Bucket="demo", Key=upload, Body=b"from the partner")
        assert admin.get_object(Bucket="demo", Key=upload)["Body"].read() == b"from the partner"
        admin.delete_object(Bucket="demo", Key=upload)
        expect_error(lambda: partner.get_object(Bucket=BUCKET, Key=key), code="AccessDenied", status=403, what="GetObject with the upload-only key")
        expect_error(lambda: partner.put_object(Bucket="demo", Key=f"{PREFIX}outside.txt", Body=b"x"), code="AccessDenied", status=403, what="PutObject outside the upload-only prefix")
        expect_error(lambda: client(access_key="s3ferry-partner", secret="s3ferry-partner-secret").list_objects_v2(Bucket="demo", Prefix="incoming/"), code="AccessDenied", status=403, what="ListObjectsV2 with the upload-only key")
    finally:
        admin.delete_object(Bucket=BUCKET, Key=key)

    public = os.environ.get("CONF_PUBLIC_BUCKET")
    if not public:
        log("CONF_PUBLIC_BUCKET not set: the anonymous part is skipped")
        return
    admin.put_object(Bucket=public, Key=f"{PREFIX}open.txt", Body=b"for anyone")
    try:
        unsigned = client(signature_version=botocore.UNSIGNED)
        got = unsigned.get_object(Bucket=public, Key=f"{PREFIX}open.txt")["Body"].read()
        assert got == b"for anyone", got
        assert f"{PREFIX}open.txt" in list_keys(unsigned, PREFIX, Bucket=public), "anonymous_list = true lists"
        st, _, body = http("GET", f"{EP}/{public}/{PREFIX}open.txt")
        assert st == 200 and body == b"for anyone", f"plain unsigned GET: HTTP {st}: {body[:200]!r}"
        expect_error(lambda: unsigned.put_object(Bucket=public, Key=f"{PREFIX}anon.txt", Body=b"x"), status=403, what="unsigned PutObject to an anonymous-read bucket")
        expect_error(lambda: unsigned.get_object(Bucket=BUCKET, Key=key), status=403, what="unsigned GetObject of a private bucket")
        expect_error(lambda: unsigned.list_buckets(), status=403, what="unsigned ListBuckets")
    finally:
        admin.delete_object(Bucket=public, Key=f"{PREFIX}open.txt")


# ---------------------------------------------------------------------------------------
def main(argv):
    return workflow.main(argv, f"boto3 {boto3.__version__} / botocore {botocore.__version__} against {EP}, bucket {BUCKET}, prefix {PREFIX}")


if __name__ == "__main__":
    sys.exit(main(sys.argv))
