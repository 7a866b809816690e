#!/usr/bin/env python3
"""Fault rounds on the local stack (scripts/chaos is the way to run it).

Each round starts scripts/dev as a user does, with one kind of fault injected, pushes N
real v1 uploads through it (receipts and forms rendered by target/debug/docusnap-render,
each page carrying a reference that names its task), polls them as a v1 client does, and
counts what became of each:

  completed   the client got its result
  ended       the client got an error code for the task (which)
  refused     the upload itself was answered with a code, after a client's 3 tries
  lost        neither, once every other task had ended and the deadline passed
  duplicates  tasks whose result was written more than once (the functions' logs)
  llm_calls   calls the LLM server saw per task that reached extraction, and the most
              valid answers it gave one task: more than one is a task's extraction run
              twice, a fault unless a process was killed after the LLM had answered
  objects     objects left in the bucket under tasks/ once the round is over

The functions run on a clock `--time-scale` times faster (their timeouts, the queues'
visibility timeouts and the extract claim, in the same order as on AWS), so a killed
invocation's message comes back in seconds rather than minutes.

Faults:
  none           control
  llm-429        the LLM answers 429 with Retry-After: 1
  llm-500        the LLM answers 500
  llm-slow       the LLM answers after 3 s (the call timeout is 4 s)
  llm-hang       the LLM accepts the connection and never answers
  kill-ocr       the OCR function's process is killed (SIGKILL) every 1-3 s
  kill-extract   the extract function's process is killed every 1-3 s (the LLM takes 1.5 s)
  aws            a proxy in front of moto fails 10% of the functions' S3, SQS and DynamoDB
                 calls with the service's own 5xx answer: half before moto sees the
                 request, half after it applied it (the answer is lost)
  duplicates     every SQS batch is handed to the function twice at once
  all            every fault above at once (the test command's short form)
"""
import argparse, base64, collections, concurrent.futures, hashlib, http.client, http.server, json, os, random, re
import signal, socket, subprocess, sys, tempfile, threading, time, urllib.error, urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from v1_client import open_sealed, seal  # noqa: E402
from local_stack import call, free_port, start_dev  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import padding as rsa_padding  # noqa: E402

ROUNDS = ["none", "llm-429", "llm-500", "llm-slow", "llm-hang", "kill-ocr", "kill-extract", "aws", "duplicates"]
LLM_CALL_TIMEOUT = 4    # DOCUSNAP_LLM_TIMEOUT_SECS in every round
LLM_BUDGET = 8          # DOCUSNAP_LLM_BUDGET_SECS: fits the extract timeout at --time-scale 20 (15 s)
AWS_FAULT_RATE = 0.10
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
# A task's reference, printed on its page: digits only, which OCR does not confuse.
REF = re.compile(r"REF:?(\d{6})")


# --- the LLM: an OpenAI-compatible server whose answers each round chooses ----------------

class Llm:
    def __init__(self):
        self.mode = "ok"
        self.lock = threading.Lock()
        self.calls = collections.Counter()   # task reference -> calls
        self.valid = collections.Counter()   # task reference -> valid answers given
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self.handler())
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def reset(self, mode):
        with self.lock:
            self.mode, self.calls, self.valid = mode, collections.Counter(), collections.Counter()

    def handler(llm):
        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def send(self, status, body, headers=()):
                data = json.dumps(body).encode()
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                request = self.rfile.read(int(self.headers.get("content-length") or 0)).decode("utf-8", "replace")
                found = REF.search(request.replace(" ", ""))
                ref = found.group(1) if found else "?"
                with llm.lock:
                    llm.calls[ref] += 1
                    mode = llm.mode
                if mode == "mixed":
                    mode = random.choice(["ok", "ok", "429", "500", "slow", "hang"])
                if mode == "429":
                    return self.send(429, {"error": {"message": "rate limited"}}, [("retry-after", "1")])
                if mode == "500":
                    return self.send(500, {"error": {"message": "internal error"}})
                if mode == "hang":
                    time.sleep(120)   # the client gives up first; the connection just closes
                    return
                if mode == "slow":
                    time.sleep(3)
                if mode == "latency":
                    time.sleep(1.5)
                answer = {"title": f"Chaos {ref}", "tags": ["chaos"], "description": "made by the chaos LLM",
                          "kv": {"Reference": ref, "Form Type": "Visa"}, "fields": ["Name", "Date of Birth"]}
                with llm.lock:
                    llm.valid[ref] += 1
                self.send(200, {"id": "x", "object": "chat.completion", "model": "chaos",
                                "choices": [{"index": 0, "finish_reason": "stop",
                                             "message": {"role": "assistant", "content": json.dumps(answer)}}]})
        return Handler


# --- AWS faults: a proxy in front of moto --------------------------------------------------

class AwsProxy:
    """Forwards the functions' AWS calls to moto; with `rate`, fails some with the service's
    own 5xx answer, before or after moto has applied them."""

    def __init__(self, upstream_port):
        self.upstream_port, self.rate = upstream_port, 0.0
        self.faults = collections.Counter()
        self.local = threading.local()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self.handler())
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"

    def upstream(self):
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=60)
        return conn

    def handler(proxy):
        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def body(self):
                if self.headers.get("transfer-encoding", "").lower() == "chunked":
                    out = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return out
                        out += self.rfile.read(size)
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("content-length") or 0))

            def fault(self, service):
                if service == "dynamodb":
                    body = b'{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"injected by scripts/chaos"}'
                    return 500, body, "application/x-amz-json-1.0"
                if service == "sqs":
                    body = b'{"__type":"com.amazonaws.sqs#InternalError","message":"injected by scripts/chaos"}'
                    return 500, body, "application/x-amz-json-1.0"
                body = b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>injected by scripts/chaos</Message></Error>'
                return 503, body, "application/xml"

            def handle_any(self):
                data = self.body()
                target = self.headers.get("x-amz-target", "")
                service = "dynamodb" if target.startswith("DynamoDB") else "sqs" if target.startswith("AmazonSQS") else "s3"
                roll = random.random()
                when = None
                if roll < proxy.rate:
                    when = "before" if roll < proxy.rate / 2 else "after"
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("transfer-encoding", "connection", "content-length")}
                headers["content-length"] = str(len(data))
                if when != "before":
                    for attempt in range(2):
                        try:
                            conn = proxy.upstream()
                            conn.request(self.command, self.path, body=data, headers=headers)
                            response = conn.getresponse()
                            status, text = response.status, response.read()
                            answer_headers = [(k, v) for k, v in response.getheaders()
                                              if k.lower() not in ("transfer-encoding", "connection", "content-length")]
                            break
                        except (http.client.HTTPException, OSError):
                            proxy.local.conn = None
                            if attempt:
                                raise
                if when:
                    proxy.faults[f"{service}-{when}"] += 1
                    status, text, kind = self.fault(service)
                    answer_headers = [("content-type", kind)]
                self.send_response(status)
                for k, v in answer_headers:
                    self.send_header(k, v)
                self.send_header("content-length", str(len(text)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(text)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_any
        return Handler


# --- the client side ------------------------------------------------------------------------

def render(directory, round_no, index):
    """A receipt (three in four) or a form, carrying its task's reference."""
    ref = f"{round_no + 1}{index:05d}"
    out = os.path.join(directory, f"{ref}.png")
    if index % 4 == 3:
        kind = "form"
        lines = ["VISA APPLICATION", "Full Name: ________", "Date of Birth: ________", f"REF {ref}"]
    else:
        kind = "doc"
        lines = [f"SHOP {index}", "12 Main Street", f"Date: {1 + index % 28:02d}/03/2026",
                 f"Coffee {3 + index % 5}.50", f"TOTAL {10 + index}.40", f"REF {ref}"]
    subprocess.run([os.path.join(TARGET, "debug", "docusnap-render"), out, *lines], check=True)
    with open(out, "rb") as f:
        return ref, kind, f.read()


class Task:
    def __init__(self, ref, kind, page, public):
        self.ref, self.kind, self.client = ref, kind, f"chaos-{ref}-{os.urandom(3).hex()}"
        key = os.urandom(32)
        wrapped = public.encrypt(key, rsa_padding.OAEP(mgf=rsa_padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None))
        self.content = seal(key, json.dumps({"to_process": [base64.b64encode(page).decode()]}).encode())
        self.sha = hashlib.sha256(self.content.encode()).hexdigest()
        self.aes_key = base64.b64encode(wrapped).decode()
        self.key = key
        self.outcome, self.code, self.result = None, None, None

    def upload(self, api):
        body = {"client_id": self.client, "type": self.kind, "SHA256": self.sha, "has_content": True,
                "aes_key": self.aes_key, "content": self.content}
        for attempt in range(3):
            status, text, _ = call(api + "/process", body)
            if status == 202:
                return
            time.sleep(1 + attempt)
        self.outcome, self.code = "refused", f"{status} {text[:60]!r}"

    def poll(self, api):
        status, text, _ = call(api + "/process", {"client_id": self.client, "type": self.kind, "SHA256": self.sha, "has_content": False}, 30)
        if status == 200:
            self.outcome = "completed"
            try:
                self.result = json.loads(open_sealed(self.key, json.loads(text)["result"]))
            except (KeyError, ValueError):
                pass  # an answer the scripts that read results report as missing
        elif status == 400:
            code = json.loads(text).get("error_detail")
            # PROCESSING_TIMEOUT is the API's word for a task nobody finished: lost. A
            # DATABASE_ERROR is this poll's own failure (the table did not answer): a
            # client polls again.
            if code and code not in ("PROCESSING_TIMEOUT", "DATABASE_ERROR"):
                self.outcome, self.code = "ended", code


# --- a round --------------------------------------------------------------------------------

def killer(binary, stop, kills):
    path = os.path.join(TARGET, "debug", binary)
    while not stop.wait(random.uniform(1, 3)):
        found = subprocess.run(["pgrep", "-f", f"^{re.escape(path)}$"], capture_output=True, text=True).stdout.split()
        for pid in found[:1]:
            try:
                os.kill(int(pid), signal.SIGKILL)
                kills[binary] += 1
            except (ProcessLookupError, ValueError):
                pass


def aws(service, moto_port):
    import boto3
    return boto3.client(service, endpoint_url=f"http://127.0.0.1:{moto_port}", region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test")


def settle(moto_port, limit):
    """Waits (up to `limit` seconds) until no queue holds a message, visible or in flight:
    a task's client may have its answer while a redelivery still has to tidy up after it
    (delete its objects). Returns the seconds waited, or None if the queues never emptied."""
    sqs = aws("sqs", moto_port)
    started = time.monotonic()
    while time.monotonic() - started < limit:
        held = 0
        for url in sqs.list_queues().get("QueueUrls", []):
            attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
            held += int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])
        if not held:
            return round(time.monotonic() - started, 1)
        time.sleep(2)
    return None


def objects_left(moto_port):
    s3 = aws("s3", moto_port)
    left = []
    for bucket in s3.list_buckets()["Buckets"]:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket["Name"], Prefix="tasks/"):
            left += [o["Key"] for o in page.get("Contents", [])]
    return left


def run_round(fault, round_no, args, llm, public_dir):
    faults = ROUNDS[1:] if fault == "all" else [fault]
    llm.reset({"llm-429": "429", "llm-500": "500", "llm-slow": "slow", "llm-hang": "hang"}.get(fault, "ok"))
    if fault == "all":
        llm.reset("mixed")
    elif fault == "kill-extract":
        llm.reset("latency")
    moto_port, api_port = free_port(), free_port()
    proxy = AwsProxy(moto_port)
    proxy.rate = AWS_FAULT_RATE if "aws" in faults else 0.0
    events_args = f"--time-scale {args.time_scale} --concurrency extract=4"
    if "duplicates" in faults:
        events_args += " --deliver-twice"
    env = dict(os.environ,
               DOCUSNAP_API_PORT=str(api_port), DOCUSNAP_MOTO_PORT=str(moto_port),
               DOCUSNAP_FUNCTION_AWS_ENDPOINT=proxy.endpoint, DOCUSNAP_RETRY_AFTER="queue",
               DOCUSNAP_EVENTS_ARGS=events_args,
               DOCUSNAP_LLM_PROVIDER="openai", DOCUSNAP_LLM_BASE_URL=llm.base, DOCUSNAP_LLM_MODEL="chaos",
               DOCUSNAP_LLM_TIMEOUT_SECS=str(LLM_CALL_TIMEOUT), DOCUSNAP_LLM_BUDGET_SECS=str(LLM_BUDGET))
    logs = os.path.join(ROOT, ".local", "logs")
    err_path = os.path.join(logs, f"chaos-dev-{fault}.err")
    dev, api = start_dev(os.path.join(logs, f"chaos-dev-{fault}.out"), err_path, env=env)
    stop, kills = threading.Event(), collections.Counter()
    try:
        status, pem, _ = call(api + "/public_key")
        public = serialization.load_pem_public_key(pem)
        pages = [render(public_dir, round_no, i) for i in range(args.tasks)]
        tasks = [Task(ref, kind, page, public) for ref, kind, page in pages]
        killers = [b for b, f in (("ocr", "kill-ocr"), ("extract", "kill-extract")) if f in faults]
        for binary in killers:
            threading.Thread(target=killer, args=(binary, stop, kills), daemon=True).start()
        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda t: t.upload(api), tasks))
            uploaded = time.monotonic()
            while time.monotonic() - uploaded < args.deadline:
                pending = [t for t in tasks if t.outcome is None]
                if not pending:
                    break
                list(pool.map(lambda t: t.poll(api), pending))
                time.sleep(2)
        seconds = time.monotonic() - started
        stop.set()
        # Redeliveries still in flight once every client has its answer may tidy up yet.
        settled = settle(moto_port, args.deadline)
        for t in tasks:
            if t.outcome is None:
                t.outcome = "lost"
        time.sleep(1)   # let the last log lines land
        with open(os.path.join(logs, "functions.log"), errors="replace") as f:
            log = f.read()
        with open(os.path.join(logs, "events.log"), errors="replace") as f:
            events = f.read()
        for name, text in (("functions", log), ("events", events)):
            with open(os.path.join(logs, f"chaos-{fault}-{name}.log"), "w") as f:
                f.write(text)
        # One "task ended" line per result written (core::pipeline::end_task).
        written = collections.Counter(re.findall(r'"message":"task ended".*?"task":"[^"]*/([0-9a-f]{64})"', log))
        reached = [t for t in tasks if t.outcome in ("completed", "ended")]
        calls = [llm.calls[t.ref] for t in reached]
        outcome = collections.Counter(t.outcome for t in tasks)
        return {
            "fault": fault,
            "tasks": len(tasks),
            "completed": outcome["completed"],
            "ended": outcome["ended"],
            "codes": dict(collections.Counter(t.code for t in tasks if t.outcome == "ended")),
            "refused": outcome["refused"],
            "lost": outcome["lost"],
            "lost_refs": [t.ref for t in tasks if t.outcome == "lost"][:5],
            "duplicates": sum(1 for t in tasks if written[t.sha] > 1),
            "llm_calls_per_task": round(sum(calls) / len(calls), 2) if calls else 0,
            "llm_valid_answers_max": max((llm.valid[t.ref] for t in tasks), default=0),
            "llm_results": sum(1 for t in tasks if llm.valid[t.ref]),
            "llm_unmatched": llm.calls["?"],   # calls whose page reference OCR misread
            "objects_left": len(left := objects_left(moto_port)),
            "objects_left_keys": left[:3],
            "queues_settled_after_s": settled,
            "kills": dict(kills),
            "crashed_invocations": events.count("the function's process exited mid-invocation"),
            "aws_faults": sum(proxy.faults.values()),
            "seconds": round(seconds, 1),
        }
    finally:
        stop.set()
        try:
            os.killpg(dev.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            dev.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(dev.pid, signal.SIGKILL)
        proxy.server.shutdown()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=100, help="uploads per round")
    parser.add_argument("--rounds", default=",".join(ROUNDS), help="comma-separated faults, or 'all' for every fault at once")
    parser.add_argument("--time-scale", type=int, default=20)
    parser.add_argument("--deadline", type=float, default=600, help="seconds after the uploads before a pending task counts as lost")
    args = parser.parse_args()
    rounds = args.rounds.split(",")
    unknown = [r for r in rounds if r not in ROUNDS + ["all"]]
    if unknown:
        parser.error(f"unknown rounds {unknown}")
    llm = Llm()
    failed = False
    with tempfile.TemporaryDirectory() as pages:
        for number, fault in enumerate(rounds):
            result = run_round(fault, number, args, llm, pages)
            print(json.dumps(result), flush=True)
            twice = result["llm_valid_answers_max"] > 1 and not result["kills"]
            bad = result["lost"] or result["duplicates"] or twice or result["objects_left"]
            failed = failed or bool(bad)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
