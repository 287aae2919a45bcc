"""What the Python workflow scripts (boto3_workflows.py, minio_workflows.py) share: the gateway's
address and keys from the environment run.sh sets, a registry that `@workflows("name")` fills
in order, and `main`, which runs the chosen workflows and prints one PASS or FAIL line each.

    python3 conformance/<client>_workflows.py            # every workflow, stops at the first failure
    python3 conformance/<client>_workflows.py NAME...    # only these
    python3 conformance/<client>_workflows.py --list     # workflow names

Exit 0 = pass, 1 = fail, 2 = an unknown name.
"""

import os
import sys
import time
import traceback
import uuid

EP = os.environ.get("S3_ENDPOINT", "http://127.0.0.1:8333").rstrip("/")
AK = os.environ.get("AWS_ACCESS_KEY_ID", "s3ferry-demo")
SK = os.environ.get("AWS_SECRET_ACCESS_KEY", "s3ferry-demo-secret")
REGION = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
RUN = os.environ.get("CONF_RUN_ID") or uuid.uuid4().hex[:8]
MiB = 1024 * 1024


def log(msg):
    print(f"  {msg}", flush=True)


class Workflows:
    """The workflows of one client, in the order they are declared."""

    def __init__(self, client_name):
        self.client_name = client_name
        self.entries = []

    def __call__(self, name):
        def register(fn):
            self.entries.append((name, fn))
            return fn

        return register

    def main(self, argv, banner):
        names = [n for n, _ in self.entries]
        if argv[1:] == ["--list"]:
            print("\n".join(names))
            return 0
        wanted = argv[1:] or names
        unknown = [w for w in wanted if w not in names]
        if unknown:
            print(f"unknown workflow(s): {unknown}; known: {names}", file=sys.stderr)
            return 2
        print(banner)
        for name, fn in self.entries:
            if name not in wanted:
                continue
            t0 = time.monotonic()
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - report any failure with the workflow's name
                traceback.print_exc()
                print(f"FAIL {self.client_name} {name}: {type(e).__name__}: {e}", flush=True)
                return 1
            print(f"PASS {self.client_name} {name} ({time.monotonic() - t0:.1f}s)", flush=True)
        return 0
