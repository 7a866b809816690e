#!/usr/bin/env python3
"""The body of scripts/batch: upload images and PDFs under batch/ and print results as they land."""
import argparse, json, os, sys, time, uuid

import boto3

# What the batch area reads (scripts by name; the function tells the kind by content).
IMAGES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".pdf", ".heic", ".heif")


def main():
    parser = argparse.ArgumentParser(prog="scripts/batch")
    parser.add_argument("--env-file", required=True)
    parser.add_argument("--each", action="store_true", help="each image of a folder is its own document")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--poll", type=float, default=1.0, help="seconds between looks for results")
    parser.add_argument("inputs", nargs="+")
    args = parser.parse_args()
    env = dict(line.rstrip("\n").split("=", 1) for line in open(args.env_file) if "=" in line)
    s3 = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name=env.get("AWS_REGION", "us-east-1"),
                      aws_access_key_id=env.get("AWS_ACCESS_KEY_ID", "test"),
                      aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY", "test"))
    bucket = env["DOCUSNAP_UPLOADS_BUCKET"]
    run = uuid.uuid4().hex[:8]  # a fresh folder per run: earlier results never answer for this one
    waiting = {}  # result key -> document name
    for path in args.inputs:
        if os.path.isdir(path):
            files = sorted(os.path.join(path, f) for f in os.listdir(path) if f.lower().endswith(IMAGES))
            if not files:
                sys.exit(f"batch: no images in {path}")
            name = os.path.basename(os.path.normpath(path))
            if args.each:
                for f in files:
                    waiting[upload_image(s3, bucket, f"batch/{run}-{name}-{os.path.basename(f)}", f)] = f
            else:
                for f in files:
                    s3.upload_file(f, bucket, f"batch/{run}-{name}/{os.path.basename(f)}")
                waiting[f"batch/{run}-{name}/result.json"] = path
        elif path.lower().endswith(IMAGES):
            waiting[upload_image(s3, bucket, f"batch/{run}-{os.path.basename(path)}", path)] = path
        else:
            sys.exit(f"batch: {path} is neither an image nor a folder")
    print(f"batch: {len(waiting)} document(s) uploaded to s3://{bucket}/batch/; waiting for results", file=sys.stderr)
    deadline = time.time() + args.timeout
    while waiting and time.time() < deadline:
        for key in list(waiting):
            try:
                body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            except s3.exceptions.NoSuchKey:
                continue
            print(json.dumps({"document": waiting.pop(key), "result_key": key, **json.loads(body)}, ensure_ascii=False))
            sys.stdout.flush()
        time.sleep(args.poll)
    if waiting:
        print(f"batch: no result after {args.timeout} s for {sorted(waiting.values())}", file=sys.stderr)
        return 2
    return 0


def upload_image(s3, bucket, key, path):
    """Uploads one image as a document of its own; returns its result's key."""
    s3.upload_file(path, bucket, key)
    return key.rsplit(".", 1)[0] + ".result.json"


if __name__ == "__main__":
    sys.exit(main())
