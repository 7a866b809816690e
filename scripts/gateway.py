#!/usr/bin/env python3
"""The local API gateway of scripts/dev: what API Gateway does in front of the upload
function when a burst comes, on loopback in front of the local HTTP API (docusnap-events
--http, which turns each request into a payload 2.0 event for the function).

At most MAX_IN_FLIGHT requests go to the function at once; the rest wait up to QUEUE_WAIT
seconds for a slot, then get API Gateway's own throttling answer,
`429 {"message": "Too Many Requests"}`. A request whose client left still finishes
upstream, so no invocation is cut off mid-way.

    gateway.py LISTEN_PORT UPSTREAM_PORT
"""
import http.client, http.server, sys, threading

MAX_IN_FLIGHT = 8     # the function's environments queue the rest; this bounds the wait
QUEUE_WAIT = 25       # seconds a request may wait for a slot (API Gateway gives up on an integration at 29)
UPSTREAM_TIMEOUT = 30   # API Gateway's integration timeout: an invocation that never answers
                        # costs one 504, not a slot held for good (scripts/dev builds first)
MAX_BODY = 6 * 1024 * 1024 + 1  # Lambda's payload limit (+1: the function answers the excess)
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection", "content-length"}

slots = threading.BoundedSemaphore(MAX_IN_FLIGHT)


class Gateway(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    upstream_port = 0

    def answer(self, status, body, headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def forward(self):
        length = int(self.headers.get("content-length") or 0)
        if length > MAX_BODY:
            # API Gateway refuses what Lambda would, before the function runs.
            self.close_connection = True
            return self.answer(413, b'{"message":"Request Entity Too Large"}', [("content-type", "application/json")])
        body = self.rfile.read(length) if length else None
        if not slots.acquire(timeout=QUEUE_WAIT):
            return self.answer(429, b'{"message":"Too Many Requests"}', [("content-type", "application/json")])
        try:
            upstream = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=UPSTREAM_TIMEOUT)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP and k.lower() != "host"}
            upstream.request(self.command, self.path, body=body, headers=headers)
            response = upstream.getresponse()
            data = response.read()
            forwarded = [(k, v) for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP]
            status = response.status
            upstream.close()
        except TimeoutError:
            status, data, forwarded = 504, b'{"message":"Endpoint request timed out"}', [("content-type", "application/json")]
        except Exception:
            status, data, forwarded = 502, b'{"message":"Internal Server Error"}', [("content-type", "application/json")]
        finally:
            slots.release()
        try:
            self.answer(status, data, forwarded)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client left; the invocation finished all the same

    do_GET = do_POST = do_PUT = do_DELETE = do_OPTIONS = forward

    def log_message(self, *_):
        pass


class Server(http.server.ThreadingHTTPServer):
    # Connections a burst may open before they are accepted (the default, 5, resets the
    # rest); set before the socket listens.
    request_queue_size = 1024
    daemon_threads = True


def main():
    listen, upstream = int(sys.argv[1]), int(sys.argv[2])
    Gateway.upstream_port = upstream
    Server(("127.0.0.1", listen), Gateway).serve_forever()


if __name__ == "__main__":
    main()
