#!/usr/bin/env bash
# The comparison harness (docs/performance.md): one command that starts on 127.0.0.1 an upstream
# that does not hide per-request cost, s3ferry in front of it, nginx (the plain-hop baseline)
# and s3s-proxy (a Rust S3 proxy that re-signs) in front of the same upstream, drives each path
# in turn case by case, and prints a table; the same figures go to target/bench/compare.json
# and target/bench/compare.md. It reports; it never fails a test suite. Not part of `cargo test`.
#
#   benches/compare.sh            # every case, 6 s per case and path in 3 rounds (about 15 minutes)
#   benches/compare.sh --quick    # a subset, 1.5 s per case and path (about 2 minutes)
#
# Options:
#   --quick                  the short version
#   --secs N                 seconds per case and path (default 6, quick 1.5)
#   --rounds N               split them into N rounds, the paths taking turns (default 3, quick 1)
#   --only TEXT              only the cases whose name contains TEXT ("GET 4 KiB", "c=128", "LIST")
#   --max-case-mib N         a round also ends once it has moved this much (default 6144)
#   --idle-connections N     keep-alive connections for the memory measure (default 1000; 0: none)
#   --s3s-proxy-budget SECS  time allowed for `cargo install s3s-proxy` when missing (default 900)
#   --no-nginx, --no-s3s-proxy   leave a path out (reported as skipped)
#   --symbols                build with line tables and unstripped (into target/symbols), so that
#                            `perf record -g -p <s3ferry pid>` names s3ferry's own frames
#
# What it needs: cargo; nginx (installed with apt-get when missing and running as root, else the
# nginx path is skipped with the reason); s3s-proxy 0.14.1 (on PATH or under target/bench/
# s3s-proxy; else `cargo install --locked` within the budget, or skipped with the reason).
# The upstream is s3s-fs with TCP_NODELAY (benches/compare/upstream.rs): the s3s-fs binary leaves
# Nagle on and every small answer then waits about 40 ms for a delayed ACK.
set -euo pipefail

QUICK=()
LOADGEN_ARGS=()
S3S_PROXY_BUDGET=900
WANT_NGINX=1
WANT_S3S_PROXY=1
SYMBOLS=0
usage() { sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) QUICK=(--quick); shift ;;
    --secs|--rounds|--only|--max-case-mib|--idle-connections) LOADGEN_ARGS+=("$1" "$2"); shift 2 ;;
    --s3s-proxy-budget) S3S_PROXY_BUDGET="$2"; shift 2 ;;
    --no-nginx) WANT_NGINX=0; shift ;;
    --no-s3s-proxy) WANT_S3S_PROXY=0; shift ;;
    --symbols) SYMBOLS=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="$ROOT/target/bench"
RUN="$OUT/run"
mkdir -p "$OUT"
rm -rf "$RUN"
mkdir -p "$RUN/data" "$RUN/nginx"
SKIPS=()
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$RUN/data"
}
trap cleanup EXIT

KEY=bench
SECRET=bench-secret
BUCKET=bench

# nginx: Debian's package, installed when missing and we may.
NGINX=""
if [[ $WANT_NGINX -eq 1 ]]; then
  NGINX="$(command -v nginx || true)"
  [[ -z "$NGINX" && -x /usr/sbin/nginx ]] && NGINX=/usr/sbin/nginx
  if [[ -z "$NGINX" ]]; then
    if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null; then
      echo "== installing nginx (apt-get)"
      if timeout 300 apt-get install -y nginx-light >"$OUT/nginx-install.log" 2>&1 \
        || timeout 300 apt-get install -y nginx >>"$OUT/nginx-install.log" 2>&1; then
        NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
      else
        SKIPS+=(--skip "nginx=apt-get install nginx failed (target/bench/nginx-install.log)")
      fi
    else
      SKIPS+=(--skip "nginx=not installed, and installing it needs root and apt-get")
    fi
  fi
else
  SKIPS+=(--skip "nginx=left out (--no-nginx)")
fi

# s3s-proxy: the release that matches our s3s (0.14; later ones need a newer rustc).
S3S_PROXY=""
if [[ $WANT_S3S_PROXY -eq 1 ]]; then
  S3S_PROXY="$(command -v s3s-proxy || true)"
  [[ -z "$S3S_PROXY" && -x "$OUT/s3s-proxy/bin/s3s-proxy" ]] && S3S_PROXY="$OUT/s3s-proxy/bin/s3s-proxy"
  if [[ -z "$S3S_PROXY" ]]; then
    echo "== installing s3s-proxy 0.14.1 (cargo install, at most ${S3S_PROXY_BUDGET} s)"
    started=$(date +%s)
    if timeout "$S3S_PROXY_BUDGET" cargo install s3s-proxy --locked --version 0.14.1 --root "$OUT/s3s-proxy" \
      >"$OUT/s3s-proxy-install.log" 2>&1; then
      S3S_PROXY="$OUT/s3s-proxy/bin/s3s-proxy"
    else
      rc=$?
      took=$(( $(date +%s) - started ))
      if [[ $rc -eq 124 ]]; then
        SKIPS+=(--skip "s3s-proxy=cargo install s3s-proxy did not finish within the ${S3S_PROXY_BUDGET} s budget")
      else
        SKIPS+=(--skip "s3s-proxy=cargo install s3s-proxy failed after ${took} s (target/bench/s3s-proxy-install.log)")
      fi
    fi
  fi
else
  SKIPS+=(--skip "s3s-proxy=left out (--no-s3s-proxy)")
fi

BUILD_DIR="$ROOT/target"
if [[ $SYMBOLS -eq 1 ]]; then
  # The release profile strips symbols; a profile of a stripped binary cannot name our frames.
  BUILD_DIR="$ROOT/target/symbols"
  export CARGO_PROFILE_RELEASE_STRIP=false CARGO_PROFILE_RELEASE_DEBUG=line-tables-only
fi
echo "== building (release, --features bench-tools, into ${BUILD_DIR#"$ROOT"/})"
(cd "$ROOT" && CARGO_TARGET_DIR="$BUILD_DIR" cargo build --release --locked --features bench-tools --bins)
BIN="$BUILD_DIR/release"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nothing listens on 127.0.0.1:$1" >&2
  return 1
}

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
UP_PORT=$(free_port)
"$BIN/s3ferry-bench-upstream" --root "$RUN/data" --listen "127.0.0.1:$UP_PORT" --key "$KEY" --secret "$SECRET" \
  --bucket "$BUCKET" >"$RUN/upstream.log" 2>&1 &
UP_PID=$!
PIDS+=("$UP_PID")
wait_port "$UP_PORT"
PATH_ARGS=(--path "direct=127.0.0.1:$UP_PORT@$UP_PID")

GW_PORT=$(free_port); GW_ADMIN=$(free_port)
cat >"$RUN/s3ferry.toml" <<EOF
[server]
listen = "127.0.0.1:$GW_PORT"
admin_listen = "127.0.0.1:$GW_ADMIN"
max_connections = 4096
[[credentials]]
access_key_id = "$KEY"
secret_access_key = "$SECRET"
grants = "all"
[providers.up]
endpoint = "http://127.0.0.1:$UP_PORT"
access_key_id = "$KEY"
secret_access_key = "$SECRET"
[[buckets]]
name = "$BUCKET"
provider = "up"
EOF
RUST_LOG=warn "$BIN/s3ferry" serve --config "$RUN/s3ferry.toml" >"$RUN/s3ferry.log" 2>&1 &
GW_PID=$!
PIDS+=("$GW_PID")
wait_port "$GW_PORT"
PATH_ARGS+=(--path "s3ferry=127.0.0.1:$GW_PORT@$GW_PID")

if [[ -n "$NGINX" ]]; then
  NGINX_PORT=$(free_port)
  USER_LINE=""
  [[ "$(id -u)" -eq 0 ]] && USER_LINE="user root;"
  cat >"$RUN/nginx/nginx.conf" <<EOF
$USER_LINE
worker_processes auto;
pid $RUN/nginx/nginx.pid;
error_log $RUN/nginx/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 120s;
  client_body_temp_path $RUN/nginx/client_body;
  proxy_temp_path $RUN/nginx/proxy;
  fastcgi_temp_path $RUN/nginx/fastcgi;
  uwsgi_temp_path $RUN/nginx/uwsgi;
  scgi_temp_path $RUN/nginx/scgi;
  upstream s3 { server 127.0.0.1:$UP_PORT; keepalive 256; }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    client_max_body_size 0;
    location / {
      proxy_pass http://s3;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      # The client signed this Host: the upstream checks the signature against it.
      proxy_set_header Host \$http_host;
      proxy_request_buffering off;
      proxy_buffer_size 256k;
      proxy_buffers 8 256k;
      proxy_busy_buffers_size 512k;
      proxy_max_temp_file_size 0;
      proxy_read_timeout 300s;
      proxy_send_timeout 300s;
    }
  }
}
EOF
  "$NGINX" -p "$RUN/nginx" -c "$RUN/nginx/nginx.conf" -g 'daemon off;' >"$RUN/nginx/stdout.log" 2>&1 &
  NGINX_PID=$!
  PIDS+=("$NGINX_PID")
  wait_port "$NGINX_PORT"
  sleep 0.3
  NGINX_PIDS="$NGINX_PID"
  for child in $(pgrep -P "$NGINX_PID" || true); do NGINX_PIDS="$NGINX_PIDS,$child"; done
  PATH_ARGS+=(--path "nginx=127.0.0.1:$NGINX_PORT@$NGINX_PIDS")
fi

if [[ -n "$S3S_PROXY" ]]; then
  PROXY_PORT=$(free_port)
  env -u AWS_CA_BUNDLE -u AWS_PROFILE AWS_ACCESS_KEY_ID="$KEY" AWS_SECRET_ACCESS_KEY="$SECRET" AWS_REGION=us-east-1 \
    AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null RUST_LOG=warn \
    "$S3S_PROXY" --host 127.0.0.1 --port "$PROXY_PORT" --endpoint-url "http://127.0.0.1:$UP_PORT" >"$RUN/s3s-proxy.log" 2>&1 &
  PROXY_PID=$!
  PIDS+=("$PROXY_PID")
  if wait_port "$PROXY_PORT"; then
    PATH_ARGS+=(--path "s3s-proxy=127.0.0.1:$PROXY_PORT@$PROXY_PID")
  else
    SKIPS+=(--skip "s3s-proxy=did not start (target/bench/run/s3s-proxy.log)")
  fi
fi

NOTE="s3ferry at $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)$(cd "$ROOT" && git diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)'); nginx $("${NGINX:-false}" -v 2>&1 | sed 's#.*/##' || true); s3s-proxy ${S3S_PROXY:+0.14.1}; upstream s3s-fs 0.14.1 with TCP_NODELAY; rustc $(rustc --version | cut -d' ' -f2)."
echo "== running"
"$BIN/s3ferry-loadgen" "${PATH_ARGS[@]}" "${SKIPS[@]}" "${QUICK[@]}" "${LOADGEN_ARGS[@]}" \
  --key "$KEY" --secret "$SECRET" --bucket "$BUCKET" --clk-tck "$(getconf CLK_TCK)" --note "$NOTE" \
  --json "$OUT/compare.json" --markdown "$OUT/compare.md" || echo "the load generator failed (exit $?)"
echo "== written: target/bench/compare.json, target/bench/compare.md"
exit 0
