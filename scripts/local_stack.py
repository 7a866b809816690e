"""What the Python scripts share about the local stack: HTTP calls to its API, a free
port, and scripts/dev started and waited for (its `API:` line)."""
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.path.join(ROOT, ".venv")


def use_venv():
    """Runs this script again under the project's virtual environment (scripts/test and
    scripts/dev make it; it has boto3 and cryptography) unless it runs there already."""
    python = os.path.join(VENV, "bin", "python")
    if os.path.realpath(sys.prefix) != os.path.realpath(VENV) and os.path.exists(python):
        os.execv(python, [python, *sys.argv])


def call(url, body=None, timeout=60, method=None, headers=None):
    """One JSON request: (status, body bytes, seconds). A refused, reset or timed-out
    connection is status None with the error as its body, never an exception."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method,
                                     headers=dict({"content-type": "application/json"}, **(headers or {})))
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, text = response.status, response.read()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read()
    except Exception as e:  # time-outs, refused or reset connections
        status, text = None, str(e).encode()
    return status, text, time.monotonic() - started


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_dev(out_path, err_path, env=None, args=(), limit_secs=1200):
    """Starts scripts/dev (in a session of its own, so that it can be stopped with all it
    started) and waits for its API line: (process, API base URL)."""
    out, err = open(out_path, "w"), open(err_path, "w")
    dev = subprocess.Popen([os.path.join(ROOT, "scripts", "dev"), *args], stdout=out, stderr=err,
                           env=env, start_new_session=True)
    deadline = time.monotonic() + limit_secs
    while time.monotonic() < deadline:
        with open(out_path) as f:
            found = re.search(r"^API: (\S+)", f.read(), re.M)
        if found:
            return dev, found.group(1)
        if dev.poll() is not None:
            raise SystemExit(f"scripts/dev exited; see {err_path}")
        time.sleep(0.5)
    dev.terminate()
    raise SystemExit(f"scripts/dev printed no API line in {limit_secs} s; see {err_path}")
