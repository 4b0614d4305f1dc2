#!/usr/bin/env python3
"""A test-only mutating webhook that adds a container, as Istio's or Vault's injectors do; the
cluster tier runs it in node 1 (beside the API server, which calls it by URL) to show what
reinvocationPolicy does to containers added after ours (tests/tests/cluster.rs, docs/webhook.md).

    adder.py CERT KEY PORT IMAGE

Every Pod review gets `allowed` and a JSON patch appending the container `added` (IMAGE).
Prints "ready" once it listens.
"""

import base64
import http.server
import json
import ssl
import sys


def main():
    cert, key, port, image = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            patch = [{"op": "add", "path": "/spec/containers/-",
                      "value": {"name": "added", "image": image}}]
            response = {"apiVersion": review["apiVersion"], "kind": "AdmissionReview",
                        "response": {"uid": review["request"]["uid"], "allowed": True,
                                     "patchType": "JSONPatch",
                                     "patch": base64.b64encode(json.dumps(patch).encode()).decode()}}
            body = json.dumps(response).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", port), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
