"""CloudFront Functions run under node: the events CloudFront hands them and a
runner that calls a generated function's handler on each."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

JSON = Any

# CloudFront Functions run strict-mode code with no require, process or console:
# the harness gives the function an empty global object of its own.
HARNESS = """\
"use strict";
const fs = require("fs");
const vm = require("vm");
const context = vm.createContext({});
const source = fs.readFileSync(process.argv[2], "utf8");
vm.runInContext('"use strict";\\n' + source, context, {filename: process.argv[2]});
const events = JSON.parse(fs.readFileSync(0, "utf8"));
process.stdout.write(JSON.stringify(events.map((event) => context.handler(event))));
"""


def run_function(function: Path, events: list[JSON]) -> list[JSON]:
    """Call the handler of the function file ``function`` on each event, in one
    node process; the harness is written beside it."""
    node = shutil.which("node")
    assert node, "node runs the generated functions (scripts/setup-dev.sh installs it)"
    harness = function.parent / "harness.js"
    if not harness.exists():
        harness.write_text(HARNESS)
    done = subprocess.run(
        [node, str(harness), str(function)],
        input=json.dumps(events),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    results: list[JSON] = json.loads(done.stdout)
    return results


def request_event(
    method: str,
    uri: str,
    headers: dict[str, str] | None = None,
    querystring: dict[str, str] | None = None,
) -> JSON:
    """A viewer-request event for ``method`` and ``uri``."""
    all_headers = {"host": "registry.example.com", **(headers or {})}
    return {
        "version": "1.0",
        "context": {"eventType": "viewer-request", "distributionId": "EDFDVBD6EXAMPLE"},
        "viewer": {"ip": "198.51.100.7"},
        "request": {
            "method": method,
            "uri": uri,
            "querystring": {k: {"value": v} for k, v in (querystring or {}).items()},
            "headers": {k: {"value": v} for k, v in all_headers.items()},
            "cookies": {},
        },
    }


def response_event(status: int, headers: dict[str, str], uri: str) -> JSON:
    """A viewer-response event: the origin answered ``uri`` with ``status``."""
    event = request_event("GET", uri)
    event["context"]["eventType"] = "viewer-response"
    event["response"] = {
        "statusCode": status,
        "statusDescription": "OK",
        "headers": {k: {"value": v} for k, v in headers.items()},
        "cookies": {},
    }
    return event
