#!/usr/bin/env bash
# s3ferry real-client conformance suite.
#
#   bash conformance/run.sh
#
# Starts the gateway from config.example.toml (copied into a temp dir, on a free port on
# 127.0.0.1), drives it with real S3 clients (aws cli, boto3, and rclone / s3cmd when they
# can be had), prints one PASS/FAIL/SKIP line per workflow and a summary, and exits non-zero
# if any workflow failed. See conformance/README.md for the environment variables.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$HERE/.." && pwd)"

WORKFLOW_TIMEOUT="${CONFORMANCE_WORKFLOW_TIMEOUT:-150}"   # seconds per workflow
STARTUP_TIMEOUT="${CONFORMANCE_STARTUP_TIMEOUT:-20}"      # seconds for the port to open
FILTER="${CONFORMANCE_FILTER:-}"                          # regex on workflow names

PASSED=()
FAILED=()
SKIPPED=()     # "name: reason"
GW_PID=""
WORK=""

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

cleanup() {
    local rc=$?
    stop_gateway
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
need_pip=0
command -v aws >/dev/null 2>&1 || need_pip=1
python3 -c 'import boto3' >/dev/null 2>&1 || need_pip=1
PIP_ERR=""
if [[ $need_pip == 1 ]]; then
    log "installing awscli/boto3 with pip"
    if ! PIP_ERR="$(python3 -m pip install --quiet awscli boto3 2>&1)"; then
        log "pip install failed:"; printf '%s\n' "$PIP_ERR" | tail -n 20 | sed 's/^/  /'
    fi
    hash -r
fi
command -v aws >/dev/null 2>&1 || HAVE_AWS=0
python3 -c 'import boto3' >/dev/null 2>&1 || HAVE_BOTO3=0

# Optional clients: rclone and s3cmd from Debian when missing and apt-get is usable.
declare -A OPT_REASON=()
opt_missing=()
for c in rclone s3cmd; do command -v "$c" >/dev/null 2>&1 || opt_missing+=("$c"); done
if ((${#opt_missing[@]})); then
    if [[ "${CONFORMANCE_NO_APT:-0}" == 1 ]]; then
        for c in "${opt_missing[@]}"; do OPT_REASON[$c]="$c is not installed and CONFORMANCE_NO_APT=1"; done
    elif [[ "$(id -u)" != 0 ]]; then
        for c in "${opt_missing[@]}"; do OPT_REASON[$c]="$c is not installed and apt-get needs root"; done
    elif ! command -v apt-get >/dev/null 2>&1; then
        for c in "${opt_missing[@]}"; do OPT_REASON[$c]="$c is not installed and there is no apt-get"; done
    else
        log "installing ${opt_missing[*]} with apt-get"
        export DEBIAN_FRONTEND=noninteractive
        APT_LOG="$(mktemp)"
        if ! timeout 300 apt-get install -y -qq "${opt_missing[@]}" >"$APT_LOG" 2>&1; then
            timeout 300 apt-get update -qq >>"$APT_LOG" 2>&1 || true
            timeout 300 apt-get install -y -qq "${opt_missing[@]}" >>"$APT_LOG" 2>&1 || true
        fi
        hash -r
        for c in "${opt_missing[@]}"; do
            if ! command -v "$c" >/dev/null 2>&1; then
                OPT_REASON[$c]="$c is not installed and 'apt-get install $c' failed: $(tail -n 1 "$APT_LOG" | cut -c1-160)"
            fi
        done
        rm -f "$APT_LOG"
    fi
fi
log "aws: $( ((HAVE_AWS)) && aws --version 2>&1 | head -n 1 || echo missing)"
log "boto3: $( ((HAVE_BOTO3)) && python3 -c 'import boto3,botocore;print(boto3.__version__, "botocore", botocore.__version__)' || echo missing)"
log "rclone: $(command -v rclone >/dev/null 2>&1 && rclone version 2>/dev/null | head -n 1 || echo missing)"
log "s3cmd: $(command -v s3cmd >/dev/null 2>&1 && s3cmd --version 2>&1 | head -n 1 || echo missing)"

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

PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
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
    export CONF_AWS_BUCKET="conf-awscli-$RUN_ID"
    while read -r wf; do
        [[ -n "$wf" ]] || continue
        run_workflow "aws-cli: $wf" bash "$HERE/aws_cli.sh" "$wf"
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
log "conformance: ${#PASSED[@]} passed, ${#FAILED[@]} failed, ${#SKIPPED[@]} skipped"
if ((${#FAILED[@]})) || ! ((HAVE_AWS)) || ! ((HAVE_BOTO3)); then
    exit 1
fi
exit 0
