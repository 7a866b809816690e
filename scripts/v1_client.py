#!/usr/bin/env python3
"""A v1 DocuSnap client, written independently of the Rust code (Python `cryptography`):
encrypts images as the Android app does, uploads them to POST /process, polls, and
prints the decrypted result. Usage:

    .venv/bin/python scripts/v1_client.py API_BASE [--type doc|form] [--client ID] [--timeout S] IMAGE...
    .venv/bin/python scripts/v1_client.py API_BASE --type fill FORM_RESULT.json
"""
import argparse, base64, hashlib, json, os, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from local_stack import call  # noqa: E402
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import padding as rsa_padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes


def seal(key, plaintext):
    iv = os.urandom(16)
    padder = padding.PKCS7(128).padder()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    padded = padder.update(plaintext) + padder.finalize()
    return base64.b64encode(iv + encryptor.update(padded) + encryptor.finalize()).decode()


def open_sealed(key, sealed):
    raw = base64.b64decode(sealed)
    decryptor = Cipher(algorithms.AES(key), modes.CBC(raw[:16])).decryptor()
    unpadder = padding.PKCS7(128).unpadder()
    return unpadder.update(decryptor.update(raw[16:]) + decryptor.finalize()) + unpadder.finalize()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("api")
    parser.add_argument("inputs", nargs="+")
    parser.add_argument("--type", default="doc", choices=["doc", "form", "fill"])
    parser.add_argument("--client", default="v1-client")
    parser.add_argument("--library", help="a JSON file with the client's library")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()

    status, pem, _ = call(args.api + "/public_key")
    assert status == 200, (status, pem)
    public = serialization.load_pem_public_key(pem)
    library = json.load(open(args.library)) if args.library else {"doc": [], "form": []}
    if args.type == "fill":
        to_process = json.load(open(args.inputs[0]))
    else:
        to_process = [base64.b64encode(open(p, "rb").read()).decode() for p in args.inputs]
    key = os.urandom(32)
    content = seal(key, json.dumps({"to_process": to_process, "file_lib": library}).encode())
    sha = hashlib.sha256(content.encode()).hexdigest()
    oaep = rsa_padding.OAEP(mgf=rsa_padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    wrapped = base64.b64encode(public.encrypt(key, oaep)).decode()
    body = {"client_id": args.client, "type": args.type, "SHA256": sha, "has_content": True,
            "aes_key": wrapped, "content": content}
    status, answer, _ = call(args.api + "/process", body)
    print(f"upload: {status} {answer.decode()}", file=sys.stderr)
    poll = {"client_id": args.client, "type": args.type, "SHA256": sha, "has_content": False}
    deadline = time.time() + args.timeout
    while True:
        answer = json.loads(answer)
        if answer.get("status") == "completed":
            print(json.dumps(json.loads(open_sealed(key, answer["result"])), ensure_ascii=False, indent=2))
            return 0
        if answer.get("status") == "error":
            print(f"error: {answer.get('error_detail')}", file=sys.stderr)
            return 1
        if time.time() > deadline:
            print(f"still processing after {args.timeout} s (task {sha})", file=sys.stderr)
            return 2
        time.sleep(1)
        status, answer, _ = call(args.api + "/process", poll)


if __name__ == "__main__":
    sys.exit(main())
