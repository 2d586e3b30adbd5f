#!/usr/bin/env python3
"""A bounded HTTP server on 127.0.0.1 for the tests.

http-server.py ROOT PORT_FILE [SECONDS]
Serves ROOT with GET (http.server), and smart-HTTP git under /git/ through git-http-backend
(GIT_PROJECT_ROOT=ROOT/git-repos). Writes the port to PORT_FILE once listening; exits after
SECONDS (default 120). /status/N answers with status N; /count/NAME counts the requests for NAME.
/private/git/… is /git/… behind HTTP Basic auth with the "user:password" in ROOT/.auth.
"""
import base64
import http.server
import os
import subprocess
import sys
import threading

root, port_file = sys.argv[1], sys.argv[2]
seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 120
counts = {}


class Handler(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *a, **kw):
        super().__init__(*a, directory=root, **kw)

    def log_message(self, *a):
        pass

    def git(self):
        path, _, query = self.path.partition("?")
        env = {
            "GIT_PROJECT_ROOT": os.path.join(root, "git-repos"),
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": path[len("/git"):],
            "QUERY_STRING": query,
            "REQUEST_METHOD": self.command,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "REMOTE_ADDR": "127.0.0.1",
            "PATH": "/usr/bin:/bin",
        }
        if self.headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.headers.get("Transfer-Encoding") == "chunked":
            body = b""
            while True:
                size = int(self.rfile.readline().strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    break
                body += self.rfile.read(size)
                self.rfile.readline()
        if self.headers.get("Content-Encoding") == "gzip":
            import gzip
            body = gzip.decompress(body)
        env["CONTENT_LENGTH"] = str(len(body))
        out = subprocess.run(["git", "http-backend"], input=body, env=env,
                             capture_output=True).stdout
        head, _, rest = out.partition(b"\r\n\r\n")
        status = 200
        headers = []
        for line in head.split(b"\r\n"):
            k, _, v = line.decode().partition(":")
            if k.lower() == "status":
                status = int(v.strip().split()[0])
            elif k:
                headers.append((k, v.strip()))
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(rest)))
        self.end_headers()
        self.wfile.write(rest)

    def authorized(self):
        """For /private/: strips the prefix; False (after a 401) without the right credentials."""
        if not self.path.startswith("/private/"):
            return True
        with open(os.path.join(root, ".auth")) as f:
            want = "Basic " + base64.b64encode(f.read().strip().encode()).decode()
        if self.headers.get("Authorization") != want:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="test"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return False
        self.path = self.path[len("/private"):]
        return True

    def do_GET(self):
        if not self.authorized():
            return
        name = self.path.split("?")[0]
        counts[name] = counts.get(name, 0) + 1
        if self.path.startswith("/git/"):
            return self.git()
        if self.path.startswith("/status/"):
            self.send_response(int(self.path.split("/")[2]))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path.startswith("/count/"):
            body = str(counts.get(self.path[len("/count"):], 0)).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        return super().do_GET()

    def do_POST(self):
        if not self.authorized():
            return
        if self.path.startswith("/git/"):
            return self.git()
        self.send_response(405)
        self.end_headers()


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(port_file + ".tmp", port_file)
threading.Timer(seconds, server.shutdown).start()
server.serve_forever()
