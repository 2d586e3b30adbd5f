#!/usr/bin/env python3
"""A fault-injecting HTTP proxy in front of a registry, for tests/interop/registry_faults.sh.

    registry_fault_proxy.py PORT_FILE UPSTREAM RULES_FILE LOG_FILE

Listens on 127.0.0.1 (a free port, written to PORT_FILE), forwards every request to UPSTREAM
(host:port, plain HTTP) and applies the first rule of RULES_FILE (JSON, re-read when it
changes) whose "match" regex matches "HOST METHOD PATH" (HOST as the Host header says) and whose "times" is not used up:

    {"match": " GET /v2/.*/blobs/", "fault": "reset", "times": 2}

faults: cut (half the request body is read, the first line of an answer sent, then a TCP reset;
nothing reaches the registry),
reset (half the response body, then a TCP reset), truncate (half the body, then a clean close),
stall (half the body, then silence for "seconds"), 500, 503, 429 (with "retry_after"),
redirect (307 to the same path on "localhost", another origin), serve (answer "status" with
"headers" and "body", or "body_size" spaces, instead of the registry), basic (answer 401 with a Basic
challenge unless an Authorization header came; used to see whether a redirected request still
carries credentials). "times": -1 never runs out; "after": N lets the first N matching requests through. Each request is logged to LOG_FILE as
"HOST METHOD PATH auth=yes|no fault=NAME bytes=N" (N: request body bytes received).
"""
import http.client
import json
import os
import re
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT_FILE, UPSTREAM, RULES_FILE, LOG_FILE = sys.argv[1:5]
lock = threading.Lock()
state = {"mtime": None, "rules": [], "used": [], "seen": []}


def rule_for(line):
    with lock:
        try:
            mtime = os.stat(RULES_FILE).st_mtime_ns
        except FileNotFoundError:
            mtime = None
        if mtime != state["mtime"]:
            state["mtime"] = mtime
            state["rules"] = json.load(open(RULES_FILE)) if mtime else []
            state["used"] = [0] * len(state["rules"])
            state["seen"] = [0] * len(state["rules"])
        for i, r in enumerate(state["rules"]):
            times = r.get("times", 1)
            if not re.search(r["match"], line):
                continue
            state["seen"][i] += 1
            if state["seen"][i] <= r.get("after", 0):
                continue
            if times < 0 or state["used"][i] < times:
                state["used"][i] += 1
                return r
    return None


class Proxy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        host = self.headers.get("Host", "")
        line = f"{self.command} {self.path}"
        rule = rule_for(f"{host} {line}")
        fault = rule["fault"] if rule else "none"
        has_auth = "Authorization" in self.headers
        if fault == "cut":
            # Half the request body arrives, then the connection breaks; the registry sees none.
            body = self.rfile.read(length // 2) if length else b""
        else:
            body = self.rfile.read(length) if length else b""
        with lock, open(LOG_FILE, "a") as log:
            log.write(f"{host} {line} auth={'yes' if has_auth else 'no'} fault={fault} bytes={len(body)}\n")
        if fault == "cut":
            # A response begun (so that curl can't take it for a dead idle connection and resend
            # by itself), then the reset.
            self.wfile.write(b"HTTP/1.1 202 Accepted\r\n")
            self.wfile.flush()
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
            return
        if fault == "basic":
            if not has_auth:
                return self.reply(401, b"", {"WWW-Authenticate": 'Basic realm="proxy"'})
            fault = "none"
        if fault in ("500", "503", "429"):
            headers = {"Retry-After": str(rule.get("retry_after", 1))} if fault == "429" else {}
            return self.reply(int(fault), b'{"errors":[{"code":"UNAVAILABLE","message":"injected"}]}', headers)
        if fault == "serve":
            data = rule.get("body", "").encode() if "body_size" not in rule else b" " * rule["body_size"]
            return self.reply(rule.get("status", 200), data, rule.get("headers", {}))
        if fault == "redirect":
            port = self.server.server_address[1]
            return self.reply(307, b"", {"Location": f"http://localhost:{port}{self.path}"})
        conn = http.client.HTTPConnection(UPSTREAM, timeout=60)
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() not in ("host", "connection", "authorization")}
        conn.request(self.command, self.path, body=body or None, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        out = {k: v for k, v in resp.getheaders()
               if k.lower() not in ("connection", "transfer-encoding", "content-length")}
        if fault in ("reset", "truncate", "stall") and len(data) > 1:
            return self.broken(resp.status, data, out, fault, rule)
        if "Location" in out and out["Location"].startswith("http://" + UPSTREAM):
            out["Location"] = out["Location"].replace("http://" + UPSTREAM, f"http://{host}", 1)
        length = resp.getheader("Content-Length") if self.command == "HEAD" else None
        self.reply(resp.status, data, out, length)

    def reply(self, status, data, headers, length=None):
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        # A HEAD answer has no body but the length of the one a GET would get.
        self.send_header("Content-Length", length or str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def broken(self, status, data, headers, fault, rule):
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.wfile.flush()
        if fault == "stall":
            time.sleep(rule.get("seconds", 10))
        if fault == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = handle_any


server = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
server.daemon_threads = True
with open(PORT_FILE + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(PORT_FILE + ".tmp", PORT_FILE)
server.serve_forever()
