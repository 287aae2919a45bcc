#!/usr/bin/env bash
# rclone and s3cmd workflows for the s3ferry conformance suite.
#
#   bash conformance/other_clients.sh rclone
#   bash conformance/other_clients.sh s3cmd-v4
#   bash conformance/other_clients.sh s3cmd-v2
#   bash conformance/other_clients.sh s3fs
#
# Reads S3_ENDPOINT, S3_PORT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION,
# CONF_RUN_ID and CONF_SCRATCH (run.sh sets them). Exit 0 = pass.
set -euo pipefail

: "${S3_ENDPOINT:?set S3_ENDPOINT (run.sh does)}"
: "${AWS_ACCESS_KEY_ID:?}" "${AWS_SECRET_ACCESS_KEY:?}"
PORT="${S3_PORT:-${S3_ENDPOINT##*:}}"
REGION="${AWS_DEFAULT_REGION:-us-east-1}"
RUN="${CONF_RUN_ID:-$RANDOM$RANDOM}"
WF="${1:?usage: other_clients.sh rclone|s3cmd-v4|s3cmd-v2}"
S="$(mktemp -d "${CONF_SCRATCH:-${TMPDIR:-/tmp}}/$WF.XXXXXX")"
cd "$S"

fail() { echo "CHECK FAILED [$WF]: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }

make_tree() {  # make_tree DIR BIG_MIB
    mkdir -p "$1/a/b" "$1/deep/x"
    printf 'top %s\n' "$RUN" >"$1/top.txt"
    printf 'c\n' >"$1/a/b/c.txt"
    printf 'spaced\n' >"$1/a/with space.txt"
    head -c 70000 /dev/urandom >"$1/deep/x/small.bin"
    if [[ "${2:-0}" -gt 0 ]]; then head -c $(($2 * 1024 * 1024)) /dev/urandom >"$1/deep/big.bin"; fi
}

wf_rclone() {
    # aws-sdk-go (inside rclone) refuses to start with AWS_CA_BUNDLE set.
    unset AWS_CA_BUNDLE
    export RCLONE_CONFIG="$S/rclone.conf"
    : >"$RCLONE_CONFIG"
    export RCLONE_CONFIG_GW_TYPE=s3
    export RCLONE_CONFIG_GW_PROVIDER=Other
    export RCLONE_CONFIG_GW_ENDPOINT="$S3_ENDPOINT"
    export RCLONE_CONFIG_GW_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID"
    export RCLONE_CONFIG_GW_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY"
    export RCLONE_CONFIG_GW_REGION="$REGION"
    export RCLONE_CONFIG_GW_FORCE_PATH_STYLE=true
    rc() {
        echo "+ rclone $*" >&2
        rclone --retries 1 --low-level-retries 1 --contimeout 5s --timeout 60s \
            --s3-upload-cutoff 5M --s3-chunk-size 5M "$@"
    }
    local bucket="conf-rclone-$RUN"
    make_tree src 12
    rc mkdir "gw:$bucket"
    rc lsd gw: | tee lsd.txt
    grep -Eq " $bucket\$" lsd.txt || fail "rclone lsd gw: does not list $bucket"
    ok "mkdir (CreateBucket through the '*' route)"
    rc copy src "gw:$bucket/tree"
    rc check src "gw:$bucket/tree" || fail "rclone check found differences (see above)"
    ok "copy up (12 MiB file as a 5 MiB-part multipart upload) + check (sizes and MD5s)"
    rc copy "gw:$bucket/tree" dst
    diff -r src dst || fail "copying back gives a different tree"
    ok "copy back down: identical tree"
    rc cat "gw:$bucket/tree/top.txt" >cat.txt
    cmp -s src/top.txt cat.txt || fail "rclone cat returned other content"
    # lsf -R lists recursively in one go (ListObjects with an empty delimiter).
    rc lsf -R --files-only "gw:$bucket/tree" | sort >lsf.txt
    printf '%s\n' a/b/c.txt "a/with space.txt" deep/big.bin deep/x/small.bin top.txt | sort >want.txt
    diff want.txt lsf.txt || fail "rclone lsf -R lists other files than were copied (see diff above)"
    ok "lsf -R lists exactly the copied files"
    rc purge "gw:$bucket"
    rc lsd gw: >lsd2.txt
    if grep -Eq " $bucket\$" lsd2.txt; then fail "bucket still listed after rclone purge"; fi
    ok "purge removed the objects and the bucket"
}

s3cmd_workflow() {  # s3cmd_workflow v4|v2
    local mode="$1" sig=()
    [[ "$mode" == v2 ]] && sig=(--signature-v2)
    cat >s3cfg <<EOF
[default]
access_key = $AWS_ACCESS_KEY_ID
secret_key = $AWS_SECRET_ACCESS_KEY
host_base = 127.0.0.1:$PORT
host_bucket = 127.0.0.1:$PORT
bucket_location = $REGION
use_https = False
check_ssl_certificate = False
signature_v2 = False
socket_timeout = 60
EOF
    s3c() {
        echo "+ s3cmd $*" >&2
        s3cmd -c "$S/s3cfg" --host="127.0.0.1:$PORT" --host-bucket="127.0.0.1:$PORT" --no-ssl \
            --access_key="$AWS_ACCESS_KEY_ID" --secret_key="$AWS_SECRET_ACCESS_KEY" \
            --region="$REGION" ${sig[@]+"${sig[@]}"} "$@"
    }
    local P="s3://demo/s3cmd-$mode-$RUN"
    printf 'hello via s3cmd %s %s\n' "$mode" "$RUN" >small.txt
    head -c $((12 * 1024 * 1024)) /dev/urandom >big.bin
    s3c put small.txt "$P/small.txt"
    s3c put --multipart-chunk-size-mb=5 big.bin "$P/big.bin"
    s3c ls "$P/" | tee ls.txt
    grep -Eq " $P/small\.txt\$" ls.txt || fail "s3cmd ls misses small.txt"
    grep -Eq " 12582912 +$P/big\.bin\$" ls.txt || fail "s3cmd ls misses big.bin (12582912 bytes)"
    [[ "$(wc -l <ls.txt)" -eq 2 ]] || fail "s3cmd ls should list exactly 2 objects"
    ok "put (single and 5 MiB-part multipart) + ls"
    s3c get --force "$P/small.txt" small.down
    s3c get --force "$P/big.bin" big.down
    cmp -s small.txt small.down || fail "s3cmd get of small.txt: content differs"
    cmp -s big.bin big.down || fail "s3cmd get of big.bin: content differs"
    ok "get: content identical"
    s3c info "$P/small.txt" | tee info.txt
    grep -Eq "File size: +$(stat -c %s small.txt)\$" info.txt || fail "s3cmd info: wrong file size"
    grep -Eq "MD5 sum: +$(md5sum small.txt | cut -d' ' -f1)\$" info.txt || fail "s3cmd info: wrong MD5"
    ok "info (HEAD): size and MD5"
    s3c ls s3:// | tee buckets.txt
    grep -Eq ' s3://demo$' buckets.txt || fail "s3cmd ls s3:// does not list demo"
    s3c del --recursive --force "$P/"
    s3c ls "$P/" >after.txt
    [[ ! -s after.txt ]] || fail "objects left after s3cmd del --recursive: $(cat after.txt)"
    ok "del --recursive"
}

# s3fs-fuse: the bucket (CONF_S3FS_BUCKET, default demo) mounted as a file system; every file
# operation becomes S3 requests (HEAD/ListObjects for stat and readdir, PUT or a multipart upload
# on close, CopyObject with REPLACE for rename and chmod). What lands is checked with boto3.
# CONF_S3FS_DIRS=0: no directories (a provider that cannot hold s3fs's "dir/" folder markers);
# the files then go to the mount's root as "s3fs-<run>-<name>".
# Exit 77 (a skip) when there is no /dev/fuse or the mount does not come up.
S3FS_MNT=""
S3FS_PID=""
s3fs_unmount() {
    [[ -n "$S3FS_MNT" ]] || return 0
    fusermount -u "$S3FS_MNT" 2>/dev/null || umount "$S3FS_MNT" 2>/dev/null || true
    if [[ -n "$S3FS_PID" ]]; then
        kill "$S3FS_PID" 2>/dev/null || true
        wait "$S3FS_PID" 2>/dev/null || true
    fi
    S3FS_MNT=""
}

wf_s3fs() {
    local bucket="${CONF_S3FS_BUCKET:-demo}" dirs="${CONF_S3FS_DIRS:-1}" tag="s3fs-$RUN"
    [[ -e /dev/fuse ]] || { echo "SKIP: /dev/fuse does not exist here (no FUSE in this sandbox)"; exit 77; }
    mkdir -p "$S/mnt"
    printf '%s:%s\n' "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" >passwd
    chmod 600 passwd
    # -f: stays in the foreground, so this script owns the process and stops it by its pid.
    s3fs "$bucket" "$S/mnt" -f -o passwd_file="$S/passwd",url="$S3_ENDPOINT",use_path_request_style,endpoint="$REGION" \
        -o multipart_size=5,parallel_count=2,stat_cache_expire=1,retries=1,connect_timeout=5,readwrite_timeout=60,dbglevel=warn \
        >s3fs.log 2>&1 &
    S3FS_PID=$!
    S3FS_MNT="$S/mnt"
    trap s3fs_unmount EXIT
    local i
    for i in $(seq 1 50); do
        mountpoint -q "$S3FS_MNT" && break
        kill -0 "$S3FS_PID" 2>/dev/null || break
        sleep 0.2
    done
    if ! mountpoint -q "$S3FS_MNT"; then
        echo "--- s3fs log"; cat s3fs.log
        echo "SKIP: s3fs could not mount $bucket here (FUSE unavailable?): $(grep -v '^\s*$' s3fs.log | tail -n 1 | cut -c1-200)"
        exit 77
    fi
    ok "s3fs mounted $bucket on $S3FS_MNT"

    # The files, as paths under the mount and as keys.
    local rels
    if [[ "$dirs" == 1 ]]; then
        make_tree src 12
        rels=("top.txt" "a/b/c.txt" "a/with space.txt" "deep/x/small.bin" "deep/big.bin")
        mkdir "$S3FS_MNT/$tag"
        cp -r src/. "$S3FS_MNT/$tag/"
        diff -r src "$S3FS_MNT/$tag" || fail "the tree read back through the mount differs"
        (cd "$S3FS_MNT/$tag" && find . -type f | sort) >found.txt
        (cd src && find . -type f | sort) >want.txt
        ok "mkdir, cp -r of a tree (a 12 MiB file as a 5 MiB-part multipart upload) and diff -r through the mount"
    else
        echo "SKIP s3fs directories: CONF_S3FS_DIRS=0 (${CONF_S3FS_DIRS_REASON:-this provider cannot hold folder markers})"
        mkdir -p src
        printf 'top %s\n' "$RUN" >"src/$tag-top.txt"
        printf 'c\n' >"src/$tag-c.txt"
        printf 'spaced\n' >"src/$tag-with space.txt"
        head -c 70000 /dev/urandom >"src/$tag-small.bin"
        head -c $((12 * 1024 * 1024)) /dev/urandom >"src/$tag-big.bin"
        rels=("$tag-top.txt" "$tag-c.txt" "$tag-with space.txt" "$tag-small.bin" "$tag-big.bin")
        local f
        for f in "${rels[@]}"; do cp "src/$f" "$S3FS_MNT/$f"; cmp -s "src/$f" "$S3FS_MNT/$f" || fail "$f read back through the mount differs"; done
        (cd "$S3FS_MNT" && find . -maxdepth 1 -type f -name "$tag-*" | sort) >found.txt
        (cd src && find . -type f | sort) >want.txt
        ok "cp of 5 files (a 12 MiB file as a 5 MiB-part multipart upload) to the mount's root, read back identical"
    fi
    diff want.txt found.txt || fail "readdir through the mount lists other files"
    ok "readdir (ListObjects with a delimiter) lists exactly the files copied"
    # p REL: the path under the mount; k REL: the key.
    p() { if [[ "$dirs" == 1 ]]; then echo "$S3FS_MNT/$tag/$1"; else echo "$S3FS_MNT/$1"; fi; }
    k() { if [[ "$dirs" == 1 ]]; then echo "$tag/$1"; else echo "$1"; fi; }
    local top="${rels[0]}" c="${rels[1]}" small="${rels[3]}" big="${rels[4]}"
    local renamed="${top%top.txt}renamed top.txt"
    mv "$(p "$top")" "$(p "$renamed")"
    [[ ! -e "$(p "$top")" ]] || fail "the old name is still there after mv"
    cmp -s "src/$top" "$(p "$renamed")" || fail "the renamed file has other content"
    printf 'appended\n' >>"$(p "$c")"
    chmod 600 "$(p "$small")"
    ok "mv (CopyObject + DeleteObject), append (a rewrite), chmod (CopyObject REPLACE)"
    # What landed in the bucket, seen by another client.
    local prefix; prefix="$(k "")"; [[ "$dirs" == 1 ]] || prefix="$tag-"
    python3 - "$bucket" "$prefix" "$S/src" "$(k "$renamed")" "$(k "${rels[2]}")" "$(k "$small")" "$(k "$big")" "$(k "$c")" "src/$big" <<'PY' \
        || fail "the objects in the bucket do not match what was written through the mount"
import os, sys, boto3
bucket, prefix, src, renamed, spaced, small, big, c_key, big_src = sys.argv[1:]
c = boto3.client("s3", endpoint_url=os.environ["S3_ENDPOINT"], region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
keys = sorted(o["Key"] for p in c.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix) for o in p.get("Contents", []))
files = [k for k in keys if not k.endswith("/")]
want = sorted([renamed, spaced, small, big, c_key])
assert files == want, f"objects {files}, expected {want}"
body = lambda k: c.get_object(Bucket=bucket, Key=k)["Body"].read()
assert body(big) == open(os.path.join(os.path.dirname(src), big_src), "rb").read(), "the big file differs"
assert body(c_key) == b"c\nappended\n", body(c_key)
etag = c.head_object(Bucket=bucket, Key=big)["ETag"]
assert etag.rstrip('"').split("-")[-1].isdigit() and "-" in etag, f"the 12 MiB file's ETag {etag} is not a multipart ETag"
mode = c.head_object(Bucket=bucket, Key=small)["Metadata"].get("mode")
assert mode and int(mode) & 0o777 == 0o600, f"chmod did not reach the object's metadata: mode {mode}"
print(f"ok: boto3 sees exactly the files written, the 12 MiB one as a multipart upload ({etag}), the append and the mode")
PY
    if [[ "$dirs" == 1 ]]; then
        rm -r "$(p "")"
        [[ ! -e "$(p "")" ]] || fail "rm -r left the directory"
    else
        local f
        for f in "$renamed" "${rels[@]:1}"; do rm "$(p "$f")"; done
    fi
    local left
    left="$(python3 -c 'import os,sys,boto3; c=boto3.client("s3", endpoint_url=os.environ["S3_ENDPOINT"]); print(c.list_objects_v2(Bucket=sys.argv[1], Prefix=sys.argv[2]).get("KeyCount", 0))' "$bucket" "$prefix")"
    [[ "$left" == 0 ]] || fail "rm through the mount left $left objects"
    ok "rm removes every object"
    s3fs_unmount
    trap - EXIT
    ok "unmounted"
}

case "$WF" in
    rclone) wf_rclone ;;
    s3cmd-v4) s3cmd_workflow v4 ;;
    s3cmd-v2) s3cmd_workflow v2 ;;
    s3fs) wf_s3fs ;;
    *) echo "unknown workflow $WF" >&2; exit 2 ;;
esac
echo "PASS $WF"
rm -rf "$S"
