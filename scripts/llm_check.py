#!/usr/bin/env python3
"""The LLM path run for real (scripts/llm-check is the way to run it).

Starts llama.cpp's OpenAI-compatible server (llama-server) with a small GGUF model, then
scripts/dev as the README says (DOCUSNAP_LLM_PROVIDER=openai, the server's base URL, its
model alias, and the provider's default answer format, json-schema), sends rendered
receipts and a form through the v1 API, and reports from the server's own log and the
functions' log:

  server_requests   completions the server finished (its log's timings), the start-up
                    probe included
  asked / reasked   the extract function's "LLM answered" and "asking once more" lines
  extractors        each task's `extractor` on its item: llm:gemma (json-schema) (the
                    answer was used) or rules-fallback (it did not fit twice, or the calls
                    failed)
  llm_results       how many tasks ended with the LLM's answer
  unverified        the kv values of LLM results that no rendered line supports (the
                    provenance rule of layers/extract/src/provenance.rs), of how many
  seconds           each task's time from upload to result

It fails when the server saw no chat completion, a task ended with neither, or fewer than
--min-llm tasks ended with the LLM's.
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
        return kind, lines, f.read()


def fold(text):
    return " ".join(re.findall(r"[^\W_]+", text.lower()))


def numbers(text):
    return [n.lstrip("0") or "0" for n in re.findall(r"[0-9]+", text)]


def supported(value, lines):
    """provenance.rs's rule: a line holds the value, the value holds lines, or a line holds its numbers."""
    value = value if isinstance(value, str) else json.dumps(value)
    folded, texts = fold(value), [fold(l) for l in lines]
    if not folded:
        return False
    if any(folded in t for t in texts) or any(len(t) >= 3 and t in folded for t in texts):
        return True
    wanted = numbers(value)
    return any(len(n) >= 2 for n in wanted) and any(all(n in numbers(l) for n in wanted) for l in lines)


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
    parser.add_argument("--server", required=True, help="llama-server")
    parser.add_argument("--model", required=True)
    parser.add_argument("--tasks", type=int, default=3)
    parser.add_argument("--min-llm", type=int, default=0, help="fail when fewer tasks end with the LLM's result")
    args = parser.parse_args()
    llm_port, moto_port, api_port = free_port(), free_port(), free_port()
    server_log = open(os.path.join(LOGS, "llama-server.log"), "w")
    server = subprocess.Popen(
        [args.server, "--model", args.model, "--alias", ALIAS, "--ctx-size", "8192", "--parallel", "1",
         "--host", "127.0.0.1", "--port", str(llm_port)],
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
        # One task at a time: the server has one slot (two cores), so tasks sent together
        # would spend their call timeouts queueing, which measures the queue, not the model.
        tasks, rendered, seconds = [], {}, {}
        started = time.monotonic()
        for i in range(args.tasks):
            kind, lines, page = render(i)
            task = Task(f"{i:06d}", kind, page, public)
            sent = time.monotonic()
            task.upload(api)
            tasks.append(task)
            rendered[task.ref] = lines
            while time.monotonic() - started < 900 * args.tasks and task.outcome is None:
                time.sleep(1)
                task.poll(api)
            seconds[task.ref] = round(time.monotonic() - sent, 1)
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
            # llama-server logs each completion's timings when it ends.
            "server_requests": len(re.findall(r"print_timing: .* total time =", served)),
            "asked": functions.count('"message":"LLM answered"'),
            "reasked": functions.count("did not fit; asking once more"),
            "fell_back": functions.count("the rules extractor answers instead"),
            "llm_results": sum(1 for e in extractors.values() if e.startswith(f"llm:{ALIAS}")),
            "unverified": unverified(tasks, extractors, rendered),
            "seconds": seconds,
            "probe": "passed" if "LLM check passed" in functions else ("failed" if "LLM check failed" in functions else "not seen"),
        }
        print(json.dumps(report, indent=2))
        good = all(e.startswith(f"llm:{ALIAS}") or e == "rules-fallback" for e in extractors.values())
        good = good and len(extractors) == len(tasks) and report["llm_results"] >= args.min_llm
        return 0 if report["server_requests"] > 0 and good else 1
    finally:
        if dev is not None:
            stop(dev)
        stop(server)


def unverified(tasks, extractors, rendered):
    """Of the LLM results' kv values, those no rendered line supports, with examples."""
    values, missing = 0, []
    for t in tasks:
        if not extractors.get(t.ref, "").startswith("llm:") or not isinstance(t.result, dict):
            continue
        for key, value in (t.result.get("kv") or {}).items():
            values += 1
            if not supported(value, rendered[t.ref]):
                missing.append(f"{key}={value}")
    return {"values": values, "unverified": len(missing), "examples": missing[:8]}


if __name__ == "__main__":
    sys.exit(main())
