#!/usr/bin/env bash
# A real browser through s3ferry (conformance/browser_test.py): headless Chromium loads
# conformance/browser/index.html from another origin and uploads and reads with fetch (and an
# HTML POST form); the bucket's CORS rule must let exactly its origin through.
#
#   S3FERRY_BIN=target/debug/s3ferry bash conformance/browser.sh
#
# Installs Debian's chromium and chromium-driver when they are missing (as root, with apt-get).
# Exits 0 when every step passed, 1 when one failed, 77 (a skip, with the reason on the last
# line) when the browser cannot be had or cannot start.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BIN="${S3FERRY_BIN:?set S3FERRY_BIN to the s3ferry binary}"

find_browser() {
    CHROMIUM="$(command -v chromium || command -v chromium-browser || true)"
    CHROMEDRIVER="$(command -v chromedriver || true)"
    [[ -n "$CHROMIUM" && -n "$CHROMEDRIVER" ]]
}

if ! find_browser; then
    if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
        echo "SKIP: chromium and chromium-driver are not installed, and apt-get (as root) is not available to install them"
        exit 77
    fi
    echo "installing chromium and chromium-driver with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    APT_LOG="$(mktemp)"
    if ! timeout 600 apt-get install -y -qq chromium chromium-driver >"$APT_LOG" 2>&1; then
        timeout 300 apt-get update -qq >>"$APT_LOG" 2>&1 || true
        timeout 600 apt-get install -y -qq chromium chromium-driver >>"$APT_LOG" 2>&1 || true
    fi
    hash -r
    if ! find_browser; then
        echo "SKIP: 'apt-get install chromium chromium-driver' failed: $(tail -n 1 "$APT_LOG" | cut -c1-160)"
        rm -f "$APT_LOG"
        exit 77
    fi
    rm -f "$APT_LOG"
fi
echo "browser: $("$CHROMIUM" --version 2>/dev/null | head -n 1); driver: $("$CHROMEDRIVER" --version | head -n 1)"
exec timeout --kill-after=5 120 python3 "$HERE/browser_test.py" --bin "$BIN" --chromium "$CHROMIUM" --chromedriver "$CHROMEDRIVER"
