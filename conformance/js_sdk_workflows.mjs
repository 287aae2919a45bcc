#!/usr/bin/env node
// AWS SDK for JavaScript v3 workflows for the s3ferry conformance suite.
//
//   node conformance/js_sdk_workflows.mjs            # every workflow, stops at the first failure
//   node conformance/js_sdk_workflows.mjs NAME...    # only these
//   node conformance/js_sdk_workflows.mjs --list     # workflow names
//
// The SDK comes from conformance/js/node_modules (run.sh runs `npm ci` there; versions pinned
// by conformance/js/package-lock.json). Reads S3_ENDPOINT, AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION, CONF_RUN_ID and CONF_JS_BUCKET (an existing bucket
// to work in, default `demo`) and CONF_STANDIN_DIALECT (the dialect of the provider stand-in
// behind that bucket, if any). Every workflow cleans up after itself. Exit 0 = pass, 1 = fail.
//
// The SDK is used with its defaults (since 3.729: a CRC32 on every upload, sent as an
// aws-chunked trailer for streams; checksums checked on download) except forcePathStyle,
// because `*.localhost` names do not resolve on every machine here.

import { createRequire } from "node:module";
import { createHash, randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import path from "node:path";
import { fileURLToPath } from "node:url";
import zlib from "node:zlib";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, "js", "package.json"));
const {
    S3Client,
    PutObjectCommand,
    GetObjectCommand,
    HeadObjectCommand,
    DeleteObjectCommand,
    DeleteObjectsCommand,
    CopyObjectCommand,
    ListObjectsV2Command,
    paginateListObjectsV2,
} = require("@aws-sdk/client-s3");
const { Upload } = require("@aws-sdk/lib-storage");
const { getSignedUrl } = require("@aws-sdk/s3-request-presigner");
const SDK_VERSION = require("@aws-sdk/client-s3/package.json").version;

const EP = (process.env.S3_ENDPOINT || "http://127.0.0.1:8333").replace(/\/$/, "");
const AK = process.env.AWS_ACCESS_KEY_ID || "s3ferry-demo";
const SK = process.env.AWS_SECRET_ACCESS_KEY || "s3ferry-demo-secret";
const REGION = process.env.AWS_DEFAULT_REGION || "us-east-1";
const RUN = process.env.CONF_RUN_ID || randomBytes(4).toString("hex");
const BUCKET = process.env.CONF_JS_BUCKET || "demo";
const PREFIX = `js-${RUN}/`;
const MiB = 1024 * 1024;
// The dialect of the provider stand-in behind BUCKET (run.sh sets it for the quirks-* buckets).
// Toward providers without flexible checksums s3ferry verifies the client's checksum itself and
// keeps it only when it came as a header (README: a trailer's checksum is verified, not kept).
const DIALECT = process.env.CONF_STANDIN_DIALECT || "";
const NO_FLEXIBLE_CHECKSUMS = ["b2", "ceph", "oss", "gcs", "spaces", "wasabi"].includes(DIALECT);

function client(extra = {}) {
    return new S3Client({
        endpoint: EP,
        region: REGION,
        credentials: { accessKeyId: AK, secretAccessKey: SK },
        forcePathStyle: true,
        maxAttempts: 1,
        ...extra,
    });
}

/** Collects method, URL and the request headers of every request the client sends. */
function recordRequests(c) {
    const seen = [];
    c.middlewareStack.add(
        (next) => async (args) => {
            const r = args.request;
            seen.push({ method: r.method, path: r.path, query: { ...r.query }, headers: { ...r.headers } });
            return next(args);
        },
        { step: "finalizeRequest", priority: "low", name: "conformanceRecorder" },
    );
    return seen;
}

const log = (msg) => console.log(`  ${msg}`);

function check(cond, msg) {
    if (!cond) throw new Error(`CHECK FAILED: ${msg}`);
}

const md5Etag = (buf) => `"${createHash("md5").update(buf).digest("hex")}"`;
const sha256 = (buf) => createHash("sha256").update(buf).digest("hex");
const crc32b64 = (buf) => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(zlib.crc32(buf) >>> 0);
    return b.toString("base64");
};

async function bodyBytes(resp) {
    return Buffer.from(await resp.Body.transformToByteArray());
}

/** Awaits fn, which must throw an S3 error with this name and/or HTTP status. */
async function expectError(fn, { code, status, what }) {
    let r;
    try {
        r = await fn();
    } catch (e) {
        const got = e.name || e.Code;
        const st = e.$metadata?.httpStatusCode;
        check(code === undefined || got === code, `${what}: expected ${code}, got ${got} (HTTP ${st}): ${e.message}`);
        check(status === undefined || st === status, `${what}: expected HTTP ${status}, got ${st} (${got})`);
        log(`${what}: ${got} / HTTP ${st} as expected`);
        return e;
    }
    throw new Error(`${what}: expected ${code ?? ""} ${status ?? ""}, the call succeeded (HTTP ${r?.$metadata?.httpStatusCode})`);
}

async function listKeys(c, prefix, bucket = BUCKET) {
    const keys = [];
    for await (const page of paginateListObjectsV2({ client: c }, { Bucket: bucket, Prefix: prefix })) {
        for (const o of page.Contents ?? []) keys.push(o.Key);
    }
    return keys;
}

async function deletePrefix(c, prefix, bucket = BUCKET) {
    const keys = await listKeys(c, prefix, bucket);
    for (let i = 0; i < keys.length; i += 1000) {
        const r = await c.send(
            new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys.slice(i, i + 1000).map((Key) => ({ Key })), Quiet: true } }),
        );
        check(!(r.Errors ?? []).length, `DeleteObjects errors: ${JSON.stringify(r.Errors)}`);
    }
    return keys.length;
}

const WORKFLOWS = [];
const workflow = (name, fn) => WORKFLOWS.push([name, fn]);

// ---------------------------------------------------------------------------------------
workflow("put-get-default-checksums", async () => {
    const c = client();
    const seen = recordRequests(c);
    const p = `${PREFIX}put/`;
    try {
        // A Buffer body: the SDK sends the CRC32 it computed.
        const body = Buffer.from(`hello from the JS SDK ${RUN}\n`);
        const put = await c.send(new PutObjectCommand({ Bucket: BUCKET, Key: `${p}small.txt`, Body: body, ContentType: "text/plain", Metadata: { color: "green" } }));
        check(put.ETag === md5Etag(body), `PUT ETag ${put.ETag} is not the MD5 ${md5Etag(body)}`);
        if (NO_FLEXIBLE_CHECKSUMS && put.ChecksumCRC32 === undefined) {
            log(`PutObject answer without x-amz-checksum-crc32 (the ${DIALECT} stand-in takes no checksums; s3ferry verified it)`);
        } else {
            check(put.ChecksumCRC32 === crc32b64(body), `PUT ChecksumCRC32 ${put.ChecksumCRC32}, expected ${crc32b64(body)}`);
        }
        const sent = seen.at(-1).headers;
        check(sent["x-amz-checksum-crc32"] || sent["x-amz-trailer"] === "x-amz-checksum-crc32", `the SDK sent no CRC32 (headers ${Object.keys(sent)})`);
        log(`PutObject of a Buffer: ETag = MD5, CRC32 ${put.ChecksumCRC32} (sent as ${sent["x-amz-checksum-crc32"] ? "a header" : "an aws-chunked trailer"})`);

        // A stream body of known length: aws-chunked with the CRC32 in a trailer.
        const big = randomBytes(3 * MiB + 17);
        const put2 = await c.send(new PutObjectCommand({ Bucket: BUCKET, Key: `${p}stream.bin`, Body: Readable.from([big.subarray(0, MiB), big.subarray(MiB)]), ContentLength: big.length }));
        const sent2 = seen.at(-1).headers;
        check(sent2["content-encoding"]?.includes("aws-chunked") && sent2["x-amz-trailer"] === "x-amz-checksum-crc32", `a stream PUT should be aws-chunked with a CRC32 trailer, sent ${JSON.stringify(sent2)}`);
        check(put2.ETag === md5Etag(big), `stream PUT ETag ${put2.ETag} is not the MD5`);
        log(`PutObject of a stream: aws-chunked (${sent2["x-amz-content-sha256"]}) with an x-amz-checksum-crc32 trailer, ETag = MD5`);

        // GetObject with checksum mode: the stored CRC32 comes back, and the SDK checks it.
        for (const [key, data, trailer] of [[`${p}small.txt`, body, false], [`${p}stream.bin`, big, true]]) {
            const got = await c.send(new GetObjectCommand({ Bucket: BUCKET, Key: key, ChecksumMode: "ENABLED" }));
            const bytes = await bodyBytes(got);
            check(sha256(bytes) === sha256(data), `${key}: downloaded bytes differ`);
            check(got.ETag === md5Etag(data), `${key}: GET ETag ${got.ETag}`);
            if (trailer && NO_FLEXIBLE_CHECKSUMS) {
                check(got.ChecksumCRC32 === undefined || got.ChecksumCRC32 === crc32b64(data), `${key}: GetObject ChecksumCRC32 ${got.ChecksumCRC32}`);
                log(`${key}: a trailer's CRC32 toward ${DIALECT} is verified, not kept: checksum mode reports ${got.ChecksumCRC32 ?? "none"}`);
            } else {
                check(got.ChecksumCRC32 === crc32b64(data), `${key}: GetObject ChecksumCRC32 ${got.ChecksumCRC32}, expected ${crc32b64(data)}`);
            }
        }
        log("GetObject with ChecksumMode ENABLED: identical bytes, the stored CRC32 returned and validated by the SDK");

        const head = await c.send(new HeadObjectCommand({ Bucket: BUCKET, Key: `${p}small.txt` }));
        check(head.ContentLength === body.length && head.ContentType === "text/plain" && head.Metadata?.color === "green", `HeadObject: ${JSON.stringify({ l: head.ContentLength, t: head.ContentType, m: head.Metadata })}`);
        const ranged = await bodyBytes(await c.send(new GetObjectCommand({ Bucket: BUCKET, Key: `${p}stream.bin`, Range: "bytes=1048570-1048585" })));
        check(ranged.equals(big.subarray(1048570, 1048586)), "ranged GET returned other bytes");
        log("HeadObject (length, type, metadata) and a ranged GET");
        await expectError(() => c.send(new HeadObjectCommand({ Bucket: BUCKET, Key: `${p}missing` })), { code: "NotFound", status: 404, what: "HeadObject of a missing key" });
        await expectError(() => c.send(new GetObjectCommand({ Bucket: BUCKET, Key: `${p}missing` })), { code: "NoSuchKey", status: 404, what: "GetObject of a missing key" });
    } finally {
        await deletePrefix(c, p);
    }
});

workflow("multipart-upload-20MiB-and-unknown-length", async () => {
    const c = client();
    const seen = recordRequests(c);
    const p = `${PREFIX}mpu/`;
    try {
        const data = randomBytes(20 * MiB);
        const up = new Upload({ client: c, params: { Bucket: BUCKET, Key: `${p}twenty.bin`, Body: data }, partSize: 5 * MiB, queueSize: 2 });
        const r = await up.done();
        const parts = seen.filter((s) => s.method === "PUT" && s.query.partNumber !== undefined);
        check(parts.length === 4, `expected 4 UploadPart requests, saw ${parts.length}`);
        check(parts.every((s) => s.headers["x-amz-checksum-crc32"] || s.headers["x-amz-trailer"] === "x-amz-checksum-crc32"), "an UploadPart was sent without a CRC32");
        check(/^"[0-9a-f]{32}-4"$/.test(r.ETag), `multipart ETag ${r.ETag} is not "<md5>-4"`);
        const got = await bodyBytes(await c.send(new GetObjectCommand({ Bucket: BUCKET, Key: `${p}twenty.bin` })));
        check(got.length === data.length && sha256(got) === sha256(data), "the 20 MiB object came back different");
        log(`Upload of a 20 MiB Buffer: 4 parts with CRC32, ETag ${r.ETag}, downloaded identical`);

        // A stream of unknown length (no ContentLength): lib-storage buffers it into parts.
        const chunks = [];
        for (let i = 0; i < 14; i++) chunks.push(randomBytes(MiB / 2));
        const all = Buffer.concat(chunks);
        const before = seen.length;
        const up2 = new Upload({ client: c, params: { Bucket: BUCKET, Key: `${p}unknown-length.bin`, Body: Readable.from(chunks) }, partSize: 5 * MiB });
        const r2 = await up2.done();
        const parts2 = seen.slice(before).filter((s) => s.method === "PUT" && s.query.partNumber !== undefined);
        check(parts2.length === 2, `a 7 MiB stream in 5 MiB parts should be 2 parts, saw ${parts2.length}`);
        const got2 = await bodyBytes(await c.send(new GetObjectCommand({ Bucket: BUCKET, Key: `${p}unknown-length.bin` })));
        check(sha256(got2) === sha256(all), "the unknown-length upload came back different");
        log(`Upload of a 7 MiB stream of unknown length: 2 parts, ETag ${r2.ETag}, downloaded identical`);

        // A small stream of unknown length becomes a single PutObject.
        const small = Buffer.from("short stream\n");
        await new Upload({ client: c, params: { Bucket: BUCKET, Key: `${p}short.txt`, Body: Readable.from([small]) } }).done();
        check((await bodyBytes(await c.send(new GetObjectCommand({ Bucket: BUCKET, Key: `${p}short.txt` })))).equals(small), "short stream differs");
        log("Upload of a short stream of unknown length (one PutObject)");
    } finally {
        await deletePrefix(c, p);
    }
});

workflow("presigned-put-get", async () => {
    const p = `${PREFIX}presign/`;
    const c = client();
    const body = Buffer.from(`presigned upload ${RUN}\n`);
    try {
        // (1) The default client bakes the CRC32 of an empty body into a presigned PUT URL
        // (x-amz-checksum-crc32=AAAAAA==). Uploading any other body must fail with BadDigest,
        // as AWS does, and store nothing.
        const url = await getSignedUrl(c, new PutObjectCommand({ Bucket: BUCKET, Key: `${p}default.txt` }), { expiresIn: 300 });
        const q = new URL(url).searchParams;
        check(q.get("X-Amz-Algorithm") === "AWS4-HMAC-SHA256", `not a SigV4 URL: ${url}`);
        if (q.get("x-amz-checksum-crc32") !== "AAAAAA==") {
            log(`this SDK version puts no x-amz-checksum-crc32=AAAAAA== in presigned PUT URLs (query: ${[...q.keys()].join(",")})`);
        } else {
            const r = await fetch(url, { method: "PUT", body });
            const text = await r.text();
            check(r.status === 400 && text.includes("<Code>BadDigest</Code>"), `the default presigned PUT URL: expected 400 BadDigest, got ${r.status}: ${text.slice(0, 300)}`);
            await expectError(() => c.send(new HeadObjectCommand({ Bucket: BUCKET, Key: `${p}default.txt` })), { code: "NotFound", status: 404, what: "HeadObject after the refused presigned PUT (nothing stored)" });
            log("default client: the URL carries x-amz-checksum-crc32=AAAAAA== and the PUT gets 400 BadDigest, nothing stored");
        }

        // (2) The setting that avoids it: checksums only where an operation requires one.
        const plain = client({ requestChecksumCalculation: "WHEN_REQUIRED" });
        const url2 = await getSignedUrl(plain, new PutObjectCommand({ Bucket: BUCKET, Key: `${p}when-required.txt`, ContentType: "text/plain" }), { expiresIn: 300 });
        check(!/x-amz-checksum-/i.test(url2), `requestChecksumCalculation WHEN_REQUIRED still presigned a checksum: ${url2}`);
        const r2 = await fetch(url2, { method: "PUT", body, headers: { "content-type": "text/plain" } });
        check(r2.status === 200, `presigned PUT (WHEN_REQUIRED): HTTP ${r2.status}: ${(await r2.text()).slice(0, 300)}`);
        check(r2.headers.get("etag") === md5Etag(body), `presigned PUT ETag ${r2.headers.get("etag")}`);
        log("requestChecksumCalculation: \"WHEN_REQUIRED\": no checksum in the URL, the presigned PUT stores the object (200, ETag = MD5)");

        // (3) Presigned GET, and a GET of a URL whose key was changed.
        const get = await getSignedUrl(c, new GetObjectCommand({ Bucket: BUCKET, Key: `${p}when-required.txt` }), { expiresIn: 300 });
        const g = await fetch(get);
        const got = Buffer.from(await g.arrayBuffer());
        check(g.status === 200 && got.equals(body), `presigned GET: HTTP ${g.status}, ${got.length} bytes`);
        check(g.headers.get("content-type") === "text/plain", `presigned GET Content-Type ${g.headers.get("content-type")}`);
        const tampered = get.replace("when-required.txt", "when-required.txx");
        const t = await fetch(tampered);
        check(t.status === 403, `a presigned GET URL with another key: expected 403, got ${t.status}`);
        log("presigned GET returns the bytes and the type; a URL with another key gets 403");
    } finally {
        await deletePrefix(c, p);
    }
});

workflow("list-objects-v2", async () => {
    const c = client();
    const p = `${PREFIX}list/`;
    const keys = [];
    for (let i = 0; i < 23; i++) keys.push(`${p}flat/k${String(i).padStart(3, "0")}`);
    keys.push(`${p}dir/a.txt`, `${p}dir/sub/b.txt`, `${p}with space.txt`, `${p}plus+sign.txt`, `${p}unicode-é-日本.txt`, `${p}tilde~%25.txt`);
    try {
        await Promise.all(keys.map((Key) => c.send(new PutObjectCommand({ Bucket: BUCKET, Key, Body: Key }))));
        // Every key exactly once, in order, over pages of 7.
        const pages = [];
        const listed = [];
        for await (const page of paginateListObjectsV2({ client: c, pageSize: 7 }, { Bucket: BUCKET, Prefix: p })) {
            pages.push(page.KeyCount);
            for (const o of page.Contents ?? []) listed.push(o.Key);
        }
        const want = [...keys].sort((a, b) => (Buffer.from(a) < Buffer.from(b) ? -1 : 1));
        check(JSON.stringify(listed) === JSON.stringify(want), `paged listing differs:\n got ${JSON.stringify(listed)}\nwant ${JSON.stringify(want)}`);
        check(JSON.stringify(pages) === JSON.stringify([7, 7, 7, 7, 1]), `page sizes ${pages}`);
        log(`paginator, 7 per page: pages ${pages}, every key once and in order (spaces, +, unicode, ~ and %25 in keys)`);

        const d = await c.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: p, Delimiter: "/" }));
        const prefixes = (d.CommonPrefixes ?? []).map((x) => x.Prefix).sort();
        const top = (d.Contents ?? []).map((o) => o.Key).sort();
        check(JSON.stringify(prefixes) === JSON.stringify([`${p}dir/`, `${p}flat/`]), `CommonPrefixes ${prefixes}`);
        check(top.length === 4, `top-level objects ${top}`);
        const first = d.Contents.find((o) => o.Key === `${p}with space.txt`);
        check(first.Size === Buffer.byteLength(first.Key), `Size in the listing: ${JSON.stringify(first)}`);
        // The embedded local provider (s3s-fs) omits ETags in listings; where one is given it must be the MD5.
        check(first.ETag === undefined || first.ETag === md5Etag(Buffer.from(first.Key)), `ETag in the listing: ${JSON.stringify(first)}`);
        log(`Delimiter '/': 2 CommonPrefixes and 4 objects, with Size${first.ETag ? " and ETag" : " (no ETag: the upstream lists none)"}`);

        const after = await c.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: `${p}flat/`, StartAfter: `${p}flat/k020` }));
        check(JSON.stringify((after.Contents ?? []).map((o) => o.Key)) === JSON.stringify([`${p}flat/k021`, `${p}flat/k022`]), "StartAfter");
        log("StartAfter");
    } finally {
        await deletePrefix(c, p);
    }
});

workflow("copy-object", async () => {
    const c = client();
    const p = `${PREFIX}copy/`;
    const src = `${p}source file+1.txt`;
    const body = Buffer.from(`copy me ${RUN}\n`);
    try {
        await c.send(new PutObjectCommand({ Bucket: BUCKET, Key: src, Body: body, ContentType: "text/plain", Metadata: { origin: "js" } }));
        // The documented form: bucket, a slash, then the key URL-encoded.
        const r = await c.send(new CopyObjectCommand({ Bucket: BUCKET, Key: `${p}copy-a.txt`, CopySource: `${BUCKET}/${encodeURIComponent(src)}` }));
        check(r.CopyObjectResult?.ETag === md5Etag(body), `CopyObject ETag ${r.CopyObjectResult?.ETag}`);
        const h = await c.send(new HeadObjectCommand({ Bucket: BUCKET, Key: `${p}copy-a.txt` }));
        check(h.Metadata?.origin === "js" && h.ContentType === "text/plain", `COPY directive lost metadata: ${JSON.stringify(h.Metadata)} ${h.ContentType}`);
        check((await bodyBytes(await c.send(new GetObjectCommand({ Bucket: BUCKET, Key: `${p}copy-a.txt` })))).equals(body), "copy has other bytes");
        log("CopySource `bucket/${encodeURIComponent(key)}`: same bytes, ETag and metadata");

        const r2 = await c.send(new CopyObjectCommand({ Bucket: BUCKET, Key: `${p}copy-b.txt`, CopySource: `${BUCKET}/${encodeURIComponent(src)}`, MetadataDirective: "REPLACE", Metadata: { origin: "replaced" }, ContentType: "application/x-test" }));
        check(r2.CopyObjectResult?.ETag === md5Etag(body), "REPLACE copy ETag");
        const h2 = await c.send(new HeadObjectCommand({ Bucket: BUCKET, Key: `${p}copy-b.txt` }));
        check(h2.Metadata?.origin === "replaced" && h2.ContentType === "application/x-test", `REPLACE directive: ${JSON.stringify(h2.Metadata)} ${h2.ContentType}`);
        log("MetadataDirective REPLACE");
        await expectError(() => c.send(new CopyObjectCommand({ Bucket: BUCKET, Key: `${p}copy-c.txt`, CopySource: `${BUCKET}/${encodeURIComponent(`${p}missing`)}` })), { code: "NoSuchKey", status: 404, what: "CopyObject from a missing key" });
    } finally {
        await deletePrefix(c, p);
    }
});

// Issue #15: `CopySource: encodeURIComponent(bucket + "/" + key)`, a common JS idiom, encodes the
// separating slash too. The gateway decodes x-amz-copy-source first and then splits at the first
// slash, so it is the same copy as the documented form.
workflow("copy-object-encoded-slash", async () => {
    const c = client();
    const p = `${PREFIX}copy-enc/`;
    const src = `${p}dir/source file+1.txt`;
    const body = Buffer.from(`copy me too ${RUN}\n`);
    try {
        await c.send(new PutObjectCommand({ Bucket: BUCKET, Key: src, Body: body }));
        // The common JS idiom: the separating slash is encoded too (%2F).
        const cmd = new CopyObjectCommand({ Bucket: BUCKET, Key: `${p}copy.txt`, CopySource: encodeURIComponent(`${BUCKET}/${src}`) });
        const seen = recordRequests(c);
        const r = await c.send(cmd);
        const sent = seen.at(-1).headers["x-amz-copy-source"];
        check(sent === encodeURIComponent(`${BUCKET}/${src}`) && sent.includes("%2F"), `the SDK sent x-amz-copy-source: ${sent}`);
        check(r.CopyObjectResult?.ETag === md5Etag(body), `CopyObject ETag ${r.CopyObjectResult?.ETag}`);
        check((await bodyBytes(await c.send(new GetObjectCommand({ Bucket: BUCKET, Key: `${p}copy.txt` })))).equals(body), "copy has other bytes");
        log("CopySource encodeURIComponent(`bucket/key`) (slash encoded as %2F): copied, same bytes and ETag");
    } finally {
        await deletePrefix(c, p);
    }
});

workflow("delete-objects", async () => {
    const c = client();
    const p = `${PREFIX}delete/`;
    const keys = Array.from({ length: 12 }, (_, i) => `${p}obj ${i}.txt`);
    try {
        await Promise.all(keys.map((Key) => c.send(new PutObjectCommand({ Bucket: BUCKET, Key, Body: Key }))));
        const seen = recordRequests(c);
        const r = await c.send(new DeleteObjectsCommand({ Bucket: BUCKET, Delete: { Objects: [...keys.slice(0, 8), `${p}never-existed`].map((Key) => ({ Key })) } }));
        const sent = seen.at(-1).headers;
        check(Object.keys(sent).some((h) => h.startsWith("x-amz-checksum-") || h === "content-md5"), `DeleteObjects was sent without a checksum: ${Object.keys(sent)}`);
        const deleted = (r.Deleted ?? []).map((d) => d.Key).sort();
        check(JSON.stringify(deleted) === JSON.stringify([...keys.slice(0, 8), `${p}never-existed`].sort()), `Deleted ${JSON.stringify(deleted)}`);
        check(!(r.Errors ?? []).length, `Errors ${JSON.stringify(r.Errors)}`);
        log(`DeleteObjects (verbose, with ${Object.keys(sent).find((h) => h.startsWith("x-amz-checksum-")) ?? "content-md5"}): 9 keys reported, one of them never existed`);
        const left = await listKeys(c, p);
        check(JSON.stringify(left.sort()) === JSON.stringify(keys.slice(8).sort()), `left after delete: ${left}`);
        const q = await c.send(new DeleteObjectsCommand({ Bucket: BUCKET, Delete: { Objects: keys.slice(8).map((Key) => ({ Key })), Quiet: true } }));
        // Not asserted: that quiet mode omits <Deleted>. The embedded local provider (s3s-fs)
        // lists deleted keys even in quiet mode and s3ferry relays its answer (as in aws_cli.sh).
        check(!(q.Errors ?? []).length, `quiet mode reported errors: ${JSON.stringify(q.Errors)}`);
        check((await listKeys(c, p)).length === 0, "objects left after quiet DeleteObjects");
        log("quiet mode: no errors, nothing left");
        await c.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: `${p}never-existed` }));
        log("DeleteObject of a missing key: 204");
    } finally {
        await deletePrefix(c, p);
    }
});

// ---------------------------------------------------------------------------------------
async function main(argv) {
    const names = WORKFLOWS.map(([n]) => n);
    if (argv.length === 1 && argv[0] === "--list") {
        console.log(names.join("\n"));
        return 0;
    }
    const wanted = argv.length ? argv : names;
    const unknown = wanted.filter((w) => !names.includes(w));
    if (unknown.length) {
        console.error(`unknown workflow(s): ${unknown}; known: ${names}`);
        return 2;
    }
    console.log(`@aws-sdk/client-s3 ${SDK_VERSION} on node ${process.version} against ${EP}, bucket ${BUCKET}, prefix ${PREFIX}`);
    for (const [name, fn] of WORKFLOWS) {
        if (!wanted.includes(name)) continue;
        const t0 = Date.now();
        try {
            await fn();
        } catch (e) {
            console.log(e.stack ?? e);
            console.log(`FAIL js-sdk ${name}: ${e.name}: ${e.message}`);
            return 1;
        }
        console.log(`PASS js-sdk ${name} (${((Date.now() - t0) / 1000).toFixed(1)}s)`);
    }
    return 0;
}

process.exitCode = await main(process.argv.slice(2));
