#!/usr/bin/env bash
# Load and soak: the release s3ferry in front of a real upstream on 127.0.0.1, driven by wrk with
# presigned URLs (small GET / PUT / LIST). Not part of `cargo test`.
#
#   benches/soak.sh                      # 1,000 connections for 60 s, then a 10-minute soak
#   benches/soak.sh --soak-secs 30       # a short soak
#
# Options: --connections N (1000), --load-secs N (60), --soak-secs N (600),
#          --soak-connections N (50), --soak-delay-ms N (100: each soak connection waits this long
#          between requests, so the soak rate is about connections * 1000 / (delay + latency)),
#          --settle-secs N (65: idle wait before the last descriptor count, longer than the
#          provider pool's 60 s idle timeout).
#
# The upstream is a second s3ferry serving a directory (`kind = "local"`, an in-process s3s-fs
# with TCP_NODELAY), so the gateway under test talks HTTP to a real S3 server. Needs wrk
# (installed with apt-get when missing) and python3 with boto3 (to presign the URLs).
#
# Reports: requests, errors (socket errors and non-2xx answers), p50/p99 latency per phase;
# the gateway's RSS at the start, peak and end; its open descriptors before, right after the
# load, and after the settle wait.
set -euo pipefail

CONNECTIONS=1000
LOAD_SECS=60
SOAK_SECS=600
SOAK_CONNECTIONS=50
SOAK_DELAY_MS=100
SETTLE_SECS=65
while [[ $# -gt 0 ]]; do
  case "$1" in
    --connections) CONNECTIONS="$2"; shift 2 ;;
    --load-secs) LOAD_SECS="$2"; shift 2 ;;
    --soak-secs) SOAK_SECS="$2"; shift 2 ;;
    --soak-connections) SOAK_CONNECTIONS="$2"; shift 2 ;;
    --soak-delay-ms) SOAK_DELAY_MS="$2"; shift 2 ;;
    --settle-secs) SETTLE_SECS="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
if ! command -v wrk >/dev/null; then
  apt-get install -y wrk >/dev/null
fi
python3 -c "import boto3" 2>/dev/null || pip install boto3 >/dev/null

(cd "$ROOT" && cargo build --release --locked --bin s3ferry)
BIN="$ROOT/target/release/s3ferry"

# shellcheck source=benches/scratch.sh
source "$ROOT/benches/scratch.sh"
UP_PORT=$(free_port); UP_ADMIN=$(free_port); GW_PORT=$(free_port); GW_ADMIN=$(free_port)
mkdir -p "$WORK/data"

cat >"$WORK/upstream.toml" <<EOF
[server]
listen = "127.0.0.1:$UP_PORT"
admin_listen = "127.0.0.1:$UP_ADMIN"
max_connections = 4096
[[credentials]]
access_key_id = "soak-upstream"
secret_access_key = "soak-upstream-secret"
grants = "all"
[providers.disk]
kind = "local"
root = "$WORK/data"
[[buckets]]
name = "soak"
provider = "disk"
EOF

cat >"$WORK/gateway.toml" <<EOF
[server]
listen = "127.0.0.1:$GW_PORT"
admin_listen = "127.0.0.1:$GW_ADMIN"
max_connections = 4096
[[credentials]]
access_key_id = "soak-client"
secret_access_key = "soak-client-secret"
grants = "all"
[providers.up]
endpoint = "http://127.0.0.1:$UP_PORT"
access_key_id = "soak-upstream"
secret_access_key = "soak-upstream-secret"
dialect = "minio"
[[buckets]]
name = "soak"
provider = "up"
EOF

ulimit -n 65536 2>/dev/null || true
RUST_LOG=warn "$BIN" serve --config "$WORK/upstream.toml" >"$WORK/upstream.log" 2>&1 &
PIDS+=($!)
RUST_LOG=warn "$BIN" serve --config "$WORK/gateway.toml" >"$WORK/gateway.log" 2>&1 &
GW_PID=$!
PIDS+=($GW_PID)
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$GW_ADMIN/readyz" >/dev/null && break
  sleep 0.1
done
curl -sf "http://127.0.0.1:$GW_ADMIN/readyz" >/dev/null || { echo "gateway not ready"; cat "$WORK/gateway.log"; exit 1; }

# Seed 100 objects of 4 KiB through the gateway, and presign the mix.
python3 - "$GW_PORT" "$WORK/mix.lua" <<'PY'
import sys, boto3
from botocore.config import Config
port, out = sys.argv[1], sys.argv[2]
s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                  aws_access_key_id="soak-client", aws_secret_access_key="soak-client-secret",
                  config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))
body = b"x" * 4096
for i in range(100):
    s3.put_object(Bucket="soak", Key=f"obj/{i:03d}", Body=body)
def path(url):
    return url.split(f"127.0.0.1:{port}", 1)[1]
week = 7 * 24 * 3600
entries = []
for i in range(100):
    get = path(s3.generate_presigned_url("get_object", Params={"Bucket": "soak", "Key": f"obj/{i:03d}"}, ExpiresIn=week))
    entries += [("GET", get)] * 6
    put = path(s3.generate_presigned_url("put_object", Params={"Bucket": "soak", "Key": f"put/{i:03d}"}, ExpiresIn=week))
    entries += [("PUT", put)] * 3
    lst = path(s3.generate_presigned_url("list_objects_v2", Params={"Bucket": "soak", "Prefix": f"obj/{i // 10}", "MaxKeys": 20}, ExpiresIn=week))
    entries += [("GET", lst)]
with open(out, "w") as f:
    f.write("local entries = {\n")
    for method, p in entries:
        f.write(f'  {{"{method}", "{p}"}},\n')
    f.write("}\n")
PY
cat >>"$WORK/mix.lua" <<'LUA'
local body = string.rep("y", 4096)
local delay_ms = tonumber(os.getenv("SOAK_DELAY_MS") or "0")
local threads = {}
function setup(thread)
  table.insert(threads, thread)
end
function init(args)
  math.randomseed(os.time() + (tonumber(tostring({}):sub(8), 16) or 0))
  bad = 0
end
function request()
  local e = entries[math.random(#entries)]
  if e[1] == "PUT" then
    return wrk.format("PUT", e[2], {["Content-Type"] = "application/octet-stream"}, body)
  end
  return wrk.format("GET", e[2])
end
function response(status, headers, body)
  if status < 200 or status > 299 then bad = bad + 1 end
end
function delay()
  return delay_ms
end
function done(summary, latency, requests)
  local bad_total = 0
  for _, t in ipairs(threads) do bad_total = bad_total + (t:get("bad") or 0) end
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d non2xx=%d connect=%d read=%d write=%d timeout=%d p50_ms=%.2f p99_ms=%.2f max_ms=%.2f secs=%.1f\n",
    summary.requests, bad_total, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    summary.duration / 1e6))
end
LUA

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$GW_PID/status"; }
fds() { ls "/proc/$GW_PID/fd" | wc -l; }
PEAK_FILE="$WORK/peak"
echo 0 >"$PEAK_FILE"
( peak=0
  while kill -0 "$GW_PID" 2>/dev/null; do
    r=$(rss_kib 2>/dev/null || echo 0)
    if [[ "$r" -gt "$peak" ]]; then peak=$r; echo "$peak" >"$PEAK_FILE"; fi
    echo "$(date +%s) $r $(fds 2>/dev/null || echo 0)" >>"$WORK/samples"
    sleep 1
  done ) &
PIDS+=($!)

START_RSS=$(rss_kib); START_FDS=$(fds)
echo "gateway pid $GW_PID: rss ${START_RSS} KiB, fds ${START_FDS} before the load"

URL="http://127.0.0.1:$GW_PORT"
echo "== load: $CONNECTIONS connections, ${LOAD_SECS} s"
SOAK_DELAY_MS=0 wrk -t2 -c"$CONNECTIONS" -d"${LOAD_SECS}s" --timeout 10s --latency -s "$WORK/mix.lua" "$URL" >"$WORK/load.txt"
cat "$WORK/load.txt"
LOAD=$(grep '^RESULT' "$WORK/load.txt")
LOAD_FDS=$(fds); LOAD_RSS=$(rss_kib)
echo "after the load: rss ${LOAD_RSS} KiB, fds ${LOAD_FDS}"

echo "== soak: $SOAK_CONNECTIONS connections, ${SOAK_DELAY_MS} ms between requests each, ${SOAK_SECS} s"
SOAK_START=$(date +%s)
SOAK_DELAY_MS="$SOAK_DELAY_MS" wrk -t2 -c"$SOAK_CONNECTIONS" -d"${SOAK_SECS}s" --timeout 10s --latency -s "$WORK/mix.lua" "$URL" >"$WORK/soak.txt"
cat "$WORK/soak.txt"
SOAK=$(grep '^RESULT' "$WORK/soak.txt")
SOAK_END=$(date +%s)
END_FDS=$(fds); END_RSS=$(rss_kib)
echo "after the soak: rss ${END_RSS} KiB, fds ${END_FDS}; idle for ${SETTLE_SECS} s"
sleep "$SETTLE_SECS"
SETTLED_FDS=$(fds); SETTLED_RSS=$(rss_kib)
PEAK_RSS=$(cat "$PEAK_FILE")

echo
echo "== summary"
echo "load ($CONNECTIONS connections, ${LOAD_SECS} s): $LOAD"
echo "soak ($SOAK_CONNECTIONS connections, ${SOAK_DELAY_MS} ms apart, ${SOAK_SECS} s): $SOAK"
echo "rss KiB: start $START_RSS, peak $PEAK_RSS, after load $LOAD_RSS, after soak $END_RSS, settled $SETTLED_RSS"
echo "fds: before $START_FDS, after load $LOAD_FDS, after soak $END_FDS, settled $SETTLED_FDS"
# RSS over the soak: its first and last sample, its range, and one sample a minute.
awk -v from="$SOAK_START" -v to="$SOAK_END" '
  $1 >= from && $1 <= to {
    n++; if (n == 1) { first = $2; min = $2; max = $2; next_at = $1 }
    if ($2 < min) min = $2; if ($2 > max) max = $2; last = $2
    if ($1 >= next_at) { minutes = minutes " " $2; next_at = $1 + 60 }
  }
  END { printf "rss KiB during the soak: first %d, min %d, max %d, last %d; each minute:%s\n", first, min, max, last, minutes }
' "$WORK/samples"
echo "gateway warnings logged: $(grep -c '' "$WORK/gateway.log" || true)"
errors() { sed -E 's/.*non2xx=([0-9]+) connect=([0-9]+) read=([0-9]+) write=([0-9]+) timeout=([0-9]+).*/\1 \2 \3 \4 \5/' <<<"$1" | awk '{print $1+$2+$3+$4+$5}'; }
TOTAL_ERRORS=$(( $(errors "$LOAD") + $(errors "$SOAK") ))
echo "errors: $TOTAL_ERRORS"
[[ "$TOTAL_ERRORS" -eq 0 ]]
