#!/usr/bin/env bash
# `s3ferry migrate` against `rclone sync` on the same data, between the same two S3 servers on
# 127.0.0.1, in one run (issue #14 part 3). Not part of `cargo test`.
#
#   benches/migrate_vs_rclone.sh                   # 10,000 x 16 KiB and 8 x 256 MiB
#   benches/migrate_vs_rclone.sh --small 2000 --large 2 --large-mib 64   # a quick look
#
# Options: --small N (10000 objects of 16 KiB), --large N (8), --large-mib N (256),
#          --parallel N (32: s3ferry's --concurrency, rclone's --transfers and --checkers).
#
# Both upstreams are s3s-fs 0.14 serving a directory with TCP_NODELAY
# (examples/bench_s3_server.rs, the server of a `kind = "local"` provider), so neither tool
# waits on delayed ACKs. The source is seeded once (with
# rclone, from local files); then `s3ferry migrate` copies it into one bucket of the
# destination and `rclone sync` into another, each set (small, large) timed on its own.
# Needs rclone (Debian's, installed with apt-get when missing and root) and python3.
#
# rclone syncs whole buckets with `--include "<set>/**"`: s3s-fs answers HEAD of a "directory"
# key (`bench/small`, which rclone asks first for a path) with 500, and takes an empty
# `delimiter=` (rclone's recursive listing) as a delimiter.
#
# Prints one table: objects, bytes, seconds, objects/s and MB/s per tool and set, and
# s3ferry's ratio to rclone.
set -euo pipefail

SMALL=10000
LARGE=8
LARGE_MIB=256
PARALLEL=32
while [[ $# -gt 0 ]]; do
  case "$1" in
    --small) SMALL="$2"; shift 2 ;;
    --large) LARGE="$2"; shift 2 ;;
    --large-mib) LARGE_MIB="$2"; shift 2 ;;
    --parallel) PARALLEL="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
if ! command -v rclone >/dev/null; then
  if [[ $(id -u) -eq 0 ]]; then
    apt-get install -y rclone >/dev/null
  else
    echo "rclone is missing: apt-get install rclone (as root)" >&2
    exit 1
  fi
fi
# rclone (aws-sdk-go) refuses to start when AWS_CA_BUNDLE names a file it does not want;
# everything here is plain HTTP on 127.0.0.1.
unset AWS_CA_BUNDLE

(cd "$ROOT" && cargo build --release --locked --bin s3ferry --example bench_s3_server)
BIN="$ROOT/target/release/s3ferry"
SERVER="$ROOT/target/release/examples/bench_s3_server"

# shellcheck source=benches/scratch.sh
source "$ROOT/benches/scratch.sh"
KEY=bench-key
SECRET=bench-secret-0123456789

# One plain S3 server (s3s-fs, examples/bench_s3_server.rs) per upstream; its port in
# UPSTREAM_PORT (not printed: a command substitution would run it in a subshell, whose PIDS the
# cleanup never sees).
start_upstream() { # name buckets...
  local name="$1"; shift
  local port
  port=$(free_port)
  for bucket in "$@"; do mkdir -p "$WORK/$name/$bucket"; done
  "$SERVER" "$WORK/$name" "$port" "$KEY" "$SECRET" >"$WORK/$name.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 100); do
    grep -q listening "$WORK/$name.log" && break
    sleep 0.1
  done
  grep -q listening "$WORK/$name.log" || { echo "$name not listening"; cat "$WORK/$name.log"; exit 1; }
  UPSTREAM_PORT=$port
}
start_upstream src bench
SRC_PORT=$UPSTREAM_PORT
start_upstream dst migrated rcloned
DST_PORT=$UPSTREAM_PORT

export RCLONE_CONFIG_SRC_TYPE=s3 RCLONE_CONFIG_SRC_PROVIDER=Other RCLONE_CONFIG_SRC_REGION=us-east-1 \
  RCLONE_CONFIG_SRC_ENDPOINT="http://127.0.0.1:$SRC_PORT" \
  RCLONE_CONFIG_SRC_ACCESS_KEY_ID=$KEY RCLONE_CONFIG_SRC_SECRET_ACCESS_KEY=$SECRET \
  RCLONE_CONFIG_SRC_NO_CHECK_BUCKET=true
export RCLONE_CONFIG_DST_TYPE=s3 RCLONE_CONFIG_DST_PROVIDER=Other RCLONE_CONFIG_DST_REGION=us-east-1 \
  RCLONE_CONFIG_DST_ENDPOINT="http://127.0.0.1:$DST_PORT" \
  RCLONE_CONFIG_DST_ACCESS_KEY_ID=$KEY RCLONE_CONFIG_DST_SECRET_ACCESS_KEY=$SECRET \
  RCLONE_CONFIG_DST_NO_CHECK_BUCKET=true

# Seed the source: local files uploaded with rclone (not timed).
mkdir -p "$WORK/seed/small" "$WORK/seed/large"
python3 - "$WORK/seed/small" "$SMALL" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    with open(os.path.join(root, f"{i:05d}.bin"), "wb") as f:
        f.write(os.urandom(16 * 1024))
PY
for i in $(seq 1 "$LARGE"); do
  head -c "$((LARGE_MIB * 1024 * 1024))" /dev/urandom >"$WORK/seed/large/$i.bin"
done
rclone copy "$WORK/seed" src:bench --transfers "$PARALLEL" --checkers "$PARALLEL" -q
rm -rf "$WORK/seed"

cat >"$WORK/migrate.toml" <<EOF
[[credentials]]
access_key_id = "unused"
secret_access_key = "unused-secret-0123456789"
grants = "all"
[providers.old]
endpoint = "http://127.0.0.1:$SRC_PORT"
access_key_id = "$KEY"
secret_access_key = "$SECRET"
[providers.new]
endpoint = "http://127.0.0.1:$DST_PORT"
access_key_id = "$KEY"
secret_access_key = "$SECRET"
[[buckets]]
name = "bench"
provider = "new"
upstream_bucket = "migrated"
fallback = "old"
EOF

now() { date +%s.%N; }
RESULTS=()
# run TOOL SET OBJECTS BYTES command...
run() {
  local tool="$1" set="$2" objects="$3" bytes="$4"; shift 4
  local start end
  start=$(now)
  "$@" >"$WORK/$tool-$set.out" 2>"$WORK/$tool-$set.err" || { echo "$tool $set failed:"; cat "$WORK/$tool-$set.err" "$WORK/$tool-$set.out" | head -40; exit 1; }
  end=$(now)
  RESULTS+=("$tool $set $objects $bytes $start $end")
}
SMALL_BYTES=$((SMALL * 16 * 1024))
LARGE_BYTES=$((LARGE * LARGE_MIB * 1024 * 1024))
for set in small large; do
  if [[ $set == small ]]; then objects=$SMALL; bytes=$SMALL_BYTES; else objects=$LARGE; bytes=$LARGE_BYTES; fi
  run s3ferry "$set" "$objects" "$bytes" \
    env RUST_LOG=warn "$BIN" migrate --config "$WORK/migrate.toml" --bucket bench --prefix "$set/" \
    --concurrency "$PARALLEL" --max-bytes-in-flight 4GiB --json
  run rclone "$set" "$objects" "$bytes" \
    rclone sync src:bench dst:rcloned --include "$set/**" --transfers "$PARALLEL" --checkers "$PARALLEL"
done
grep -q "\"copied_objects\": $SMALL," "$WORK/s3ferry-small.out" || { echo "s3ferry did not copy every small object:"; cat "$WORK/s3ferry-small.out"; exit 1; }
grep -q "\"copied_objects\": $LARGE," "$WORK/s3ferry-large.out" || { echo "s3ferry did not copy every large object:"; cat "$WORK/s3ferry-large.out"; exit 1; }
for set in small large; do
  got=$(find "$WORK/dst/rcloned/$set" -type f | wc -l)
  want=$([[ $set == small ]] && echo "$SMALL" || echo "$LARGE")
  [[ $got -eq $want ]] || { echo "rclone copied $got of $want $set objects"; exit 1; }
done

echo
echo "migrate vs rclone sync, $(date -u +%Y-%m-%d), $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), parallel $PARALLEL"
python3 - "${RESULTS[@]}" <<'PY'
import sys
rows = {}
for r in sys.argv[1:]:
    tool, s, objects, size, start, end = r.split()
    secs = float(end) - float(start)
    rows[(tool, s)] = (int(objects), int(size), secs, int(objects) / secs, int(size) / secs / 1e6)
print(f"| set | tool | objects | MB | seconds | objects/s | MB/s |")
print(f"|---|---|---:|---:|---:|---:|---:|")
for s in ("small", "large"):
    for tool in ("s3ferry", "rclone"):
        o, b, secs, ops, mbs = rows[(tool, s)]
        rate = f"{ops:.1f}" if ops < 10 else f"{ops:.0f}"
        print(f"| {s} | {tool} | {o} | {b / 1e6:.0f} | {secs:.1f} | {rate} | {mbs:.1f} |")
    a, r = rows[("s3ferry", s)], rows[("rclone", s)]
    print(f"| {s} | s3ferry / rclone | | | | {a[3] / r[3]:.2f}x | {a[4] / r[4]:.2f}x |")
PY
