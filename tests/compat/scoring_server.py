"""A small MLflow-style scoring server for the hosted-model tests. modelgate starts it with PORT in
its environment. GET /health answers 200; POST /invocations takes dataframe_split,
dataframe_records, instances or inputs and predicts the sum of each row, as {"predictions": [...]}."""

import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def rows(body):
    if "dataframe_split" in body:
        return body["dataframe_split"]["data"]
    if "dataframe_records" in body:
        return [list(r.values()) for r in body["dataframe_records"]]
    if "instances" in body:
        return body["instances"]
    if "inputs" in body:
        return body["inputs"]
    raise ValueError("no dataframe_split, dataframe_records, instances or inputs")


class Handler(BaseHTTPRequestHandler):
    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.answer(200 if self.path in ("/health", "/ping") else 404, {"status": "ok"})

    def do_POST(self):
        if self.path != "/invocations":
            return self.answer(404, {"error_code": "NOT_FOUND", "message": self.path})
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
            predictions = [sum(r) for r in rows(body)]
        except (ValueError, TypeError, KeyError) as e:
            return self.answer(400, {"error_code": "BAD_REQUEST", "message": f"cannot score: {e}"})
        self.answer(200, {"predictions": predictions})

    def log_message(self, fmt, *args):
        print("scoring:", fmt % args, flush=True)


if __name__ == "__main__":
    print(f"scoring server on port {os.environ['PORT']}", flush=True)
    ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
