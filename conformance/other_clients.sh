#!/usr/bin/env bash
# rclone and s3cmd workflows for the s3ferry conformance suite.
#
#   bash conformance/other_clients.sh rclone
#   bash conformance/other_clients.sh s3cmd-v4
#   bash conformance/other_clients.sh s3cmd-v2
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

case "$WF" in
    rclone) wf_rclone ;;
    s3cmd-v4) s3cmd_workflow v4 ;;
    s3cmd-v2) s3cmd_workflow v2 ;;
    *) echo "unknown workflow $WF" >&2; exit 2 ;;
esac
echo "PASS $WF"
rm -rf "$S"
