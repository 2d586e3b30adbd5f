#!/usr/bin/env python3
"""A TCP server that accepts connections and never answers, for tests/interop/registry_timeouts.sh.

    accept_only_server.py PORT_FILE

Listens on 127.0.0.1 (a free port, written to PORT_FILE), accepts every connection and keeps it
open without reading or writing a byte: a TLS handshake or an HTTP request to it waits forever.
"""
import os
import socket
import sys

PORT_FILE = sys.argv[1]
server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", 0))
server.listen(64)
with open(PORT_FILE + ".tmp", "w") as f:
    f.write(str(server.getsockname()[1]))
os.rename(PORT_FILE + ".tmp", PORT_FILE)
held = []
while True:
    conn, _ = server.accept()
    held.append(conn)
