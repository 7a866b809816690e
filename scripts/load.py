#!/usr/bin/env python3
"""Load on a running local API (scripts/dev): N v1 clients at once, each an upload, two
polls and a clear, with the v1 crypto (scripts/v1_client.py). The uploads are fill tasks:
they exercise the API, the table, the bucket and the whole chain without hours of OCR
behind them. Prints one JSON summary line: requests/s, p50/p99 latency, errors (any
answer but the expected ones, time-outs and dropped connections), the clear refusals
apart (TOO_MANY_TASKS, and 429 throttling answers), and how long the API took to answer
/check_status within a second once the burst was over.

    .venv/bin/python scripts/load.py API_BASE [--clients 200] [--timeout 60]
"""
import argparse, base64, concurrent.futures, hashlib, json, os, sys, time, urllib.error, urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from v1_client import seal  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import padding as rsa_padding  # noqa: E402

FORM = {"title": "Visa application", "tags": ["form"], "kv": {"Form Type": "Visa"}, "fields": ["Full Name", "Date of Birth"]}
LIBRARY = {"doc": [{"id": "p-1", "title": "Passport", "kv": {"Full Name": "Li Wei", "Date of Birth": "1990-01-02"}}], "form": []}


def call(url, body, timeout):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, text = response.status, response.read()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read()
    except Exception as e:  # time-outs, refused or reset connections
        status, text = None, str(e).encode()
    return status, text, time.monotonic() - started


def client(api, public, run, index, timeout):
    """One client's requests: [(kind, status, body, seconds)]."""
    client_id = f"load-{run}-{index}"
    key = os.urandom(32)
    wrapped = public.encrypt(key, rsa_padding.OAEP(mgf=rsa_padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None))
    content = seal(key, json.dumps({"to_process": FORM, "file_lib": LIBRARY}).encode())
    sha = hashlib.sha256(content.encode()).hexdigest()
    task = {"client_id": client_id, "type": "fill", "SHA256": sha}
    done = []
    upload = dict(task, has_content=True, aes_key=base64.b64encode(wrapped).decode(), content=content)
    done.append(("upload", *call(api + "/process", upload, timeout)))
    for _ in range(2):
        done.append(("poll", *call(api + "/process", dict(task, has_content=False), timeout)))
    done.append(("clear", *call(api + "/clear", {"client_id": client_id}, timeout)))
    return done


def expected(kind, status, body):
    if kind == "clear":
        return status == 200
    if status in (200, 202):
        return True
    # A poll may find the task ended with its code; never a refusal of the request itself.
    return status == 400 and kind == "poll" and b"error_detail" in body and b"INVALID" not in body


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))] if values else None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("api")
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=60)
    parser.add_argument("--max-error-rate", type=float, default=0.0, help="errors allowed, as a share of requests")
    args = parser.parse_args()
    api = args.api.rstrip("/")
    status, pem, _ = call(api + "/public_key", None, 30)
    assert status == 200, (status, pem)
    public = serialization.load_pem_public_key(pem)
    run = os.urandom(3).hex()
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.clients) as pool:
        futures = [pool.submit(client, api, public, run, i, args.timeout) for i in range(args.clients)]
        results = [r for f in futures for r in f.result()]
    wall = time.monotonic() - started
    capped = [r for r in results if r[1] == 400 and b"TOO_MANY_TASKS" in r[2]]
    # API Gateway's (and the local gateway's) throttling answer: a clear refusal.
    throttled = [r for r in results if r[1] == 429]
    errors = [r for r in results if not expected(r[0], r[1], r[2]) and r not in capped and r not in throttled]
    # Recovery: the API answers /check_status within a second again.
    recovered = None
    for _ in range(600):
        status, _, seconds = call(api + "/check_status", None, 1)
        if status == 200 and seconds < 1:
            recovered = round(time.monotonic() - started - wall, 2)
            break
        time.sleep(0.5)
    latencies = [r[3] for r in results if r[1] is not None]
    summary = {
        "clients": args.clients,
        "requests": len(results),
        "seconds": round(wall, 2),
        "requests_per_second": round(len(results) / wall, 1),
        "p50_ms": round(1000 * percentile(latencies, 50), 1) if latencies else None,
        "p99_ms": round(1000 * percentile(latencies, 99), 1) if latencies else None,
        "errors": len(errors),
        "too_many_tasks": len(capped),
        "throttled": len(throttled),
        "recovered_after_s": recovered,
        "error_samples": sorted({f"{k}: {s} {b[:80]!r}" for k, s, b, _ in errors})[:5],
    }
    print(json.dumps(summary))
    return 0 if len(errors) <= args.max_error_rate * len(results) and recovered is not None else 1


if __name__ == "__main__":
    sys.exit(main())
