#!/usr/bin/env bash
# aws cli workflows for the s3ferry conformance suite.
#
#   bash conformance/aws_cli.sh list        # workflow names, in the order run.sh runs them
#   bash conformance/aws_cli.sh NAME        # run one workflow (exit 0 = pass)
#
# Reads S3_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION,
# CONF_AWS_BUCKET (a bucket that does not exist yet: `mb` creates it, `rb` removes it),
# CONF_RUN_ID, CONF_SCRATCH and CONF_GATEWAY_DIR (the directory of the gateway's config,
# whose ./data/<provider> holds the local providers' buckets). run.sh sets them all.
# The workflows between `mb` and `rb` use the bucket `mb` made, so run them in order.
# AWS_CLI_BIN picks the cli (default `aws` from PATH; run.sh passes Debian's v2 as /usr/bin/aws).
# CONF_AWS_STANDIN=1 says the bucket is routed to a provider stand-in, not to the local provider.
set -euo pipefail

WORKFLOWS=(mb cp-small cp-multipart cp-checksums ls sync head-object list-objects-v2-pagination
           copy-object delete-objects presign rm-recursive rb list-buckets photos-renamed-bucket
           media-lazy-migration)

if [[ "${1:-}" == list ]]; then printf '%s\n' "${WORKFLOWS[@]}"; exit 0; fi

: "${S3_ENDPOINT:?set S3_ENDPOINT (run.sh does)}"
: "${AWS_ACCESS_KEY_ID:?}" "${AWS_SECRET_ACCESS_KEY:?}" "${AWS_DEFAULT_REGION:?}"
RUN="${CONF_RUN_ID:-$RANDOM$RANDOM}"
B="${CONF_AWS_BUCKET:-conf-awscli-$RUN}"
SCRATCH_ROOT="${CONF_SCRATCH:-${TMPDIR:-/tmp}}"
export AWS_PAGER=""

WF="${1:?usage: aws_cli.sh list|NAME}"
S="$(mktemp -d "$SCRATCH_ROOT/aws-$WF.XXXXXX")"
cd "$S"

awsc() {
    echo "+ aws $*" >&2
    local extra=()
    # Progress lines are joined with \r: keep them out of the output the checks read.
    if [[ "${1:-}" == s3 && " cp sync mv " == *" ${2:-} "* ]]; then extra=(--no-progress); fi
    "${AWS_CLI_BIN:-aws}" --endpoint-url "$S3_ENDPOINT" --cli-connect-timeout 5 --cli-read-timeout 60 "$@" ${extra[@]+"${extra[@]}"}
}
fail() { echo "CHECK FAILED [$WF]: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }
# jget EXPR < json : evaluates a python expression on the parsed JSON `d`, prints the result.
jget() { python3 -c 'import json,sys; t=sys.stdin.read(); d=json.loads(t) if t.strip() else {}; r=eval(sys.argv[1]); print(r if isinstance(r,str) else json.dumps(r, sort_keys=True))' "$1"; }
md5() { md5sum "$1" | cut -d' ' -f1; }
same_file() {  # same_file EXPECTED ACTUAL WHAT
    cmp -s "$1" "$2" || fail "$3: downloaded content differs from what was uploaded ($(stat -c %s "$1") vs $(stat -c %s "$2" 2>/dev/null || echo missing) bytes)"
    ok "$3: content identical ($(stat -c %s "$1") bytes)"
}
expect_fail() {  # expect_fail PATTERN CMD... : CMD must fail and its stderr match PATTERN
    local pat="$1"; shift
    if "$@" >out.expect 2>err.expect; then
        fail "expected '$*' to fail (with $pat), it succeeded: $(head -c 300 out.expect)"
    fi
    grep -Eq "$pat" err.expect || fail "'$*' failed, but not with /$pat/: $(head -c 500 err.expect)"
    ok "failed as expected with /$pat/"
}

wf_mb() {
    local out
    out="$(awsc s3 mb "s3://$B")"
    echo "$out"
    [[ "$out" == *"make_bucket: $B"* ]] || fail "s3 mb did not report make_bucket: $out"
    awsc s3api head-bucket --bucket "$B" || fail "head-bucket of the new bucket failed"
    ok "head-bucket $B"
    awsc s3 ls >buckets.txt
    grep -Eq " $B\$" buckets.txt || fail "s3 ls does not list the new bucket $B: $(cat buckets.txt)"
    ok "s3 ls lists $B"
    # The '*' route keeps the client's bucket name at the local provider.
    if [[ -n "${CONF_GATEWAY_DIR:-}" && "${CONF_AWS_STANDIN:-0}" != 1 ]]; then
        [[ -d "$CONF_GATEWAY_DIR/data/local/$B" ]] || fail "the '*' route should create $B at the local provider ($CONF_GATEWAY_DIR/data/local/$B is missing)"
        ok "bucket directory exists at the local provider"
    fi
}

wf_cp_small() {
    printf 'hello from the s3ferry conformance suite, run %s\n' "$RUN" >small.txt
    head -c 3001 /dev/urandom >small.bin
    : >empty.txt
    for f in small.txt small.bin empty.txt; do
        awsc s3 cp "$f" "s3://$B/cp/$f"
        awsc s3 cp "s3://$B/cp/$f" "down-$f"
        same_file "$f" "down-$f" "s3 cp $f"
    done
    # The 0-byte upload must not leave the connection in a bad state: one more request in
    # the same process right after it (an upload is followed by a download in one cli call).
    awsc s3 cp "s3://$B/cp/small.txt" - >stdout.txt
    same_file small.txt stdout.txt "s3 cp to stdout"
    awsc s3 cp - "s3://$B/cp/from-stdin.bin" <small.bin
    awsc s3 cp "s3://$B/cp/from-stdin.bin" down-stdin.bin
    same_file small.bin down-stdin.bin "s3 cp from stdin"
}

wf_cp_multipart() {
    head -c $((20 * 1024 * 1024)) /dev/urandom >big.bin
    awsc s3 cp big.bin "s3://$B/mp/big.bin"
    awsc s3api head-object --bucket "$B" --key mp/big.bin >head.json
    cat head.json
    [[ "$(jget 'd["ContentLength"]' <head.json)" == 20971520 ]] || fail "ContentLength is not 20971520"
    # 20 MiB with the cli's 8 MiB threshold/chunk size = a 3-part multipart upload.
    jget 'd["ETag"]' <head.json | grep -Eq '^"[0-9a-f]{32}-3"$' \
        || fail "ETag $(jget 'd["ETag"]' <head.json) is not a 3-part multipart ETag"
    ok "multipart ETag $(jget 'd["ETag"]' <head.json)"
    # The download runs ranged GETs in parallel for an object this size.
    awsc s3 cp "s3://$B/mp/big.bin" big.down
    same_file big.bin big.down "20 MiB multipart cp"
}

# Flexible checksums chosen on the command line (aws cli v1 and v2 send none by default for
# `s3 cp` unless told; v2 from 2.23 sends CRC64NVME, which Debian's 2.9 does not know).
wf_cp_checksums() {
    head -c 70001 /dev/urandom >one.bin
    head -c $((12 * 1024 * 1024)) /dev/urandom >parts.bin
    local alg want got cp_checksums=1
    # `s3 cp --checksum-algorithm` came with aws cli 1.29 / 2.13; older ones have only s3api's.
    "${AWS_CLI_BIN:-aws}" s3 cp help 2>/dev/null | grep -q -- '--checksum-algorithm' || cp_checksums=0
    for alg in CRC32 SHA256; do
        if ((cp_checksums)); then
            awsc s3 cp --checksum-algorithm "$alg" one.bin "s3://$B/ck/one-$alg.bin"
        else
            awsc s3api put-object --checksum-algorithm "$alg" --body one.bin --bucket "$B" --key "ck/one-$alg.bin" >/dev/null
        fi
        awsc s3api head-object --bucket "$B" --key "ck/one-$alg.bin" --checksum-mode ENABLED >head.json
        want="$(python3 -c 'import sys,zlib,hashlib,base64
d=open(sys.argv[2],"rb").read()
r=zlib.crc32(d).to_bytes(4,"big") if sys.argv[1]=="CRC32" else hashlib.sha256(d).digest()
print(base64.b64encode(r).decode())' "$alg" one.bin)"
        got="$(jget "d.get('Checksum$alg', '')" <head.json)"
        [[ "$got" == "$want" ]] || fail "s3 cp --checksum-algorithm $alg: head-object --checksum-mode ENABLED gives '$got', expected $want"
        ok "upload with checksum algorithm $alg: the stored $alg ($got) comes back with --checksum-mode ENABLED"
        awsc s3 cp "s3://$B/ck/one-$alg.bin" "one-$alg.down"
        same_file one.bin "one-$alg.down" "download of the $alg upload"
    done
    # A multipart upload with a CRC32 on every part.
    if ((cp_checksums)); then
        awsc s3 cp --checksum-algorithm CRC32 parts.bin "s3://$B/ck/parts.bin"
        awsc s3api head-object --bucket "$B" --key ck/parts.bin >head.json
        jget 'd["ETag"]' <head.json | grep -Eq '^"[0-9a-f]{32}-2"$' || fail "12 MiB with CRC32 parts: ETag $(jget 'd["ETag"]' <head.json) is not a 2-part ETag"
        awsc s3 cp "s3://$B/ck/parts.bin" parts.down
        same_file parts.bin parts.down "12 MiB multipart cp with CRC32 parts"
    else
        echo "SKIP multipart cp with CRC32 parts: this cli's s3 cp has no --checksum-algorithm ($("${AWS_CLI_BIN:-aws}" --version 2>&1 | cut -d' ' -f1))"
    fi
    # A wrong checksum is refused and stores nothing.
    expect_fail '(BadDigest|InvalidRequest|XAmzContentChecksumMismatch)' \
        awsc s3api put-object --bucket "$B" --key ck/bad.bin --body one.bin --checksum-crc32 AAAAAA==
    expect_fail '(404|Not Found)' awsc s3api head-object --bucket "$B" --key ck/bad.bin
    ok "put-object with a wrong --checksum-crc32 is refused and stores nothing"
}

wf_ls() {
    printf 'hello' >a.txt
    printf 'nested' >b.txt
    awsc s3 cp a.txt "s3://$B/ls/a.txt"
    awsc s3 cp b.txt "s3://$B/ls/sub/b.txt"
    awsc s3 ls >buckets.txt
    grep -Eq " $B\$" buckets.txt || fail "s3 ls does not list $B"
    awsc s3 ls "s3://$B/ls/" >ls.txt
    cat ls.txt
    grep -Eq '^ +PRE sub/$' ls.txt || fail "s3 ls s3://$B/ls/ has no 'PRE sub/' line"
    grep -Eq '^[0-9-]{10} [0-9:]{8} +5 a\.txt$' ls.txt || fail "s3 ls s3://$B/ls/ has no '5 a.txt' line"
    [[ "$(wc -l <ls.txt)" -eq 2 ]] || fail "s3 ls s3://$B/ls/ should print exactly 2 lines"
    awsc s3 ls "s3://$B/ls/" --recursive --summarize >lsr.txt
    cat lsr.txt
    grep -Eq ' 5 ls/a\.txt$' lsr.txt || fail "recursive ls misses ls/a.txt"
    grep -Eq ' 6 ls/sub/b\.txt$' lsr.txt || fail "recursive ls misses ls/sub/b.txt"
    grep -q 'Total Objects: 2' lsr.txt || fail "recursive ls should count 2 objects"
    grep -q 'Total Size: 11' lsr.txt || fail "recursive ls should total 11 bytes"
    ok "s3 ls (buckets, prefix, recursive)"
}

wf_sync() {
    mkdir -p src/a/b src/deep/x/y
    printf 'top\n' >src/top.txt
    printf 'c\n' >src/a/b/c.txt
    printf 'with a space\n' >"src/a/with space.txt"
    printf 'plus\n' >"src/a/plus+sign.txt"
    head -c 100000 /dev/urandom >src/deep/x/y/z.bin
    # sync re-uploads a file whose mtime is after the object's LastModified. S3 (and moto) list
    # LastModified in whole seconds, so a file written in the same second as its upload would
    # look newer: date the files a few seconds back, as files that exist before a sync are.
    find src -type f -exec touch -d "@$(($(date +%s) - 5))" {} +
    awsc s3 sync src "s3://$B/tree/" | tee sync1.txt
    [[ "$(grep -c '^upload:' sync1.txt)" -eq 5 ]] || fail "first sync should upload 5 files"
    awsc s3api list-objects-v2 --bucket "$B" --prefix tree/ >list.json
    jget '"\n".join(sorted(o["Key"] for o in d.get("Contents", [])))' <list.json >keys.txt
    printf '%s\n' "tree/a/b/c.txt" "tree/a/plus+sign.txt" "tree/a/with space.txt" \
        "tree/deep/x/y/z.bin" "tree/top.txt" | sort >want.txt
    diff want.txt keys.txt || fail "keys after sync differ from the local tree (see diff above)"
    ok "sync up: 5 keys as expected"
    awsc s3 sync "s3://$B/tree/" dst | tee sync2.txt
    diff -r src dst || fail "sync back down differs from the source tree"
    ok "sync down: identical tree"
    awsc s3 sync src "s3://$B/tree/" | tee sync3.txt
    if grep -q '^upload:' sync3.txt; then fail "a repeated sync re-uploaded unchanged files"; fi
    ok "repeated sync uploads nothing"
    printf 'changed and longer\n' >>src/a/b/c.txt
    rm src/top.txt
    awsc s3 sync --delete src "s3://$B/tree/" | tee sync4.txt
    grep -q "^upload: src/a/b/c.txt to s3://$B/tree/a/b/c.txt" sync4.txt || fail "changed file not uploaded"
    grep -q "^delete: s3://$B/tree/top.txt" sync4.txt || fail "sync --delete did not delete tree/top.txt"
    [[ "$(wc -l <sync4.txt)" -eq 2 ]] || fail "sync --delete should do exactly 2 things"
    awsc s3 cp "s3://$B/tree/a/b/c.txt" c.down
    same_file src/a/b/c.txt c.down "changed file after sync"
    if awsc s3api head-object --bucket "$B" --key tree/top.txt 2>/dev/null; then
        fail "tree/top.txt still exists after sync --delete"
    fi
    ok "sync --delete"
}

wf_head_object() {
    printf 'metadata test body\n' >meta.txt
    awsc s3api put-object --bucket "$B" --key head/meta.txt --body meta.txt \
        --content-type text/plain --cache-control max-age=60 \
        --metadata color=blue,owner=conformance >put.json
    cat put.json
    awsc s3api head-object --bucket "$B" --key head/meta.txt >head.json
    cat head.json
    [[ "$(jget 'd["ContentLength"]' <head.json)" == "$(stat -c %s meta.txt)" ]] || fail "ContentLength wrong"
    [[ "$(jget 'd["ETag"]' <head.json)" == "\"$(md5 meta.txt)\"" ]] || fail "ETag is not the MD5 of the body ($(md5 meta.txt))"
    [[ "$(jget 'd["ETag"]' <head.json)" == "$(jget 'd["ETag"]' <put.json)" ]] || fail "HEAD ETag differs from the PUT ETag"
    [[ "$(jget 'd.get("ContentType")' <head.json)" == text/plain ]] || fail "ContentType not kept"
    [[ "$(jget 'd.get("CacheControl")' <head.json)" == max-age=60 ]] || fail "CacheControl not kept"
    [[ "$(jget 'd.get("Metadata")' <head.json)" == '{"color": "blue", "owner": "conformance"}' ]] || fail "user metadata not kept"
    jget 'd.get("LastModified") or ""' <head.json | grep -Eq '20[0-9]{2}' || fail "no LastModified"
    ok "head-object: length, ETag, content type, cache control, metadata, last modified"
    expect_fail '(404|Not Found)' awsc s3api head-object --bucket "$B" --key head/missing
}

wf_list_objects_v2_pagination() {
    mkdir pg
    for i in $(seq -w 1 25); do printf '%s' "$i" >"pg/obj-$i.txt"; done
    awsc s3 cp --recursive --quiet pg "s3://$B/pg/"
    local token="" page=0 all=keys.txt
    : >"$all"
    while :; do
        page=$((page + 1))
        ((page <= 10)) || fail "pagination did not end after 10 pages"
        if [[ -z "$token" ]]; then
            awsc s3api list-objects-v2 --bucket "$B" --prefix pg/ --max-items 10 --page-size 7 >page.json
        else
            awsc s3api list-objects-v2 --bucket "$B" --prefix pg/ --max-items 10 --page-size 7 \
                --starting-token "$token" >page.json
        fi
        local n
        n="$(jget 'len(d.get("Contents", []))' <page.json)"
        token="$(jget 'd.get("NextToken", "")' <page.json)"
        echo "page $page: $n keys, next token: ${token:-none}"
        jget '"\n".join(o["Key"] for o in d.get("Contents", []))' <page.json >>"$all"
        if [[ -n "$token" ]]; then
            [[ "$n" -eq 10 ]] || fail "page $page has $n keys, --max-items 10 wants 10"
        else
            break
        fi
    done
    [[ "$page" -eq 3 ]] || fail "25 keys at 10 per page should take 3 pages, took $page"
    for i in $(seq -w 1 25); do echo "pg/obj-$i.txt"; done >want.txt
    diff want.txt "$all" || fail "paginated keys differ from the 25 uploaded (missing, repeated or out of order)"
    ok "list-objects-v2 --max-items 10 --page-size 7: every key once, in order"
    awsc s3api list-objects-v2 --bucket "$B" --prefix pg/ --max-keys 7 --no-paginate >one.json
    [[ "$(jget 'd["KeyCount"]' <one.json)" == 7 ]] || fail "KeyCount of a MaxKeys=7 page is not 7"
    [[ "$(jget 'd["IsTruncated"]' <one.json)" == true ]] || fail "MaxKeys=7 page should be truncated"
    [[ -n "$(jget 'd.get("NextContinuationToken", "")' <one.json)" ]] || fail "no NextContinuationToken"
    ok "single page: KeyCount 7, IsTruncated, NextContinuationToken"
    awsc s3api list-objects-v2 --bucket "$B" --prefix pg/obj-2 --start-after pg/obj-21.txt >sa.json
    [[ "$(jget '[o["Key"] for o in d.get("Contents", [])]' <sa.json)" == '["pg/obj-22.txt", "pg/obj-23.txt", "pg/obj-24.txt", "pg/obj-25.txt"]' ]] \
        || fail "StartAfter listing wrong: $(cat sa.json)"
    ok "start-after"
}

wf_copy_object() {
    printf 'copy me\n' >src.txt
    awsc s3api put-object --bucket "$B" --key "copy/src file.txt" --body src.txt \
        --content-type text/plain --metadata origin=conformance >/dev/null
    awsc s3api copy-object --bucket "$B" --key copy/dst.txt --copy-source "$B/copy/src file.txt" >copy.json
    cat copy.json
    jget 'd["CopyObjectResult"]["ETag"]' <copy.json | grep -q "$(md5 src.txt)" || fail "CopyObjectResult ETag is not the source MD5"
    awsc s3 cp "s3://$B/copy/dst.txt" dst.down
    same_file src.txt dst.down "copy-object (same bucket, source key with a space)"
    awsc s3api head-object --bucket "$B" --key copy/dst.txt >head.json
    [[ "$(jget 'd.get("Metadata")' <head.json)" == '{"origin": "conformance"}' ]] || fail "COPY directive should keep the metadata: $(cat head.json)"
    ok "metadata kept with the default COPY directive"
    awsc s3api copy-object --bucket "$B" --key copy/replaced.txt --copy-source "$B/copy/src file.txt" \
        --metadata-directive REPLACE --metadata fresh=yes --content-type application/json >/dev/null
    awsc s3api head-object --bucket "$B" --key copy/replaced.txt >head2.json
    [[ "$(jget 'd.get("Metadata")' <head2.json)" == '{"fresh": "yes"}' ]] || fail "REPLACE directive metadata wrong: $(cat head2.json)"
    [[ "$(jget 'd.get("ContentType")' <head2.json)" == application/json ]] || fail "REPLACE directive content type wrong"
    ok "metadata replaced with the REPLACE directive"
    # Across buckets of the same provider: from the '*' bucket into 'demo'.
    awsc s3api copy-object --bucket demo --key "conformance-$RUN/copied.txt" --copy-source "$B/copy/src file.txt" >/dev/null
    awsc s3 cp "s3://demo/conformance-$RUN/copied.txt" demo.down
    same_file src.txt demo.down "copy-object into another bucket (demo)"
    awsc s3 rm "s3://demo/conformance-$RUN/copied.txt"
    # The high-level cli copy (server-side).
    awsc s3 cp "s3://$B/copy/dst.txt" "s3://$B/copy/cli-copy.txt"
    awsc s3 cp "s3://$B/copy/cli-copy.txt" cli.down
    same_file src.txt cli.down "s3 cp s3:// s3:// (server-side copy)"
    expect_fail 'NoSuchKey|Not Found|404' awsc s3api copy-object --bucket "$B" --key copy/x --copy-source "$B/copy/does-not-exist"
}

wf_delete_objects() {
    mkdir del
    for i in 1 2 3 4 5; do printf 'x%s' "$i" >"del/$i.txt"; done
    awsc s3 cp --recursive --quiet del "s3://$B/del/"
    awsc s3api delete-objects --bucket "$B" --delete \
        '{"Objects":[{"Key":"del/1.txt"},{"Key":"del/2.txt"},{"Key":"del/3.txt"},{"Key":"del/4.txt"},{"Key":"del/never-existed.txt"}],"Quiet":false}' \
        >del.json
    cat del.json
    [[ "$(jget 'sorted(o["Key"] for o in d.get("Deleted", []))' <del.json)" == '["del/1.txt", "del/2.txt", "del/3.txt", "del/4.txt", "del/never-existed.txt"]' ]] \
        || fail "Deleted should list the 5 requested keys (S3 reports a missing key as deleted)"
    [[ "$(jget 'len(d.get("Errors", []))' <del.json)" == 0 ]] || fail "delete-objects reported errors"
    awsc s3api list-objects-v2 --bucket "$B" --prefix del/ >left.json
    [[ "$(jget '[o["Key"] for o in d.get("Contents", [])]' <left.json)" == '["del/5.txt"]' ]] || fail "only del/5.txt should be left: $(cat left.json)"
    ok "delete-objects (verbose)"
    awsc s3api delete-objects --bucket "$B" --delete '{"Objects":[{"Key":"del/5.txt"}],"Quiet":true}' >q.json
    cat q.json
    # Not asserted: that quiet mode omits <Deleted>. The embedded local provider (s3s-fs) lists
    # deleted keys even in quiet mode and s3ferry relays its answer as it is.
    [[ "$(jget 'len(d.get("Errors", []))' <q.json)" == 0 ]] || fail "Quiet delete reported errors"
    [[ "$(awsc s3api list-objects-v2 --bucket "$B" --prefix del/ | jget 'len(d.get("Contents", []))')" == 0 ]] || fail "del/ not empty"
    ok "delete-objects (quiet)"
}

wf_presign() {
    printf 'presigned content %s\n' "$RUN" >p.txt
    awsc s3 cp p.txt "s3://$B/presign/p file.txt"
    local url code
    url="$(awsc s3 presign "s3://$B/presign/p file.txt" --expires-in 300)"
    echo "default presigned URL: $url"
    curl -sS --max-time 30 -f -o got.txt "$url" || fail "curl of the default presigned URL failed"
    same_file p.txt got.txt "presigned GET (cli default signature)"
    # SigV4 presigning, as configured in ~/.aws/config.
    printf '[default]\ns3 =\n    signature_version = s3v4\n' >aws-config
    url="$(AWS_CONFIG_FILE="$PWD/aws-config" awsc s3 presign "s3://$B/presign/p file.txt" --expires-in 300)"
    echo "SigV4 presigned URL: $url"
    [[ "$url" == *X-Amz-Algorithm=AWS4-HMAC-SHA256* ]] || fail "the s3v4 presigned URL is not SigV4: $url"
    curl -sS --max-time 30 -f -o got4.txt "$url" || fail "curl of the SigV4 presigned URL failed"
    same_file p.txt got4.txt "presigned GET (SigV4)"
    # A URL signed for one key must not open another.
    awsc s3 cp p.txt "s3://$B/presign/other.txt"
    code="$(curl -sS --max-time 30 -o tampered.txt -w '%{http_code}' "${url/p%20file.txt/other.txt}")"
    [[ "$code" == 403 ]] || fail "a presigned URL with a different key should get 403, got $code: $(head -c 300 tampered.txt)"
    ok "tampered presigned URL rejected with 403"
}

wf_rm_recursive() {
    local before n
    before="$(awsc s3api list-objects-v2 --bucket "$B" | jget 'len(d.get("Contents", []))')"
    echo "objects before: $before"
    [[ "$before" -gt 0 ]] || fail "expected objects left by the earlier workflows"
    awsc s3 rm "s3://$B" --recursive | tee rm.txt
    n="$(grep -c '^delete: ' rm.txt || true)"
    [[ "$n" -eq "$before" ]] || fail "s3 rm --recursive deleted $n objects, $before were listed"
    awsc s3api list-objects-v2 --bucket "$B" >left.json
    [[ "$(jget 'len(d.get("Contents", []))' <left.json)" == 0 ]] \
        || fail "bucket not empty after rm --recursive; left: $(jget '[o["Key"] for o in d.get("Contents", [])]' <left.json)"
    [[ -z "$(awsc s3 ls "s3://$B" --recursive)" ]] || fail "s3 ls still shows objects"
    ok "s3 rm --recursive removed all $before objects"
}

wf_rb() {
    awsc s3 rb "s3://$B" | tee rb.txt
    grep -q "remove_bucket: $B" rb.txt || fail "s3 rb did not report remove_bucket"
    expect_fail '(404|Not Found|NoSuchBucket)' awsc s3api head-bucket --bucket "$B"
    awsc s3 ls >buckets.txt
    if grep -Eq " $B\$" buckets.txt; then fail "s3 ls still lists $B"; fi
    ok "removed bucket is gone"
    # A bucket with an object in it is refused without --force, removed with it.
    local b2="$B-nonempty"
    awsc s3 mb "s3://$b2"
    printf 'x' >x.txt
    awsc s3 cp x.txt "s3://$b2/x.txt"
    expect_fail 'BucketNotEmpty' awsc s3 rb "s3://$b2"
    awsc s3 rb --force "s3://$b2"
    expect_fail '(404|Not Found|NoSuchBucket)' awsc s3api head-bucket --bucket "$b2"
    ok "rb refuses a non-empty bucket, rb --force removes it"
}

wf_list_buckets() {
    awsc s3api list-buckets >b.json
    cat b.json
    local names
    names="$(jget '" ".join(sorted(x["Name"] for x in d.get("Buckets", [])))' <b.json)"
    [[ " $names " == *" demo "* ]] || fail "ListBuckets does not show the routed bucket 'demo': $names"
    [[ " $names " == *" photos "* ]] || fail "ListBuckets does not show the routed bucket 'photos': $names"
    [[ " $names " != *" photos-2017 "* ]] || fail "ListBuckets leaks the upstream name 'photos-2017': $names"
    ok "ListBuckets shows demo and photos under their client names"
}

wf_photos_renamed_bucket() {
    local P="s3://photos/conformance-$RUN"
    printf 'a picture, %s\n' "$RUN" >pic.txt
    awsc s3 cp pic.txt "$P/pic.txt"
    awsc s3 cp "$P/pic.txt" pic.down
    same_file pic.txt pic.down "put/get through the renamed bucket"
    awsc s3 ls "$P/" | tee ls.txt
    grep -Eq ' [0-9]+ pic\.txt$' ls.txt || fail "s3 ls $P/ does not list pic.txt"
    awsc s3api list-objects-v2 --bucket photos --prefix "conformance-$RUN/" --no-paginate >list.json
    cat list.json
    [[ "$(jget 'd.get("Name")' <list.json)" == photos ]] || fail "ListObjectsV2 <Name> should be 'photos' (the client's name), got $(jget 'd.get("Name")' <list.json)"
    [[ "$(jget '[o["Key"] for o in d.get("Contents", [])]' <list.json)" == "[\"conformance-$RUN/pic.txt\"]" ]] || fail "listing through photos is wrong"
    ok "listing through the renamed bucket"
    # Multipart through the rename (CreateMultipartUpload/UploadPart/Complete all renamed).
    head -c $((9 * 1024 * 1024)) /dev/urandom >nine.bin
    awsc s3 cp nine.bin "$P/nine.bin"
    awsc s3 cp "$P/nine.bin" nine.down
    same_file nine.bin nine.down "9 MiB multipart through the renamed bucket"
    # Server-side copy inside the renamed bucket: x-amz-copy-source must be renamed too.
    awsc s3api copy-object --bucket photos --key "conformance-$RUN/copy.txt" \
        --copy-source "photos/conformance-$RUN/pic.txt" >/dev/null
    awsc s3 cp "$P/copy.txt" copy.down
    same_file pic.txt copy.down "copy-object inside the renamed bucket"
    # Where it landed: the provider stores the objects under the upstream name.
    if [[ -n "${CONF_GATEWAY_DIR:-}" ]]; then
        local arch="$CONF_GATEWAY_DIR/data/archive"
        [[ -d "$arch/photos-2017" ]] || fail "$arch/photos-2017 does not exist (upstream_bucket not used?)"
        [[ ! -e "$arch/photos" ]] || fail "$arch/photos exists: the client's bucket name reached the provider"
        find "$arch/photos-2017" -name pic.txt | grep -q . || fail "pic.txt not found under $arch/photos-2017"
        ok "stored at the provider under photos-2017"
    fi
    awsc s3 rm --recursive "$P/" | tee rm.txt
    [[ "$(grep -c '^delete: ' rm.txt)" -eq 3 ]] || fail "expected 3 deletions in $P/"
    [[ -z "$(awsc s3 ls "$P/")" ]] || fail "$P/ not empty after rm"
    ok "cleaned up"
}

wf_media_lazy_migration() {
    # config.example.toml routes "media" to the local provider, falling back to the archive
    # provider's bucket "media-2017". Objects placed straight into the old bucket's directory
    # are "the data still on the old provider".
    : "${CONF_GATEWAY_DIR:?}" "${CONF_CONFIG:?}" "${S3FERRY_BIN:?}"
    local old="$CONF_GATEWAY_DIR/data/archive/media-2017/conf-$RUN"
    local new="$CONF_GATEWAY_DIR/data/local/media/conf-$RUN"
    mkdir -p "$old"
    printf 'first\n' >"$old/a.txt"
    printf 'second\n' >"$old/b c.txt"
    printf 'doomed\n' >"$old/gone.txt"
    awsc s3 cp "s3://media/conf-$RUN/a.txt" a.down
    [[ "$(cat a.down)" == first ]] || fail "GET did not fall back to the old provider"
    ok "read falls back to the old provider"
    awsc s3 ls "s3://media/conf-$RUN/" | tee ls.txt
    [[ "$(wc -l <ls.txt)" -eq 3 ]] || fail "the merged listing should show 3 keys"
    awsc s3 rm "s3://media/conf-$RUN/gone.txt"
    expect_fail '404|Not Found|NoSuchKey' awsc s3 cp "s3://media/conf-$RUN/gone.txt" gone.down
    [[ -f "$old/gone.txt" ]] || fail "the old copy should stay (tombstone, not delete)"
    awsc s3 ls "s3://media/conf-$RUN/" | tee ls2.txt
    [[ "$(wc -l <ls2.txt)" -eq 2 ]] || fail "the deleted key is still listed"
    ok "delete leaves a tombstone; the old copy does not come back"
    "$S3FERRY_BIN" migrate --config "$CONF_CONFIG" --bucket media --prefix "conf-$RUN/" --log-format text | tee migrate.txt
    grep -q '^failed: *0' migrate.txt || fail "migrate reported failures"
    [[ -f "$new/a.txt" && -f "$new/b c.txt" && ! -e "$new/gone.txt" ]] || fail "migrate did not leave exactly a.txt and 'b c.txt' in the new provider"
    "$S3FERRY_BIN" check --config "$CONF_CONFIG" --bucket media --prefix "conf-$RUN/" --download --log-format text | tee check.txt \
        || fail "check found differences after migrate"
    grep -q '^OK' check.txt || fail "check did not say OK"
    ok "migrate drained the old bucket and check agrees"
}

fn="wf_${WF//-/_}"
declare -F "$fn" >/dev/null || { echo "unknown workflow: $WF (try: list)" >&2; exit 2; }
"$fn"
echo "PASS aws-cli $WF"
rm -rf "$S"
