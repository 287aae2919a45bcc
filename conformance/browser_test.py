#!/usr/bin/env python3
"""A real browser through s3ferry: headless Chromium, driven over WebDriver (chromedriver),
loads conformance/browser/index.html from another origin on 127.0.0.1 and uploads with fetch to
a presigned PUT URL (and with an HTML POST form), then reads back with fetch. The gateway's
bucket allows exactly one page origin; the page is loaded from that origin (every step must
succeed) and from another port (the browser itself must block every fetch, and the gateway's
answers must carry no CORS headers for it).

Prints one line per step (PASS / FAIL / SKIP with a reason) and exits 0 when nothing failed,
1 when a step failed, 77 when the browser cannot start (run.sh reports that as a skip).

    python3 conformance/browser_test.py --bin target/debug/s3ferry \
        --chromium /usr/bin/chromium --chromedriver /usr/bin/chromedriver
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
KEY_ID = "browser-demo"
SECRET = "browser-demo-secret"
BUCKET = "browser-demo"
SKIP = 77
# What s3ferry answers a form upload until POST-policy form uploads are supported.

CONFIG = """
[server]
listen = "127.0.0.1:{gw_port}"
admin_listen = "127.0.0.1:0"
region = "us-east-1"

[[credentials]]
access_key_id = "{key_id}"
secret_access_key = "{secret}"
grants = [{{ buckets = ["{bucket}"], access = "write" }}]

[providers.local]
kind = "local"
root = "./data"

[[buckets]]
name = "{bucket}"
provider = "local"
[[buckets.cors]]
allowed_origins = ["{allowed_origin}"]
allowed_methods = ["GET", "PUT", "POST", "HEAD"]
allowed_headers = ["*"]
expose_headers = ["ETag"]
max_age_secs = 5
"""

results = []  # (verdict, step, detail)


def report(verdict, step, detail=""):
    results.append((verdict, step, detail))
    print(f"{verdict:4}  {step}" + (f": {detail}" if detail else ""), flush=True)


def check(step, condition, detail):
    report("PASS" if condition else "FAIL", step, "" if condition else detail)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, process, seconds, what):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with status {process.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on port {port} within {seconds} s")


def stop(process):
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def http(method, url, body=None, headers=None, timeout=30):
    """Status, headers and body of one request; HTTP errors are answers too."""
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


class WebDriver:
    """The few WebDriver commands this test needs, over chromedriver's HTTP API."""

    def __init__(self, port, chromium):
        self.base = f"http://127.0.0.1:{port}"
        capabilities = {
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {
                        "binary": chromium,
                        # --no-sandbox: Chromium's sandbox cannot run as root (CI runs as root).
                        "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
                    },
                }
            }
        }
        status, _, body = http("POST", f"{self.base}/session", capabilities, {"Content-Type": "application/json"}, 60)
        answer = json.loads(body or b"{}").get("value", {})
        if status != 200 or "sessionId" not in answer:
            raise RuntimeError(f"the browser did not start: {answer.get('message', body[:300])}")
        self.session = f"{self.base}/session/{answer['sessionId']}"
        self.command("POST", "/timeouts", {"script": 20000, "pageLoad": 20000})

    def command(self, method, path, body=None):
        status, _, answer = http(method, self.session + path, body, {"Content-Type": "application/json"}, 60)
        value = json.loads(answer or b"{}").get("value")
        if status != 200:
            raise RuntimeError(f"WebDriver {path} failed ({status}): {value}")
        return value

    def run_async(self, script, *args):
        return self.command("POST", "/execute/async", {"script": script, "args": list(args)})

    def quit(self):
        try:
            http("DELETE", self.session, timeout=10)
        except OSError:
            pass


def s3_client(endpoint):
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=KEY_ID,
        aws_secret_access_key=SECRET,
        region_name="us-east-1",
        # SigV4 presigned URLs (boto3 makes SigV2 ones for custom endpoints otherwise), and no
        # checksum parameters the browser would have to match.
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
        ),
    )


def run_page(driver, s3, page_url, key, form_key):
    params = {
        "putUrl": s3.generate_presigned_url("put_object", Params={"Bucket": BUCKET, "Key": key}, ExpiresIn=300),
        "getUrl": s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": key}, ExpiresIn=300),
        "text": f"hello from {page_url}",
        "formText": f"a form upload from {page_url}",
    }
    if form_key:
        # 201: the answer has a body, so the page's frame loads it (a 204 does not navigate).
        post = s3.generate_presigned_post(
            BUCKET,
            form_key,
            Fields={"success_action_status": "201"},
            Conditions=[{"success_action_status": "201"}],
            ExpiresIn=300,
        )
        post["get_url"] = s3.generate_presigned_url(
            "get_object", Params={"Bucket": BUCKET, "Key": form_key}, ExpiresIn=300
        )
        params["form"] = post
    driver.command("POST", "/url", {"url": page_url})
    result = driver.run_async(
        "const done = arguments[arguments.length - 1];"
        "s3ferryBrowserDemo(arguments[0]).then(done, (e) => done({ error: String(e) }));",
        params,
    )
    return params, result or {}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", required=True)
    parser.add_argument("--chromium", required=True)
    parser.add_argument("--chromedriver", required=True)
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="s3ferry-browser.")
    gw_port, allowed_port, denied_port, driver_port = (free_port() for _ in range(4))
    endpoint = f"http://127.0.0.1:{gw_port}"
    allowed_origin = f"http://127.0.0.1:{allowed_port}"
    denied_origin = f"http://127.0.0.1:{denied_port}"
    with open(os.path.join(work, "config.toml"), "w") as f:
        f.write(
            CONFIG.format(
                gw_port=gw_port, key_id=KEY_ID, secret=SECRET, bucket=BUCKET, allowed_origin=allowed_origin
            )
        )
    processes = []
    driver = None
    log = open(os.path.join(work, "processes.log"), "w")
    try:
        gateway = subprocess.Popen(
            [os.path.abspath(args.bin), "serve", "--config", os.path.join(work, "config.toml")],
            cwd=work,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "S3FERRY_LISTEN": f"127.0.0.1:{gw_port}", "NO_COLOR": "1"},
        )
        processes.append(gateway)
        for port in (allowed_port, denied_port):
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                     "--directory", os.path.join(HERE, "browser")],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        chromedriver = subprocess.Popen(
            [args.chromedriver, f"--port={driver_port}"], stdout=log, stderr=subprocess.STDOUT
        )
        processes.append(chromedriver)
        wait_for_port(gw_port, gateway, 20, "the gateway")
        for process, port in zip(processes[1:3], (allowed_port, denied_port)):
            wait_for_port(port, process, 10, "the page server")
        try:
            wait_for_port(driver_port, chromedriver, 10, "chromedriver")
            driver = WebDriver(driver_port, args.chromium)
        except (RuntimeError, OSError) as e:
            print("SKIP: " + " ".join(str(e).split()), flush=True)
            return SKIP

        s3 = s3_client(endpoint)
        run = uuid.uuid4().hex[:8]

        # 1. The page's origin is allowed: every step succeeds, and the page reads the ETag the
        #    rule exposes.
        key, form_key = f"allowed-{run}.txt", f"allowed-form-{run}.txt"
        params, seen = run_page(driver, s3, f"{allowed_origin}/index.html", key, form_key)
        check("allowed origin: fetch PUT to a presigned URL", seen.get("put", {}).get("ok"), seen)
        check("allowed origin: the page reads the exposed ETag", bool(seen.get("put", {}).get("etag")), seen)
        stored = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode()
        check("allowed origin: the object holds what the page sent", stored == params["text"], stored)
        check(
            "allowed origin: fetch GET reads it back",
            seen.get("get", {}).get("ok") and seen["get"].get("body") == params["text"],
            seen,
        )
        check(
            "allowed origin: HTML POST form upload, read back with fetch",
            seen.get("formGet", {}).get("ok") and seen["formGet"].get("body") == params["formText"],
            seen,
        )

        # 2. Another origin: the browser blocks every fetch (a network error for the page); the
        #    PUT's preflight was refused, so the PUT itself was never sent.
        key, form_key = f"denied-{run}.txt", f"denied-form-{run}.txt"
        params, seen = run_page(driver, s3, f"{denied_origin}/index.html", key, form_key)
        check("other origin: fetch PUT is blocked", "networkError" in seen.get("put", {}), seen)
        seen_with_form = seen
        try:
            s3.head_object(Bucket=BUCKET, Key=key)
            check("other origin: the blocked PUT never reached the gateway", False, "the object exists")
        except s3.exceptions.ClientError as e:
            code = e.response.get("Error", {}).get("Code")
            check("other origin: the blocked PUT never reached the gateway", code in ("404", "NoSuchKey"), code)
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"put by the test")
        params, seen = run_page(driver, s3, f"{denied_origin}/index.html", key, None)
        check("other origin: fetch GET of an existing object is blocked", "networkError" in seen.get("get", {}), seen)
        # A form post is a navigation, which CORS does not govern: it lands; reading it back is blocked.
        check(
            "other origin: reading a form upload back is blocked",
            "networkError" in seen_with_form.get("formGet", {}),
            seen_with_form,
        )

        # 3. What the gateway told the browser about the other origin: no CORS headers.
        status, headers, _ = http(
            "OPTIONS",
            params["putUrl"],
            headers={"Origin": denied_origin, "Access-Control-Request-Method": "PUT"},
        )
        check(
            "other origin: the preflight is refused without CORS headers",
            status == 403 and headers.get("Access-Control-Allow-Origin") is None,
            (status, dict(headers)),
        )
        status, headers, _ = http("GET", params["getUrl"], headers={"Origin": denied_origin})
        check(
            "other origin: the GET answer carries no CORS headers",
            status == 200 and headers.get("Access-Control-Allow-Origin") is None,
            (status, dict(headers)),
        )
        status, headers, _ = http("GET", params["getUrl"], headers={"Origin": allowed_origin})
        check(
            "allowed origin: the same GET answer allows it",
            status == 200 and headers.get("Access-Control-Allow-Origin") == allowed_origin,
            (status, dict(headers)),
        )
    finally:
        if driver:
            driver.quit()
        for process in reversed(processes):
            stop(process)
        log.close()
        if any(v == "FAIL" for v, _, _ in results):
            with open(os.path.join(work, "processes.log")) as f:
                print("--- gateway, page servers and chromedriver output (last 40 lines) ---")
                print("".join(f.readlines()[-40:]))
        subprocess.run(["rm", "-rf", work], check=False)

    failed = sum(1 for v, _, _ in results if v == "FAIL")
    passed = sum(1 for v, _, _ in results if v == "PASS")
    skipped = sum(1 for v, _, _ in results if v == "SKIP")
    print(f"browser: {passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
