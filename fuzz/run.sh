#!/usr/bin/env bash
# Builds every fuzz target and runs each in turn for SECONDS (default 20), one libFuzzer job
# each (the machines have 2 cores).  Usage: fuzz/run.sh [SECONDS]
#
# Needs the nightly toolchain (installed beside stable) and cargo-fuzz, which it installs from
# crates.io when missing. FUZZ_BUILD_FLAGS adds cargo-fuzz build/run flags: CI passes
# "--dev --sanitizer none" for its smoke run. Measured on the 2-core machine (2026-11-30):
# installing cargo-fuzz 21 s; building the targets from clean 8 min 04 s by default (release,
# AddressSanitizer; s3ferry's whole dependency tree is built again for it) or 2 min 18 s with
# "--dev --sanitizer none" (which then runs about 5-10 times slower: fine for 20 s, not for
# the long runs); then SECONDS per target plus a few seconds.
# The corpora grow in fuzz/corpus/<target>/ (git-ignored), seeded from tests/fixtures/xml and
# fuzz/seeds/; a
# crash is saved in fuzz/artifacts/<target>/ and makes this script exit non-zero after every
# target has run. Each target's log goes to ${FUZZ_LOG_DIR:-fuzz/target/logs}/<target>.log.
set -uo pipefail
cd "$(dirname "$0")"

seconds="${1:-20}"
read -r -a flags <<<"${FUZZ_BUILD_FLAGS:-}"
logs="${FUZZ_LOG_DIR:-$PWD/target/logs}"
mkdir -p "$logs"

if ! rustup toolchain list | grep -q '^nightly'; then
    echo "fuzz/run.sh: the nightly toolchain is missing (rustup toolchain install nightly)" >&2
    exit 1
fi
if ! command -v cargo-fuzz >/dev/null; then
    echo "==> installing cargo-fuzz from crates.io"
    cargo install cargo-fuzz --locked --version 0.13.2 || exit 1
fi

echo "==> building the fuzz targets"
cargo +nightly fuzz build "${flags[@]}" || exit 1

# Seeds: the golden XML files (the rewriters' and parsers' real inputs). rewrite_xml reads an
# options byte first.
for target in rewrite_xml parse_xml; do
    mkdir -p "corpus/$target"
done
for f in ../tests/fixtures/xml/*.xml; do
    name="$(basename "$f")"
    cp -n "$f" "corpus/parse_xml/$name"
    [ -e "corpus/rewrite_xml/$name" ] || { printf '\x08'; cat "$f"; } >"corpus/rewrite_xml/$name"
done

# Hand-written seeds (fuzz/seeds/<target>/), e.g. valid aws-chunked bodies, which the fuzzer
# would hardly find alone (each needs a matching CRC32 trailer).
for dir in seeds/*/; do
    target="$(basename "$dir")"
    mkdir -p "corpus/$target"
    cp -n "$dir"* "corpus/$target/"
done

failed=()
for target in $(cargo +nightly fuzz list); do
    echo "==> $target: ${seconds}s"
    mkdir -p "corpus/$target"
    if cargo +nightly fuzz run "${flags[@]}" "$target" -- -max_total_time="$seconds" -print_final_stats=1 \
        >"$logs/$target.log" 2>&1; then
        grep -E '^#[0-9]+ *DONE|stat::number_of_executed_units|stat::peak_rss' "$logs/$target.log" | tail -3
    else
        echo "!! $target found a problem; see $logs/$target.log and fuzz/artifacts/$target/"
        tail -30 "$logs/$target.log"
        failed+=("$target")
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz/run.sh: failing targets: ${failed[*]}" >&2
    exit 1
fi
echo "==> every fuzz target ran ${seconds}s without a finding"
