#!/usr/bin/env python3
"""A v2 DocuSnap client, written independently of the Rust code (Python `cryptography`),
the v1 client's counterpart (functions/upload/openapi.json is the contract):

1. a fresh AES-256 key, wrapped with RSA-OAEP-SHA256 under the server's public key; the
   task id is `<type>_` + the first 32 hex digits of SHA-256(wrapped key bytes);
2. each page (image, PDF or TIFF) sealed with AES-256-GCM, associated data
   `<task id>/page/<index>`;
3. POST /api/v2/tasks with each sealed page's size and SHA-256, then each page PUT
   straight to its presigned URL;
4. GET /api/v2/tasks/{id} with the bearer token until it ends; the result opened with
   associated data `<task id>/result`.

    .venv/bin/python scripts/v2_client.py API_BASE [--type doc|form] [--callback URL] [--timeout S] FILE...
    .venv/bin/python scripts/v2_client.py API_BASE --type fill --form FORM_RESULT.json [--library LIBRARY.json]

Prints the stages to stderr and the result (JSON) to stdout; exits 1 if the task fails.
"""
import argparse, base64, hashlib, json, os, sys, time, urllib.error, urllib.request

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding as rsa_padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def request(method, url, body=None, headers=None, timeout=120):
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    headers = dict(headers or {})
    if body is not None and not isinstance(body, bytes):
        headers["content-type"] = "application/json"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class Task:
    """One v2 task on the client's side: its key, its id, and what it sealed."""

    def __init__(self, base, task_type, public_pem=None):
        self.base = base.rstrip("/")
        if public_pem is None:
            status, public_pem = request("GET", f"{self.base}/api/v2/public_key")
            assert status == 200, (status, public_pem)
        public = serialization.load_pem_public_key(public_pem)
        self.key = AESGCM.generate_key(bit_length=256)
        wrapped = public.encrypt(
            self.key,
            rsa_padding.OAEP(mgf=rsa_padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None),
        )
        self.wrapped = base64.b64encode(wrapped).decode()
        self.type = task_type
        self.id = f"{task_type}_{hashlib.sha256(wrapped).hexdigest()[:32]}"
        self.token = None

    def seal(self, plaintext, associated):
        nonce = os.urandom(12)
        return nonce + AESGCM(self.key).encrypt(nonce, plaintext, associated.encode())

    def seal_page(self, index, data):
        return self.seal(data, f"{self.id}/page/{index}")

    def seal_part(self, part, value):
        return base64.b64encode(self.seal(json.dumps(value).encode(), f"{self.id}/{part}")).decode()

    def create(self, sealed_pages, **extra):
        body = {"type": self.type, "key": self.wrapped,
                "pages": [{"size": len(p), "sha256": hashlib.sha256(p).hexdigest()} for p in sealed_pages]}
        body.update({k: v for k, v in extra.items() if v is not None})
        status, answer = request("POST", f"{self.base}/api/v2/tasks", body)
        answer = json.loads(answer or b"null")
        if status == 201:
            assert answer["task_id"] == self.id, (answer["task_id"], self.id)
            self.token = answer["token"]
        return status, answer

    @staticmethod
    def put(upload, sealed):
        # A content type of its own: urllib's default (a form) makes moto parse the body.
        headers = {"content-type": "application/octet-stream", **upload["headers"]}
        return request(upload["method"], upload["url"], sealed, headers, timeout=600)[0]

    def get(self, token=None):
        token = token or self.token
        headers = {"authorization": f"Bearer {token}"} if token else {}
        status, answer = request("GET", f"{self.base}/api/v2/tasks/{self.id}", headers=headers)
        return status, json.loads(answer or b"null")

    def delete(self):
        return request("DELETE", f"{self.base}/api/v2/tasks/{self.id}", headers={"authorization": f"Bearer {self.token}"})[0]

    def wait(self, timeout, log=None):
        deadline, last = time.time() + timeout, None
        while time.time() < deadline:
            status, answer = self.get()
            if status != 200:
                return answer
            pages = answer["pages"]
            seen = (answer["stage"], pages["arrived"], pages["read"])
            if log and seen != last:
                log(f"{time.strftime('%H:%M:%S')} {self.id}: {answer['stage']} ({pages['arrived']}/{pages['expected']} uploads arrived, {pages['read']} pages read)")
                last = seen
            if answer["status"] != "processing":
                return answer
            time.sleep(1)
        raise TimeoutError(f"{self.id} still processing after {timeout} s")

    def open_result(self, answer):
        raw = base64.b64decode(answer["result"])
        return json.loads(AESGCM(self.key).decrypt(raw[:12], raw[12:], f"{self.id}/result".encode()))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base")
    parser.add_argument("files", nargs="*")
    parser.add_argument("--type", default="doc", choices=["doc", "form", "fill"])
    parser.add_argument("--form", help="fill: a form's result (JSON)")
    parser.add_argument("--library", help="earlier results {doc: [...], form: [...]} (JSON)")
    parser.add_argument("--callback", help="a URL to POST {task_id, status} to when the task ends")
    parser.add_argument("--timeout", type=float, default=600)
    # Options may come before or after the files (argparse alone stops at the first option).
    args = parser.parse_intermixed_args()
    log = lambda line: print(line, file=sys.stderr, flush=True)

    task = Task(args.base, args.type)
    pages = [task.seal_page(i, open(path, "rb").read()) for i, path in enumerate(args.files)]
    extra = {"callback_url": args.callback}
    if args.library:
        extra["library"] = task.seal_part("library", json.load(open(args.library)))
    if args.form:
        extra["form"] = task.seal_part("form", json.load(open(args.form)))
    status, answer = task.create(pages, **extra)
    log(f"create: {status} {answer.get('task_id') or answer}")
    if status != 201:
        sys.exit(1)
    if answer.get("callback_secret"):
        log(f"callback secret: {answer['callback_secret']}")
    for upload, sealed in zip(answer["uploads"], pages):
        log(f"page {upload['page']}: PUT {len(sealed)} bytes -> {task.put(upload, sealed)}")
    ended = task.wait(args.timeout, log)
    if ended.get("status") != "completed":
        log(f"failed: {json.dumps(ended.get('error', ended))}")
        sys.exit(1)
    log(f"extractor: {ended.get('extractor')}")
    print(json.dumps(task.open_result(ended), indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
