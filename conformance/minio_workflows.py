#!/usr/bin/env python3
"""MinIO Python client (`minio` on PyPI) workflows for the s3ferry conformance suite.

    python3 conformance/minio_workflows.py            # every workflow, stops at the first failure
    python3 conformance/minio_workflows.py NAME...    # only these
    python3 conformance/minio_workflows.py --list     # workflow names

Reads S3_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION, CONF_RUN_ID,
CONF_MINIO_BUCKET (an existing bucket to work in, default `demo`) and CONF_MINIO_BUCKET_OPS
(1: also create and remove a bucket of its own). Every workflow cleans up after itself.
Exit 0 = pass, 1 = fail. The ListBuckets and cross-provider copy workflows also check that the
times s3ferry writes itself are in S3's millisecond form, which minio-py parses (nanoseconds
broke it before s3::timestamp).

minio-py signs every request with SigV4 and a signed payload hash, sends Content-MD5 on
DeleteObjects, lists with `encoding-type=url` and decodes the keys, and uploads files larger
than its part size as multipart uploads in parallel.
"""

import datetime
import hashlib
import io
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

import minio
from minio import Minio
from minio.commonconfig import REPLACE, CopySource
from minio.deleteobjects import DeleteObject
from minio.error import S3Error

from workflow_runner import AK, EP, REGION, RUN, SK, MiB, Workflows, log

BUCKET = os.environ.get("CONF_MINIO_BUCKET", "demo")
PREFIX = f"minio-{RUN}/"

workflow = Workflows("minio")


def client(secret=SK):
    url = urllib.parse.urlsplit(EP)
    # region given: no GetBucketLocation before the first request.
    return Minio(url.netloc, access_key=AK, secret_key=secret, secure=url.scheme == "https", region=REGION)


def md5(data):
    return hashlib.md5(data).hexdigest()


def expect_s3_error(fn, code, what):
    try:
        fn()
    except S3Error as e:
        assert e.code == code, f"{what}: expected {code}, got {e.code} ({e.message})"
        log(f"{what}: {e.code} as expected")
        return e
    raise AssertionError(f"{what}: expected S3Error {code}, the call succeeded")


def keys_under(c, prefix, recursive=True):
    return [o.object_name for o in c.list_objects(BUCKET, prefix=prefix, recursive=recursive)]


def delete_prefix(c, prefix):
    keys = keys_under(c, prefix)
    errors = list(c.remove_objects(BUCKET, [DeleteObject(k) for k in keys]))
    assert not errors, f"remove_objects errors: {errors[:5]}"
    return len(keys)


def read_object(c, key, **kw):
    r = c.get_object(BUCKET, key, **kw)
    try:
        return r.read(), r.headers
    finally:
        r.close()
        r.release_conn()


def http(method, url, data=None, headers=None):
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


# ---------------------------------------------------------------------------------------
@workflow("put-get-stat-remove")
def wf_put_get_stat_remove():
    c = client()
    p = f"{PREFIX}basic/"
    try:
        body = f"hello from minio-py {RUN}\n".encode()
        w = c.put_object(BUCKET, f"{p}hello.txt", io.BytesIO(body), len(body), content_type="text/plain", metadata={"x-amz-meta-color": "green"})
        assert w.etag == md5(body), f"put_object etag {w.etag} is not the MD5 {md5(body)}"
        got, headers = read_object(c, f"{p}hello.txt")
        assert got == body, f"get_object returned {got!r}"
        st = c.stat_object(BUCKET, f"{p}hello.txt")
        assert st.size == len(body) and st.etag == md5(body) and st.content_type == "text/plain", f"stat_object: {st.size} {st.etag} {st.content_type}"
        meta = {k.lower(): v for k, v in st.metadata.items()}
        assert meta.get("x-amz-meta-color") == "green", f"stat_object metadata: {dict(st.metadata)}"
        log("put_object / get_object / stat_object: bytes, ETag = MD5, Content-Type and metadata")
        part, _ = read_object(c, f"{p}hello.txt", offset=6, length=4)
        assert part == body[6:10], f"ranged get_object: {part!r}"
        log("get_object with offset and length (a ranged GET)")
        empty = c.put_object(BUCKET, f"{p}empty", io.BytesIO(b""), 0)
        assert empty.etag == md5(b""), empty.etag
        assert read_object(c, f"{p}empty")[0] == b""
        log("a 0-byte object")
        c.remove_object(BUCKET, f"{p}hello.txt")
        expect_s3_error(lambda: c.stat_object(BUCKET, f"{p}hello.txt"), "NoSuchKey", "stat_object after remove_object")
        expect_s3_error(lambda: read_object(c, f"{p}hello.txt"), "NoSuchKey", "get_object after remove_object")
        expect_s3_error(lambda: read_object(client(secret="wrong"), f"{p}empty"), "SignatureDoesNotMatch", "get_object with a wrong secret")
    finally:
        delete_prefix(c, p)


@workflow("fput-multipart-and-stream")
def wf_fput_multipart():
    c = client()
    p = f"{PREFIX}mpu/"
    scratch = os.environ.get("CONF_SCRATCH") or "/tmp"
    path = os.path.join(scratch, f"minio-{RUN}-big.bin")
    down = path + ".down"
    data = os.urandom(12 * MiB + 12345)
    try:
        with open(path, "wb") as f:
            f.write(data)
        # fput_object of a large file: a multipart upload in 5 MiB parts, 3 in parallel.
        w = c.fput_object(BUCKET, f"{p}big.bin", path, part_size=5 * MiB)
        assert w.etag.endswith("-3") and len(w.etag) == 34, f"fput_object etag {w.etag} is not <md5>-3"
        st = c.stat_object(BUCKET, f"{p}big.bin")
        assert st.size == len(data) and st.etag == w.etag, f"stat_object: {st.size} {st.etag}"
        c.fget_object(BUCKET, f"{p}big.bin", down)
        with open(down, "rb") as f:
            assert hashlib.sha256(f.read()).digest() == hashlib.sha256(data).digest(), "fget_object returned other bytes"
        log(f"fput_object of {len(data)} bytes: 3-part multipart upload (ETag {w.etag}), fget_object identical")
        # A stream of unknown length (length=-1): minio-py cuts it into parts itself.
        w2 = c.put_object(BUCKET, f"{p}stream.bin", io.BytesIO(data[: 7 * MiB]), -1, part_size=5 * MiB)
        assert w2.etag.endswith("-2"), f"unknown-length put_object etag {w2.etag}"
        got, _ = read_object(c, f"{p}stream.bin")
        assert got == data[: 7 * MiB], "the unknown-length upload came back different"
        log(f"put_object of a 7 MiB stream of unknown length: 2 parts (ETag {w2.etag}), identical")
    finally:
        for f in (path, down):
            if os.path.exists(f):
                os.remove(f)
        delete_prefix(c, p)


@workflow("list-objects")
def wf_list():
    c = client()
    p = f"{PREFIX}list/"
    keys = [f"{p}flat/k{i:03d}" for i in range(15)] + [
        f"{p}dir/a.txt",
        f"{p}dir/sub/b.txt",
        f"{p}with space.txt",
        f"{p}plus+sign.txt",
        f"{p}unicode-é-日本.txt",
        f"{p}percent%25.txt",
    ]
    try:
        for k in keys:
            c.put_object(BUCKET, k, io.BytesIO(k.encode()), len(k.encode()))
        listed = keys_under(c, p, recursive=True)
        want = sorted(keys, key=lambda k: k.encode())
        assert listed == want, f"recursive listing differs:\n got {listed}\nwant {want}"
        log(f"list_objects recursive (encoding-type=url, decoded by minio-py): {len(listed)} keys exactly, in order")
        top = list(c.list_objects(BUCKET, prefix=p))
        dirs = sorted(o.object_name for o in top if o.is_dir)
        files = sorted(o.object_name for o in top if not o.is_dir)
        assert dirs == [f"{p}dir/", f"{p}flat/"], f"prefixes {dirs}"
        assert len(files) == 4, f"top-level objects {files}"
        sizes = {o.object_name: o.size for o in top if not o.is_dir}
        assert sizes[f"{p}with space.txt"] == len(f"{p}with space.txt".encode()), sizes
        log("list_objects with '/' delimiter: 2 prefixes and 4 objects with their sizes")
        after = keys_under(c, f"{p}flat/", recursive=True)
        assert after == sorted(k for k in keys if "/flat/" in k), after
        sa = [o.object_name for o in c.list_objects(BUCKET, prefix=f"{p}flat/", start_after=f"{p}flat/k012")]
        assert sa == [f"{p}flat/k013", f"{p}flat/k014"], f"start_after: {sa}"
        log("start_after")
        v1 = [o.object_name for o in c.list_objects(BUCKET, prefix=p, recursive=True, use_api_v1=True)]
        assert v1 == want, f"ListObjects v1 differs: {v1}"
        log("list_objects(use_api_v1=True): the same keys")
    finally:
        delete_prefix(c, p)


@workflow("presigned-get-put")
def wf_presigned():
    c = client()
    p = f"{PREFIX}presign/"
    body = f"presigned by minio-py {RUN}\n".encode()
    try:
        put_url = c.presigned_put_object(BUCKET, f"{p}up.txt", expires=datetime.timedelta(minutes=5))
        assert "X-Amz-Signature=" in put_url and "x-amz-checksum" not in put_url.lower(), put_url
        # An explicit type: urllib's default for a body (application/x-www-form-urlencoded)
        # makes moto (the stand-in upstream) read the body as a form and store 0 bytes.
        st, h, out = http("PUT", put_url, data=body, headers={"Content-Type": "application/octet-stream"})
        assert st == 200, f"presigned PUT: HTTP {st}: {out[:300]!r}"
        assert h.get("etag") == f'"{md5(body)}"', f"presigned PUT ETag {h.get('etag')}"
        get_url = c.presigned_get_object(BUCKET, f"{p}up.txt", expires=datetime.timedelta(minutes=5))
        st, _, out = http("GET", get_url)
        assert st == 200 and out == body, f"presigned GET: HTTP {st}, {out[:200]!r}"
        log("presigned_put_object (urllib PUT, ETag = MD5) and presigned_get_object")
        st, _, out = http("GET", get_url.replace("up.txt", "uq.txt"))
        assert st == 403, f"presigned GET with another key: HTTP {st}"
        st, _, _ = http("PUT", put_url.replace("up.txt", "uq.txt"), data=b"x", headers={"Content-Type": "application/octet-stream"})
        assert st == 403, f"presigned PUT with another key: HTTP {st}"
        assert keys_under(c, p) == [f"{p}up.txt"], "the refused presigned PUT stored something"
        log("a presigned URL with another key gets 403 and stores nothing")
    finally:
        delete_prefix(c, p)


@workflow("copy-and-remove-objects")
def wf_copy_remove():
    c = client()
    p = f"{PREFIX}copy/"
    body = f"copy me {RUN}\n".encode()
    try:
        c.put_object(BUCKET, f"{p}src file+1.txt", io.BytesIO(body), len(body), content_type="text/plain", metadata={"x-amz-meta-origin": "minio"})
        w = c.copy_object(BUCKET, f"{p}dst.txt", CopySource(BUCKET, f"{p}src file+1.txt"))
        assert w.etag == md5(body), f"copy_object etag {w.etag}"
        assert read_object(c, f"{p}dst.txt")[0] == body
        st = c.stat_object(BUCKET, f"{p}dst.txt")
        assert {k.lower(): v for k, v in st.metadata.items()}.get("x-amz-meta-origin") == "minio", dict(st.metadata)
        log("copy_object: same bytes, ETag and metadata")
        c.copy_object(BUCKET, f"{p}replaced.txt", CopySource(BUCKET, f"{p}src file+1.txt"), metadata={"x-amz-meta-origin": "replaced"}, metadata_directive=REPLACE)
        st = c.stat_object(BUCKET, f"{p}replaced.txt")
        assert {k.lower(): v for k, v in st.metadata.items()}.get("x-amz-meta-origin") == "replaced", dict(st.metadata)
        log("copy_object with metadata_directive=REPLACE")
        expect_s3_error(lambda: c.copy_object(BUCKET, f"{p}x.txt", CopySource(BUCKET, f"{p}missing")), "NoSuchKey", "copy_object from a missing key")

        many = [f"{p}many/{i} x.txt" for i in range(30)]
        for k in many:
            c.put_object(BUCKET, k, io.BytesIO(b"m"), 1)
        errors = list(c.remove_objects(BUCKET, [DeleteObject(k) for k in many] + [DeleteObject(f"{p}many/never-existed")]))
        assert not errors, f"remove_objects errors: {errors}"
        assert keys_under(c, f"{p}many/") == [], "objects left after remove_objects"
        log("remove_objects (DeleteObjects with Content-MD5) of 31 keys, one never existed: no errors, nothing left")
    finally:
        delete_prefix(c, p)


@workflow("bucket-lifecycle")
def wf_bucket():
    if os.environ.get("CONF_MINIO_BUCKET_OPS", "1") != "1":
        log("CONF_MINIO_BUCKET_OPS is not 1: only bucket_exists of the existing bucket")
        assert client().bucket_exists(BUCKET), f"bucket_exists({BUCKET}) is False"
        return
    c = client()
    name = f"conf-minio-{RUN}".lower()
    assert not c.bucket_exists(name), f"{name} exists before make_bucket"
    c.make_bucket(name)
    assert c.bucket_exists(name), "bucket_exists is False after make_bucket"
    c.put_object(name, "x", io.BytesIO(b"x"), 1)
    expect_s3_error(lambda: c.remove_bucket(name), "BucketNotEmpty", "remove_bucket of a non-empty bucket")
    c.remove_object(name, "x")
    c.remove_bucket(name)
    assert not c.bucket_exists(name), "bucket_exists is True after remove_bucket"
    log("make_bucket, bucket_exists, BucketNotEmpty, remove_bucket")


@workflow("list-buckets")
def wf_list_buckets():
    c = client()
    buckets = c.list_buckets()
    names = [b.name for b in buckets]
    assert BUCKET in names and "demo" in names, f"list_buckets: {names}"
    assert "photos-2017" not in names, "list_buckets shows the upstream name photos-2017"
    log(f"list_buckets: {len(names)} buckets, with {BUCKET}, parsed by minio-py")


@workflow("copy-across-providers")
def wf_copy_across():
    other = os.environ.get("CONF_MINIO_OTHER_BUCKET", "photos")
    c = client()
    key = f"{PREFIX}across.txt"
    body = f"from {BUCKET} to {other} {RUN}\n".encode()
    c.put_object(BUCKET, key, io.BytesIO(body), len(body))
    try:
        # The two buckets are on different providers: s3ferry streams the copy through itself
        # and writes the CopyObjectResult.
        w = c.copy_object(other, key, CopySource(BUCKET, key))
        assert w.etag == md5(body), f"copy_object etag {w.etag}"
        r = c.get_object(other, key)
        try:
            assert r.read() == body, "the copy has other bytes"
        finally:
            r.close()
            r.release_conn()
        log(f"copy_object from {BUCKET} to {other} (another provider): same bytes and ETag")
    finally:
        c.remove_object(BUCKET, key)
        c.remove_object(other, key)


# ---------------------------------------------------------------------------------------
def main(argv):
    return workflow.main(argv, f"minio-py {minio.__version__} against {EP}, bucket {BUCKET}, prefix {PREFIX}")


if __name__ == "__main__":
    sys.exit(main(sys.argv))
