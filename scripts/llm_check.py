#!/usr/bin/env python3
"""The LLM path run for real (scripts/llm-check is the way to run it).

Starts llama.cpp's OpenAI-compatible server (llama-cpp-python) with a small GGUF model,
then scripts/dev as the README says (DOCUSNAP_LLM_PROVIDER=openai, the server's base URL,
its model alias), sends rendered receipts and a form through the v1 API, and reports from
the server's own access log and the functions' log:

  server_requests   chat completions the server answered (its uvicorn access log), the
                    start-up probe included
  asked / reasked   the extract function's "LLM answered" and "asking once more" lines
  extractors        each task's `extractor` on its item: llm:gemma (the answer was used)
                    or rules-fallback (it did not fit twice, or the calls failed)

It fails when the server saw no chat completion, or a task ended with neither.
"""
import argparse, json, os, re, signal, socket, subprocess, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from chaos import Task, aws  # noqa: E402
from local_stack import call, free_port, start_dev  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402

TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
LOGS = os.path.join(ROOT, ".local", "logs")
ALIAS = "gemma"


def render(index):
    path = os.path.join(ROOT, ".local", f"llm-check-{index}.png")
    if index % 3 == 2:
        kind, lines = "form", ["MEMBERSHIP APPLICATION", "Club: Riverside Rowing", "Name: ________", "Phone: ________"]
    else:
        kind, lines = "doc", [f"CORNER BAKERY {index}", "12 Main Street", "Date: 25/03/2026", "Coffee 3.50", f"TOTAL {10 + index}.40"]
    subprocess.run([os.path.join(TARGET, "debug", "docusnap-render"), path, *lines], check=True)
    with open(path, "rb") as f:
        return kind, f.read()


def wait_for(what, check, seconds, process):
    for _ in range(int(seconds * 2)):
        if check():
            return
        if process.poll() is not None:
            raise SystemExit(f"{what} exited early")
        time.sleep(0.5)
    raise SystemExit(f"{what} did not come up in {seconds} s")


def stop(process):
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--llm-python", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--tasks", type=int, default=3)
    args = parser.parse_args()
    llm_port, moto_port, api_port = free_port(), free_port(), free_port()
    server_log = open(os.path.join(LOGS, "llama-server.log"), "w")
    server = subprocess.Popen(
        [args.llm_python, "-m", "llama_cpp.server", "--model", args.model, "--model_alias", ALIAS,
         "--n_ctx", "8192", "--host", "127.0.0.1", "--port", str(llm_port)],
        stdout=server_log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{llm_port}/v1"
    dev = None
    try:
        wait_for("the llama.cpp server", lambda: call(base + "/models", timeout=2)[0] == 200, 120, server)
        env = dict(os.environ, DOCUSNAP_API_PORT=str(api_port), DOCUSNAP_MOTO_PORT=str(moto_port),
                   DOCUSNAP_LLM_PROVIDER="openai", DOCUSNAP_LLM_BASE_URL=base, DOCUSNAP_LLM_MODEL=ALIAS)
        out = os.path.join(LOGS, "llm-check-dev.out")
        dev, api = start_dev(out, os.path.join(LOGS, "llm-check-dev.err"), env=env)
        public = serialization.load_pem_public_key(call(api + "/public_key")[1])
        tasks = []
        for i in range(args.tasks):
            kind, page = render(i)
            task = Task(f"{i:06d}", kind, page, public)
            task.upload(api)
            tasks.append(task)
        started = time.monotonic()
        while time.monotonic() - started < 900 and any(t.outcome is None for t in tasks):
            for t in tasks:
                if t.outcome is None:
                    t.poll(api)
            time.sleep(2)
        table = aws("dynamodb", moto_port)
        extractors = {}
        for t in tasks:
            for name in table.list_tables()["TableNames"]:
                items = table.scan(TableName=name).get("Items", [])
                for item in items:
                    # The task's item (the keys table binds the same content, without one).
                    if t.sha in json.dumps(item) and "extractor" in item:
                        extractors[t.ref] = item["extractor"]["S"]
        time.sleep(1)
        with open(os.path.join(LOGS, "functions.log"), errors="replace") as f:
            functions = f.read()
        with open(server_log.name, errors="replace") as f:
            served = f.read()
        report = {
            "tasks": len(tasks),
            "outcomes": {t.ref: t.outcome if t.code is None else f"{t.outcome} {t.code}" for t in tasks},
            "extractors": extractors,
            "server_requests": len(re.findall(r'"POST /v1/chat/completions HTTP/1\.1" 200', served)),
            "asked": functions.count('"message":"LLM answered"'),
            "reasked": functions.count("did not fit; asking once more"),
            "fell_back": functions.count("the rules extractor answers instead"),
            "probe": "passed" if "LLM check passed" in functions else ("failed" if "LLM check failed" in functions else "not seen"),
        }
        print(json.dumps(report, indent=2))
        good = all(e in (f"llm:{ALIAS}", "rules-fallback") for e in extractors.values()) and len(extractors) == len(tasks)
        return 0 if report["server_requests"] > 0 and good else 1
    finally:
        if dev is not None:
            stop(dev)
        stop(server)


if __name__ == "__main__":
    sys.exit(main())
