#!/usr/bin/env python3
"""A small Docker-token-spec server for tests/interop/registry_auth.sh.

    registry_token_server.py PORT_FILE KEY_PEM CERT_PEM USER:PASSWORD SERVICE LOG_FILE

Listens on 127.0.0.1 (free port written to PORT_FILE). GET /token?service=…&scope=… with
Basic USER:PASSWORD answers {"token": JWT, "expires_in": 300} granting the scopes asked for;
without credentials, only pull; wrong credentials get 401. The JWT is RS256, signed with KEY_PEM,
its x5c header carrying CERT_PEM (the registry trusts it through auth.token.rootcertbundle).
Each request is logged to LOG_FILE as "scope=… auth=yes|no|bad".
"""
import base64
import json
import os
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

PORT_FILE, KEY_PEM, CERT_PEM, CREDS, SERVICE, LOG_FILE = sys.argv[1:7]
key = serialization.load_pem_private_key(open(KEY_PEM, "rb").read(), password=None)
cert = x509.load_pem_x509_certificate(open(CERT_PEM, "rb").read())
cert_der = cert.public_bytes(serialization.Encoding.DER)
lock = threading.Lock()


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(access):
    now = int(time.time())
    header = {"alg": "RS256", "typ": "JWT", "x5c": [base64.b64encode(cert_der).decode()]}
    claims = {"iss": "factory-test", "sub": CREDS.split(":")[0], "aud": SERVICE, "exp": now + 300,
              "nbf": now - 10, "iat": now, "jti": str(uuid.uuid4()), "access": access}
    signing = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
    sig = key.sign(signing.encode(), padding.PKCS1v15(), hashes.SHA256())
    return signing + "." + b64(sig)


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        q = parse_qs(urlparse(self.path).query)
        auth = self.headers.get("Authorization", "")
        who = "no"
        if auth.startswith("Basic "):
            who = "yes" if base64.b64decode(auth[6:]).decode() == CREDS else "bad"
        scopes = q.get("scope", [])
        with lock, open(LOG_FILE, "a") as log:
            log.write(f"scope={' '.join(scopes)} auth={who}\n")
        if who == "bad":
            return self.reply(401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]})
        access = []
        for s in scopes:
            kind, name, actions = s.split(":")[0], ":".join(s.split(":")[1:-1]), s.split(":")[-1]
            allowed = actions.split(",") if who == "yes" else [a for a in actions.split(",") if a == "pull"]
            access.append({"type": kind, "name": name, "actions": allowed})
        self.reply(200, {"token": jwt(access), "expires_in": 300})

    def reply(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
with open(PORT_FILE + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(PORT_FILE + ".tmp", PORT_FILE)
server.serve_forever()
