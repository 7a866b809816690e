#!/usr/bin/env python3
"""moto's server, with one difference: DynamoDB requests are served one at a time.

DynamoDB applies a conditional write atomically; moto's threaded server checks the
condition and writes in separate steps, so two concurrent conditional updates of one item
could both succeed (seen: both of two simultaneous extraction claims won, about one run
in fifteen). Serialising DynamoDB's requests restores the guarantee the code relies on.
S3 and SQS requests stay concurrent (SQS long polls would otherwise block everything).

    moto_server.py HOST PORT
"""
import os, sys, threading

from moto.server import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple

DYNAMODB = threading.Lock()


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    os.environ.setdefault("MOTO_PORT", str(port))
    app = DomainDispatcherApplication(create_backend_app)

    def serve(environ, start_response):
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            with DYNAMODB:
                # The whole answer is made inside the lock: the write happens there.
                return list(app(environ, start_response))
        return app(environ, start_response)

    run_simple(host, port, serve, threaded=True)


if __name__ == "__main__":
    main()
