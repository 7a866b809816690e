#!/usr/bin/env python3
"""API v2 end to end through a running `scripts/dev` stack, with the independent Python
client (scripts/v2_client.py): pages PUT straight to the local S3 with their presigned
URLs, the OCR, extract and callback functions run by the local event runner.

- a photo of more than 15 MB and a 30-page task complete;
- a page swapped between two tasks, and a page sealed under another key, end with
  PAGE_AUTHENTICATION_FAILED; a wrong token gets 401 UNAUTHORIZED; a page uploaded after
  the deadline ends its task with UPLOAD_EXPIRED; a callback to a private address is
  refused with CALLBACK_URL_REFUSED;
- a callback is delivered to a local HTTP server, signed, and retried after that server
  first answers 500.

The stack must run with a short upload window (scripts/test sets
DOCUSNAP_V2_UPLOAD_WINDOW_SECS=45) for the late page to be late within the test.

    .venv/bin/python tests/dev/v2_test.py API_BASE RENDER_BINARY
"""
import hashlib, hmac, http.server, json, os, subprocess, sys, tempfile, threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from v2_client import Task  # noqa: E402

WAIT_S = 600


class Receiver(http.server.BaseHTTPRequestHandler):
    """A callback receiver that answers 500 to the first callback and 200 after."""

    calls = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        Receiver.calls.append((self.headers.get("DocuSnap-Signature"), body))
        self.send_response(500 if len(Receiver.calls) == 1 else 200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def check(condition, what):
    if not condition:
        raise AssertionError(what)
    print(f"ok: {what}", flush=True)


def create(base, seal, **extra):
    """A created task: a fresh key per attempt. cargo-lambda now and then leaves an
    invocation unanswered (the local gateway answers 504; see scripts/test's load run):
    the task may exist then, its key spent, so a retry makes a new one."""
    for attempt in range(3):
        task = Task(base, "doc")
        sealed = seal(task)
        status, answer = task.create(sealed, **extra)
        if status < 500:
            return task, sealed, status, answer
        print(f"create answered {status} ({answer}); retrying with a fresh key", flush=True)
    return task, sealed, status, answer


def error_code(task):
    ended = task.wait(WAIT_S)
    return ended.get("error", {}).get("code"), ended


def main(base, render):
    tmp = tempfile.mkdtemp()
    receipt = open(os.path.join(ROOT, "tests", "fixtures", "receipt.png"), "rb").read()

    # Created first: its page goes up only after the deadline and its grace.
    late = Task(base, "doc")
    late_page = late.seal_page(0, receipt)
    status, late_answer = late.create([late_page])
    check(status == 201, "a task to upload late is created")
    closes = late_answer["upload_deadline"] + (late_answer["upload_deadline"] - int(time.time())) // 3 + 3

    # A photo of more than 15 MB, straight to S3.
    photo_path = os.path.join(tmp, "photo.jpg")
    subprocess.run([render, photo_path, "--photo", "15", "CORNER BAKERY", "Date: 25/03/2026", "TOTAL 23.40"], check=True)
    photo = open(photo_path, "rb").read()
    check(len(photo) > 15_000_000, f"the photo weighs {len(photo) / 1e6:.1f} MB")
    big, (sealed,), status, answer = create(base, lambda t: [t.seal_page(0, photo)])
    check(status == 201 and big.put(answer["uploads"][0], sealed) == 200, "the photo is uploaded to S3 with its presigned URL")

    # 30 pages, with a callback to a receiver that fails once.
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    pages = []
    for n in range(30):
        path = os.path.join(tmp, f"page{n}.png")
        subprocess.run([render, path, f"Item {n + 1} {n + 10}.00"], check=True)
        pages.append(open(path, "rb").read())
    long, sealed_pages, status, long_answer = create(
        base, lambda t: [t.seal_page(i, p) for i, p in enumerate(pages)], callback_url=f"http://127.0.0.1:{server.server_port}/hook"
    )
    check(status == 201 and long_answer.get("callback_secret"), f"a 30-page task with a callback is created ({status})")
    for upload, page in zip(long_answer["uploads"], sealed_pages):
        assert long.put(upload, page) == 200

    # A page swapped from another task (declared so that even S3's checksum lets it in),
    # and a page sealed for its task and position but under another key.
    a, b = Task(base, "doc"), Task(base, "doc")
    swapped = a.seal_page(0, receipt)
    status, answer = b.create([swapped])
    assert status == 201 and b.put(answer["uploads"][0], swapped) == 200
    c, stranger = Task(base, "doc"), Task(base, "doc")
    stranger.id = c.id
    foreign = stranger.seal_page(0, receipt)
    status, answer = c.create([foreign])
    assert status == 201 and c.put(answer["uploads"][0], foreign) == 200

    status, answer = big.get(token="not-the-token")
    check((status, answer["error"]["code"]) == (401, "UNAUTHORIZED"), "a wrong token gets 401 UNAUTHORIZED")
    private = Task(base, "doc")
    status, answer = private.create([private.seal_page(0, receipt)], callback_url="https://169.254.169.254/latest/meta-data/")
    check((status, answer["error"]["code"]) == (400, "CALLBACK_URL_REFUSED"), "a callback to a link-local address is refused")

    ended = big.wait(WAIT_S)
    check(ended["status"] == "completed", f"the 15 MB photo completes ({ended.get('error')})")
    result = big.open_result(ended)
    check(result["kv"].get("Total") == "23.40" and result["provenance"]["kv"]["Total"], f"its total, with where it was read: {result['kv']}")
    ended = long.wait(WAIT_S)
    check(ended["status"] == "completed", f"the 30-page task completes ({ended.get('error')})")
    result = long.open_result(ended)
    firsts = [p["lines"][0]["text"] if p["lines"] else "" for p in result["pages"]]
    check(len(firsts) == 30 and all(f.startswith(f"Item {i + 1} ") for i, f in enumerate(firsts)), "its 30 pages, in order")
    for task in (b, c):
        code, ended = error_code(task)
        check(code == "PAGE_AUTHENTICATION_FAILED", f"{task.id}: a page sealed for another task or key ends with {code}")

    # The callback: refused once (500), then delivered, signed under the task's secret.
    deadline = time.time() + 120
    while time.time() < deadline and len(Receiver.calls) < 2:
        time.sleep(0.5)
    check(len(Receiver.calls) >= 2, f"the callback was retried after a 500 ({len(Receiver.calls)} calls)")
    signature, body = Receiver.calls[-1]
    stamp, mac = dict(part.split("=", 1) for part in signature.split(",")).values()
    expected = hmac.new(long_answer["callback_secret"].encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    check(hmac.compare_digest(mac, expected) and abs(int(stamp) - time.time()) < 300, "the callback is signed with the task's secret")
    check(json.loads(body) == {"task_id": long.id, "status": "completed"}, "it names the task and its status, nothing else")

    time.sleep(max(0, closes - time.time()))
    late.put(late_answer["uploads"][0], late_page)
    code, _ = error_code(late)
    check(code == "UPLOAD_EXPIRED", f"a page uploaded after the deadline ends its task with {code}")
    check(big.delete() == 200 and big.get()[0] == 404, "DELETE removes a task")
    print("v2 through scripts/dev: ok")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
