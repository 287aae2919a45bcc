#!/usr/bin/env bash
# s3ferry real-client conformance suite.
#
#   bash conformance/run.sh            # the quick run (CI's): every client once, two stand-ins
#   bash conformance/run.sh --full     # the whole client x provider matrix
#
# Starts the gateway from config.example.toml (copied into a temp dir, on a free port on
# 127.0.0.1), with some buckets routed through provider dialects to a stand-in upstream
# (moto_server, standin-routes.toml), drives it with real S3 clients (aws cli v1 and v2, boto3,
# the AWS SDK for JavaScript v3, the MinIO Python client, and rclone / s3cmd / s3fs when they
# can be had), prints one PASS/FAIL/SKIP line per workflow and a summary, and exits non-zero
# if any workflow failed. See conformance/README.md for the environment variables.
set -euo pipefail

FULL="${CONFORMANCE_FULL:-0}"
for arg in "$@"; do
    case "$arg" in
        --full) FULL=1 ;;
        -h|--help) sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "run.sh: unknown argument '$arg' (try --full or --help)" >&2; exit 2 ;;
    esac
done

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$HERE/.." && pwd)"

WORKFLOW_TIMEOUT="${CONFORMANCE_WORKFLOW_TIMEOUT:-150}"   # seconds per workflow
STARTUP_TIMEOUT="${CONFORMANCE_STARTUP_TIMEOUT:-20}"      # seconds for the port to open
FILTER="${CONFORMANCE_FILTER:-}"                          # regex on workflow names

PASSED=()
FAILED=()
SKIPPED=()     # "name: reason"
GW_PID=""
MOTO_PID=""
WORK=""
RUN_START=$SECONDS

log() { printf '%s\n' "$*"; }
hr() { log "------------------------------------------------------------------------"; }

gateway_log_tail() {
    local n="${1:-80}"
    if [[ -n "$WORK" && -f "$WORK/gateway.log" ]]; then
        log "=== gateway log (last $n lines of $WORK/gateway.log) ==="
        tail -n "$n" "$WORK/gateway.log" | sed -e 's/\x1b\[[0-9;]*m//g' -e 's/^/  | /'
        log "=== end of gateway log ==="
    fi
}

stop_gateway() {
    if [[ -n "$GW_PID" ]] && kill -0 "$GW_PID" 2>/dev/null; then
        kill "$GW_PID" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$GW_PID" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$GW_PID" 2>/dev/null; then
            kill -9 "$GW_PID" 2>/dev/null || true
        fi
        wait "$GW_PID" 2>/dev/null || true
    fi
    GW_PID=""
}

stop_moto() {
    if [[ -n "$MOTO_PID" ]] && kill -0 "$MOTO_PID" 2>/dev/null; then
        kill "$MOTO_PID" 2>/dev/null || true
        wait "$MOTO_PID" 2>/dev/null || true
    fi
    MOTO_PID=""
}

cleanup() {
    local rc=$?
    stop_gateway
    stop_moto
    if [[ -n "$WORK" && -d "$WORK" ]]; then
        if [[ "${CONFORMANCE_KEEP_TMP:-0}" == 1 ]]; then
            log "keeping temp dir $WORK (CONFORMANCE_KEEP_TMP=1)"
        else
            rm -rf "$WORK"
        fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

selected() { [[ -z "$FILTER" ]] || [[ "$1" =~ $FILTER ]]; }

skip() {  # skip NAME REASON
    selected "$1" || return 0
    SKIPPED+=("$1: $2")
    log "SKIP  $1  ($2)"
}

# run_workflow NAME COMMAND... : runs COMMAND with a timeout, output to a per-workflow log.
run_workflow() {
    local name="$1"; shift
    selected "$name" || return 0
    local safe log start rc
    safe="$(printf '%s' "$name" | tr -c 'A-Za-z0-9._-' '_')"
    log="$WORK/logs/$safe.log"
    start=$SECONDS
    local gw_lines_before=0
    [[ -f "$WORK/gateway.log" ]] && gw_lines_before="$(wc -l <"$WORK/gateway.log")"
    set +e
    timeout --kill-after=5 "$WORKFLOW_TIMEOUT" "$@" >"$log" 2>&1 </dev/null
    rc=$?
    set -e
    local took=$((SECONDS - start))
    if [[ $rc -eq 0 ]]; then
        PASSED+=("$name")
        log "PASS  $name  (${took}s)"
        if [[ "${CONFORMANCE_VERBOSE:-0}" == 1 ]]; then sed 's/^/      /' "$log"; fi
        # Steps inside the workflow that were skipped, each with its reason.
        grep -E '^SKIP ' "$log" | sed 's/^/      /' || true
    elif [[ $rc -eq 77 ]]; then
        # The workflow could not run here (its last line says why).
        SKIPPED+=("$name: $(tail -n 1 "$log" | sed 's/^SKIP: //')")
        log "SKIP  $name  ($(tail -n 1 "$log" | sed 's/^SKIP: //'))"
    else
        FAILED+=("$name")
        if [[ $rc -eq 124 || $rc -eq 137 ]]; then
            log "FAIL  $name  (timed out after ${WORKFLOW_TIMEOUT}s)"
        else
            log "FAIL  $name  (exit $rc, ${took}s)"
        fi
        tail -n 40 "$log" | sed 's/^/      /'
        # The gateway's own view of this workflow: its warnings, errors and 4xx/5xx answers.
        if [[ -f "$WORK/gateway.log" ]]; then
            local gw_err
            gw_err="$(tail -n +"$((gw_lines_before + 1))" "$WORK/gateway.log" | sed 's/\x1b\[[0-9;]*m//g' \
                | grep -E ' (WARN|ERROR) | status=[45][0-9][0-9] ' | tail -n 15 || true)"
            if [[ -n "$gw_err" ]]; then
                log "      gateway log, errors during this workflow (last 15):"
                printf '%s\n' "$gw_err" | cut -c1-400 | sed 's/^/      | /'
            fi
        fi
    fi
    # A dead gateway would fail everything after this point: say so once, clearly.
    if [[ -n "$GW_PID" ]] && ! kill -0 "$GW_PID" 2>/dev/null; then
        log "!!! the gateway process exited during workflow '$name'"
        gateway_log_tail 60
        GW_PID=""
    fi
}

# --------------------------------------------------------------------------------------
# 1. Clients
# --------------------------------------------------------------------------------------
hr
log "s3ferry conformance: preparing clients"
export PIP_DISABLE_PIP_VERSION_CHECK=1
HAVE_AWS=1
HAVE_BOTO3=1
# The aws cli v1 (pip) and v2 (Debian's `awscli`) can both be on PATH as `aws`: each run names
# its binary by path (AWS_CLI_BIN), the first of each major version on PATH.
AWS_V1=""
AWS_V2=""
find_aws_clis() {
    AWS_V1=""; AWS_V2=""
    local p v
    while read -r p; do
        [[ -n "$p" && -x "$p" ]] || continue
        v="$("$p" --version 2>&1 | head -n 1)"
        case "$v" in
            aws-cli/1.*) [[ -n "$AWS_V1" ]] || AWS_V1="$p" ;;
            aws-cli/2.*) [[ -n "$AWS_V2" ]] || AWS_V2="$p" ;;
        esac
    done < <(which -a aws 2>/dev/null | awk '!seen[$0]++')
}
find_aws_clis
need_pip=()
[[ -n "$AWS_V1" ]] || need_pip+=(awscli)
python3 -c 'import boto3' >/dev/null 2>&1 || need_pip+=(boto3)
# Optional Python clients: the MinIO client, and moto (the provider stand-in's server).
python3 -c 'import minio' >/dev/null 2>&1 || need_pip+=(minio)
command -v moto_server >/dev/null 2>&1 || need_pip+=('moto[server]')
PIP_ERR=""
if ((${#need_pip[@]})); then
    log "installing ${need_pip[*]} with pip"
    if ! PIP_ERR="$(python3 -m pip install --quiet "${need_pip[@]}" 2>&1)"; then
        log "pip install failed:"; printf '%s\n' "$PIP_ERR" | tail -n 20 | sed 's/^/  /'
    fi
    hash -r
    find_aws_clis
fi
[[ -n "$AWS_V1" ]] || HAVE_AWS=0
python3 -c 'import boto3' >/dev/null 2>&1 || HAVE_BOTO3=0
declare -A OPT_REASON=()
python3 -c 'import minio' >/dev/null 2>&1 \
    || OPT_REASON[minio]="the minio package is not importable and 'pip install minio' failed: $(printf '%s' "$PIP_ERR" | tail -n 1 | cut -c1-160)"
command -v moto_server >/dev/null 2>&1 \
    || OPT_REASON[moto]="moto_server (the provider stand-in) is missing and 'pip install moto[server]' failed: $(printf '%s' "$PIP_ERR" | tail -n 1 | cut -c1-160)"

# Optional clients from Debian when missing and apt-get is usable: command -> package.
declare -A APT_PKG=([rclone]=rclone [s3cmd]=s3cmd [s3fs]=s3fs [node]=nodejs [npm]=npm [aws-v2]=awscli)
have_cmd() {
    case "$1" in
        aws-v2) [[ -n "$AWS_V2" ]] ;;
        *) command -v "$1" >/dev/null 2>&1 ;;
    esac
}
opt_missing=()
for c in rclone s3cmd s3fs node npm aws-v2; do have_cmd "$c" || opt_missing+=("$c"); done
if ((${#opt_missing[@]})); then
    if [[ "${CONFORMANCE_NO_APT:-0}" == 1 ]]; then
        for c in "${opt_missing[@]}"; do OPT_REASON[$c]="$c is not installed and CONFORMANCE_NO_APT=1"; done
    elif [[ "$(id -u)" != 0 ]]; then
        for c in "${opt_missing[@]}"; do OPT_REASON[$c]="$c is not installed and apt-get needs root"; done
    elif ! command -v apt-get >/dev/null 2>&1; then
        for c in "${opt_missing[@]}"; do OPT_REASON[$c]="$c is not installed and there is no apt-get"; done
    else
        pkgs=()
        for c in "${opt_missing[@]}"; do pkgs+=("${APT_PKG[$c]}"); done
        log "installing ${pkgs[*]} with apt-get"
        export DEBIAN_FRONTEND=noninteractive
        APT_LOG="$(mktemp)"
        if ! timeout 300 apt-get install -y -qq "${pkgs[@]}" >"$APT_LOG" 2>&1; then
            timeout 300 apt-get update -qq >>"$APT_LOG" 2>&1 || true
            timeout 300 apt-get install -y -qq "${pkgs[@]}" >>"$APT_LOG" 2>&1 || true
        fi
        hash -r
        find_aws_clis
        for c in "${opt_missing[@]}"; do
            if ! have_cmd "$c"; then
                OPT_REASON[$c]="$c is not installed and 'apt-get install ${APT_PKG[$c]}' failed: $(tail -n 1 "$APT_LOG" | cut -c1-160)"
            fi
        done
        rm -f "$APT_LOG"
    fi
fi

# The AWS SDK for JavaScript v3: versions pinned by conformance/js/package-lock.json, installed
# into conformance/js/node_modules (not in git) by `npm ci` when missing or older than the lock.
JS_DIR="$HERE/js"
HAVE_JS=0
if [[ -n "${OPT_REASON[node]:-}" || -n "${OPT_REASON[npm]:-}" ]]; then
    OPT_REASON[js]="${OPT_REASON[node]:-${OPT_REASON[npm]}}"
elif [[ "$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)" -lt 18 ]]; then
    OPT_REASON[js]="node $(node --version 2>/dev/null) is older than 18, which the AWS SDK for JavaScript v3 needs"
else
    if [[ ! -f "$JS_DIR/node_modules/.package-lock.json" || "$JS_DIR/package-lock.json" -nt "$JS_DIR/node_modules/.package-lock.json" ]]; then
        log "installing the AWS SDK for JavaScript v3 (npm ci in conformance/js)"
        NPM_LOG="$(mktemp)"
        (cd "$JS_DIR" && timeout 300 npm ci --no-audit --no-fund --loglevel=error) >"$NPM_LOG" 2>&1 \
            || OPT_REASON[js]="'npm ci' in conformance/js failed: $(grep -v '^\s*$' "$NPM_LOG" | tail -n 1 | cut -c1-160)"
        rm -f "$NPM_LOG"
    fi
    if [[ -z "${OPT_REASON[js]:-}" ]]; then
        if (cd "$JS_DIR" && NODE_NO_WARNINGS=1 node -e 'for (const p of ["@aws-sdk/client-s3", "@aws-sdk/lib-storage", "@aws-sdk/s3-request-presigner"]) require(p)') >/dev/null 2>&1; then
            HAVE_JS=1
        else
            OPT_REASON[js]="the @aws-sdk packages in conformance/js/node_modules cannot be loaded"
        fi
    fi
fi

log "aws (v1): ${AWS_V1:-missing}$( [[ -n "$AWS_V1" ]] && printf ' = %s' "$("$AWS_V1" --version 2>&1 | head -n 1)")"
log "aws (v2): ${AWS_V2:-missing}$( [[ -n "$AWS_V2" ]] && printf ' = %s' "$("$AWS_V2" --version 2>&1 | head -n 1)")"
log "boto3: $( ((HAVE_BOTO3)) && python3 -c 'import boto3,botocore;print(boto3.__version__, "botocore", botocore.__version__)' || echo missing)"
log "minio-py: $(python3 -c 'import minio; print(minio.__version__)' 2>/dev/null || echo missing)"
log "js sdk: $( ((HAVE_JS)) && (cd "$JS_DIR" && node -p 'require("@aws-sdk/client-s3/package.json").version + " on node " + process.version') || echo "missing (${OPT_REASON[js]:-})")"
log "rclone: $(command -v rclone >/dev/null 2>&1 && rclone version 2>/dev/null | sed -n 1p || echo missing)"
log "s3cmd: $(command -v s3cmd >/dev/null 2>&1 && s3cmd --version 2>&1 | head -n 1 || echo missing)"
log "s3fs: $(command -v s3fs >/dev/null 2>&1 && s3fs --version 2>&1 | head -n 1 || echo missing)"
log "moto_server: $(command -v moto_server >/dev/null 2>&1 && python3 -c 'import moto; print(moto.__version__)' 2>/dev/null || echo missing)"
log "matrix: $( ((FULL)) && echo 'full (--full)' || echo 'quick (bash conformance/run.sh --full runs the whole matrix)')"

# --------------------------------------------------------------------------------------
# 2. Gateway binary
# --------------------------------------------------------------------------------------
if [[ -n "${S3FERRY_BIN:-}" ]]; then
    BIN="$S3FERRY_BIN"
else
    log "building s3ferry (cargo build --quiet --bin s3ferry)"
    (cd "$REPO_ROOT" && cargo build --quiet --bin s3ferry)
    BIN="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/debug/s3ferry"
fi
[[ "$BIN" == /* ]] || BIN="$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")"
if [[ ! -x "$BIN" ]]; then
    log "FATAL: gateway binary $BIN does not exist or is not executable"
    exit 2
fi
log "gateway binary: $BIN"

# --------------------------------------------------------------------------------------
# 3. Temp dir, config, port, start
# --------------------------------------------------------------------------------------
WORK="$(mktemp -d "${TMPDIR:-/tmp}/s3ferry-conformance.XXXXXX")"
mkdir -p "$WORK/logs" "$WORK/scratch" "$WORK/gw"
cp "$REPO_ROOT/config.example.toml" "$WORK/gw/config.toml"
CONFIG="$WORK/gw/config.toml"
# One anonymous bucket (off in the example), for the boto3 grants-and-anonymous workflow.
printf '\n[[buckets]]\nname = "conf-public"\nprovider = "local"\nanonymous = "read"\nanonymous_list = true\n' >>"$CONFIG"
export CONF_PUBLIC_BUCKET="conf-public"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }

# The provider stand-in: moto_server on its own port, reached through the dialect profiles of
# standin-routes.toml (buckets quirks-b2, quirks-r2, quirks-ceph, quirks-cli-r2).
STANDIN_BUCKETS=(quirks-b2 quirks-r2 quirks-ceph quirks-cli-r2)
if [[ -z "${OPT_REASON[moto]:-}" ]]; then
    MOTO_PORT="$(free_port)"
    moto_server -H 127.0.0.1 -p "$MOTO_PORT" >"$WORK/moto.log" 2>&1 &
    MOTO_PID=$!
    moto_up=0
    deadline=$((SECONDS + STARTUP_TIMEOUT))
    while ((SECONDS < deadline)) && kill -0 "$MOTO_PID" 2>/dev/null; do
        if (exec 3<>"/dev/tcp/127.0.0.1/$MOTO_PORT") 2>/dev/null; then moto_up=1; break; fi
        sleep 0.2
    done
    # The stand-in's buckets, made at moto directly (any key: moto checks no signatures).
    if ((moto_up)) && MOTO_ERR="$(python3 - "$MOTO_PORT" "${STANDIN_BUCKETS[@]}" 2>&1 <<'PY'
import sys, boto3
c = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{sys.argv[1]}", aws_access_key_id="standin-any",
                 aws_secret_access_key="standin-any-secret", region_name="us-east-1")
for b in sys.argv[2:]:
    c.create_bucket(Bucket=b)
PY
    )"; then
        sed "s/@STANDIN_PORT@/$MOTO_PORT/g" "$HERE/standin-routes.toml" >>"$CONFIG"
    else
        OPT_REASON[moto]="moto_server did not start on 127.0.0.1:$MOTO_PORT: $( ((moto_up)) && printf '%s' "${MOTO_ERR:-}" | tail -n 1 | cut -c1-160 || tail -n 1 "$WORK/moto.log" | cut -c1-160)"
        stop_moto
    fi
fi

PORT="$(free_port)"
ENDPOINT="http://127.0.0.1:$PORT"
RUN_ID="$(date +%s | tail -c 6)$RANDOM"

# Everything the workflow scripts read.
export S3_ENDPOINT="$ENDPOINT"
export S3_PORT="$PORT"
export AWS_ACCESS_KEY_ID="${CONFORMANCE_ACCESS_KEY:-s3ferry-demo}"
export AWS_SECRET_ACCESS_KEY="${CONFORMANCE_SECRET_KEY:-s3ferry-demo-secret}"
export AWS_DEFAULT_REGION="us-east-1"
export CONF_RUN_ID="$RUN_ID"
export CONF_GATEWAY_DIR="$WORK/gw"
export CONF_SCRATCH="$WORK/scratch"
export CONF_CONFIG="$CONFIG"
export S3FERRY_BIN="$BIN"
# Keep the clients away from the user's own AWS set-up, and make them fail fast.
unset AWS_PROFILE AWS_DEFAULT_PROFILE AWS_SESSION_TOKEN AWS_SECURITY_TOKEN AWS_REGION \
      AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3 AWS_S3_ADDRESSING_STYLE 2>/dev/null || true
: >"$WORK/aws-config"; : >"$WORK/aws-credentials"
export AWS_CONFIG_FILE="$WORK/aws-config"
export AWS_SHARED_CREDENTIALS_FILE="$WORK/aws-credentials"
export AWS_EC2_METADATA_DISABLED=true
export AWS_RETRY_MODE=standard
export AWS_MAX_ATTEMPTS=1
export AWS_PAGER=""

hr
log "endpoint $ENDPOINT  (temp dir $WORK, run id $RUN_ID)"

run_workflow "gateway: config check accepts config.example.toml" \
    "$BIN" config check --config "$CONFIG"

run_workflow "gateway: config check rejects a route to an undefined provider" \
    bash -c '
        bad="$CONF_SCRATCH/bad-config.toml"
        cp "$CONF_CONFIG" "$bad"
        printf "\n[[buckets]]\nname = \"nowhere\"\nprovider = \"no-such-provider\"\n" >>"$bad"
        if "$S3FERRY_BIN" config check --config "$bad"; then
            echo "config check accepted a route to an undefined provider"; exit 1
        fi
        echo "rejected as expected"'

GW_RUST_LOG="${RUST_LOG:-info}"
(
    cd "$WORK"
    S3FERRY_LISTEN="127.0.0.1:$PORT" S3FERRY_ADMIN_LISTEN="127.0.0.1:0" RUST_LOG="$GW_RUST_LOG" \
        S3FERRY_LOG_FORMAT="${S3FERRY_LOG_FORMAT:-text}" NO_COLOR=1 exec "$BIN" serve --config "$CONFIG"
) >"$WORK/gateway.log" 2>&1 &
GW_PID=$!

up=0
deadline=$((SECONDS + STARTUP_TIMEOUT))
while ((SECONDS < deadline)); do
    if ! kill -0 "$GW_PID" 2>/dev/null; then
        break
    fi
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
        up=1; break
    fi
    sleep 0.2
done
if [[ $up != 1 ]]; then
    if kill -0 "$GW_PID" 2>/dev/null; then
        log "FATAL: the gateway did not accept connections on 127.0.0.1:$PORT within ${STARTUP_TIMEOUT}s"
    else
        wait "$GW_PID" 2>/dev/null && rc=0 || rc=$?
        log "FATAL: the gateway exited (status $rc) before accepting connections on 127.0.0.1:$PORT"
        GW_PID=""
    fi
    gateway_log_tail 100
    exit 2
fi
log "gateway up (pid $GW_PID) after $((SECONDS - deadline + STARTUP_TIMEOUT))s"
hr

# --------------------------------------------------------------------------------------
# 4. Workflows
# --------------------------------------------------------------------------------------
if ((HAVE_AWS)); then
    while read -r wf; do
        [[ -n "$wf" ]] || continue
        run_workflow "aws-cli: $wf" env AWS_CLI_BIN="$AWS_V1" CONF_AWS_BUCKET="conf-awscli-$RUN_ID" bash "$HERE/aws_cli.sh" "$wf"
    done < <(bash "$HERE/aws_cli.sh" list)
else
    skip "aws-cli: *" "the aws cli is not installed and pip could not install it"
fi

if ((HAVE_BOTO3)); then
    while read -r wf; do
        [[ -n "$wf" ]] || continue
        run_workflow "boto3: $wf" python3 "$HERE/boto3_workflows.py" "$wf"
    done < <(python3 "$HERE/boto3_workflows.py" --list)
else
    skip "boto3: *" "boto3 is not importable and pip could not install it"
fi

if command -v rclone >/dev/null 2>&1; then
    run_workflow "rclone: mkdir/copy/check/copy back/purge" bash "$HERE/other_clients.sh" rclone
else
    skip "rclone: mkdir/copy/check/copy back/purge" "${OPT_REASON[rclone]:-rclone is not installed}"
fi

if command -v s3cmd >/dev/null 2>&1; then
    run_workflow "s3cmd (SigV4): put/get/ls/info/del" bash "$HERE/other_clients.sh" s3cmd-v4
    run_workflow "s3cmd (SigV2): put/get/ls/info/del" bash "$HERE/other_clients.sh" s3cmd-v2
else
    skip "s3cmd (SigV4): put/get/ls/info/del" "${OPT_REASON[s3cmd]:-s3cmd is not installed}"
    skip "s3cmd (SigV2): put/get/ls/info/del" "${OPT_REASON[s3cmd]:-s3cmd is not installed}"
fi

# --------------------------------------------------------------------------------------
# The clients that the 2025 SDK checksum change broke most often, each on the embedded default
# (the local provider) and behind a provider stand-in whose dialect trips it. The quick run
# takes one stand-in per client; --full takes the whole matrix (README: "Client matrix").
# --------------------------------------------------------------------------------------
QUICK_LEFT_OUT=0
in_matrix() {  # in_matrix quick|full : whether this cell runs now
    [[ "$1" == quick ]] || ((FULL)) || { QUICK_LEFT_OUT=$((QUICK_LEFT_OUT + 1)); return 1; }
}
standin_ready() { [[ -z "${OPT_REASON[moto]:-}" ]]; }

js_matrix() {  # js_matrix LABEL BUCKET DIALECT
    local label="$1" bucket="$2" dialect="$3" wf
    while read -r wf; do
        [[ -n "$wf" ]] || continue
        run_workflow "js-sdk$label: $wf" env CONF_JS_BUCKET="$bucket" CONF_STANDIN_DIALECT="$dialect" NODE_NO_WARNINGS=1 \
            node "$HERE/js_sdk_workflows.mjs" "$wf"
    done < <(NODE_NO_WARNINGS=1 node "$HERE/js_sdk_workflows.mjs" --list)
}
if ((HAVE_JS)); then
    js_matrix "" demo ""
    for d in b2 r2 ceph; do
        cell=full; [[ $d == b2 ]] && cell=quick
        in_matrix "$cell" || continue
        if standin_ready; then js_matrix " [$d]" "quirks-$d" "$d"; else skip "js-sdk [$d]: *" "${OPT_REASON[moto]}"; fi
    done
else
    skip "js-sdk: *" "${OPT_REASON[js]}"
fi

minio_matrix() {  # minio_matrix LABEL BUCKET BUCKET_OPS OTHER_BUCKET
    local label="$1" wf
    while read -r wf; do
        [[ -n "$wf" ]] || continue
        run_workflow "minio-py$label: $wf" env CONF_MINIO_BUCKET="$2" CONF_MINIO_BUCKET_OPS="$3" CONF_MINIO_OTHER_BUCKET="$4" \
            python3 "$HERE/minio_workflows.py" "$wf"
    done < <(python3 "$HERE/minio_workflows.py" --list)
}
if [[ -z "${OPT_REASON[minio]:-}" ]]; then
    minio_matrix "" demo 1 photos
    for d in ceph b2 r2; do
        cell=full; [[ $d == ceph ]] && cell=quick
        in_matrix "$cell" || continue
        if standin_ready; then minio_matrix " [$d]" "quirks-$d" 0 demo; else skip "minio-py [$d]: *" "${OPT_REASON[moto]}"; fi
    done
else
    skip "minio-py: *" "${OPT_REASON[minio]}"
fi

# aws cli v2 (Debian's `awscli`) by path, beside the v1 on PATH. The quick run takes the
# workflows that upload (its default checksums), list and presign; --full all of them, and the
# bucket-level set behind the r2 stand-in (a bucket there exists already: no mb/rb).
AWS_V2_QUICK=" mb cp-small cp-multipart cp-checksums ls presign rm-recursive rb "
AWS_V2_STANDIN=" cp-small cp-multipart cp-checksums ls sync head-object list-objects-v2-pagination copy-object delete-objects presign rm-recursive "
if [[ -n "$AWS_V2" ]]; then
    while read -r wf; do
        [[ -n "$wf" ]] || continue
        if [[ "$AWS_V2_QUICK" == *" $wf "* ]] || in_matrix full; then
            # A run id of its own: the photos and media workflows work under conf-<run id>/.
            run_workflow "aws-cli-v2: $wf" env AWS_CLI_BIN="$AWS_V2" CONF_AWS_BUCKET="conf-awscli2-$RUN_ID" CONF_RUN_ID="${RUN_ID}v2" \
                bash "$HERE/aws_cli.sh" "$wf"
        fi
    done < <(bash "$HERE/aws_cli.sh" list)
    if in_matrix full; then
        if standin_ready; then
            while read -r wf; do
                [[ -n "$wf" && "$AWS_V2_STANDIN" == *" $wf "* ]] || continue
                run_workflow "aws-cli-v2 [r2]: $wf" env AWS_CLI_BIN="$AWS_V2" CONF_AWS_BUCKET=quirks-cli-r2 CONF_AWS_STANDIN=1 CONF_RUN_ID="${RUN_ID}r2" \
                    bash "$HERE/aws_cli.sh" "$wf"
            done < <(bash "$HERE/aws_cli.sh" list)
        else
            skip "aws-cli-v2 [r2]: *" "${OPT_REASON[moto]}"
        fi
    fi
else
    skip "aws-cli-v2: *" "${OPT_REASON[aws-v2]:-the aws cli v2 is not installed}"
fi

# s3fs-fuse: a FUSE mount of the bucket (the workflow skips itself where FUSE cannot mount).
S3FS_WF="s3fs: mount, cp -r, diff, mv, append, chmod, rm"
if command -v s3fs >/dev/null 2>&1; then
    run_workflow "$S3FS_WF" env CONF_S3FS_BUCKET=demo CONF_S3FS_DIRS=0 \
        CONF_S3FS_DIRS_REASON="the embedded local provider (s3s-fs) stores keys as files and cannot hold s3fs's 'dir/' folder markers: mkdir gets ENOENT" \
        bash "$HERE/other_clients.sh" s3fs
    for d in ceph b2; do
        in_matrix full || continue
        if standin_ready; then
            run_workflow "${S3FS_WF/s3fs:/s3fs [$d]:}" env CONF_S3FS_BUCKET="quirks-$d" bash "$HERE/other_clients.sh" s3fs
        else
            skip "${S3FS_WF/s3fs:/s3fs [$d]:}" "${OPT_REASON[moto]}"
        fi
    done
else
    skip "$S3FS_WF" "${OPT_REASON[s3fs]:-s3fs is not installed}"
fi
((FULL)) || log "(quick run: $QUICK_LEFT_OUT more client x stand-in groups with --full)"

# A real browser (headless Chromium) through its own gateway with a CORS rule: fetch uploads
# and reads from an allowed and from another origin (browser.sh installs Chromium).
if ((HAVE_BOTO3)); then
    run_workflow "browser: CORS, fetch PUT/GET from an allowed and another origin" bash "$HERE/browser.sh"
else
    skip "browser: CORS, fetch PUT/GET from an allowed and another origin" "boto3 (which signs the page's URLs) is not importable"
fi

# --------------------------------------------------------------------------------------
# 5. Summary
# --------------------------------------------------------------------------------------
hr
if ((${#SKIPPED[@]})); then
    log "skipped:"
    for s in "${SKIPPED[@]}"; do log "  - $s"; done
fi
if ((${#FAILED[@]})); then
    log "failed:"
    for f in "${FAILED[@]}"; do log "  - $f"; done
    gateway_log_tail 80
fi
log "took $((SECONDS - RUN_START))s ($( ((FULL)) && echo full || echo quick) run)"
log "conformance: ${#PASSED[@]} passed, ${#FAILED[@]} failed, ${#SKIPPED[@]} skipped"
if ((${#FAILED[@]})) || ! ((HAVE_AWS)) || ! ((HAVE_BOTO3)); then
    exit 1
fi
exit 0
