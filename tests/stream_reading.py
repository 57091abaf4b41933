"""
Reading a client socket the way the TLS-close tests need: a line at a time,
and everything up to the end of the stream.
"""

from __future__ import annotations

import socket


def read_line(sock: socket.socket) -> bytes:
    """One line, CRLF included; C{ConnectionError} if the stream ends first."""
    data = b""
    while not data.endswith(b"\r\n"):
        chunk = sock.recv(1)
        if not chunk:
            raise ConnectionError(f"closed after {data!r}")
        data += chunk
    return data


def read_to_eof(sock: socket.socket) -> bytes:
    """
    Everything until the end of the stream.  On a TLS socket that does not
    suppress ragged EOFs, a TCP close without close_notify raises
    C{SSLEOFError}, and a server that closes nothing makes it time out.
    """
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
