"""
Minimal pipelining IMAP and POP3 clients over raw sockets, for measuring.

They parse only what measuring needs, but they frame responses exactly:
an IMAP reply is read until its tagged status line, skipping each literal
(C{{n}}CRLF followed by n octets, RFC 3501 section 4.3) by its count, so
that nothing inside a message body is ever taken for a response line.
Commands can be pipelined: all of them are written by a second thread while
the replies are read, so neither side can block the other on full buffers.
"""

from __future__ import annotations

import re
import socket
import threading
from dataclasses import dataclass, field

_LITERAL = re.compile(rb"\{(\d+)\+?\}\Z")


class ProtocolError(Exception):
    """The server answered something other than what the benchmark expects."""


@dataclass(slots=True)
class Reply:
    """One tagged IMAP reply: its status line and what came before it."""

    status: bytes
    text: bytes
    fetches: int = 0
    literal_bytes: int = 0
    lines: list[bytes] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == b"OK"


class _Stream:
    """A socket with a read buffer."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.pos = 0

    def compact(self) -> None:
        """Drop what has been read (only between replies: indexes move)."""
        if self.pos > 1 << 20:
            del self.buf[:self.pos]
            self.pos = 0

    def _more(self) -> None:
        data = self.sock.recv(1 << 20)
        if not data:
            raise ProtocolError("connection closed by the server")
        self.buf += data

    def line(self) -> bytes:
        """The next line, without its CRLF."""
        self.compact()
        while True:
            end = self.buf.find(b"\r\n", self.pos)
            if end >= 0:
                line = bytes(self.buf[self.pos:end])
                self.pos = end + 2
                return line
            self._more()

    def skip(self, n: int) -> None:
        while len(self.buf) - self.pos < n:
            self._more()
        self.pos += n

    def send_async(self, data: bytes) -> threading.Thread:
        """Write C{data} from another thread (so replies can be read meanwhile)."""
        thread = threading.Thread(target=self.sock.sendall, args=(data,), daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class IMAPClient:
    """One IMAP connection; commands are tagged C{b1}, C{b2}, ..."""

    def __init__(self, host: str, port: int, timeout: float = 600.0) -> None:
        self.stream = _Stream(host, port, timeout)
        self.greeting = self.stream.line()
        if not self.greeting.startswith(b"* OK"):
            raise ProtocolError(f"unexpected greeting {self.greeting!r}")
        self._n = 0
        self.literal_plus = False

    def _tag(self) -> bytes:
        self._n += 1
        return b"b%d" % self._n

    def read_reply(self, tag: bytes, keep: bool = False) -> Reply:
        """
        Read up to and including the tagged reply C{tag}, counting FETCH
        responses and literal octets (and keeping the lines when C{keep}).
        """
        if not keep:
            return self._scan_reply(tag)
        stream = self.stream
        fetches = literal = 0
        lines: list[bytes] = []
        prefix = tag + b" "
        while True:
            line = stream.line()
            if line.startswith(prefix):
                status, _, text = line[len(prefix):].partition(b" ")
                return Reply(status, text, fetches, literal, lines)
            if line.startswith(b"* ") and b" FETCH " in line[:24]:
                fetches += 1
            while line.endswith(b"}"):
                match = _LITERAL.search(line[-24:])
                if match is None:
                    break
                size = int(match.group(1))
                stream.skip(size)
                literal += size
                rest = stream.line()
                if keep:
                    line += b"<literal>" + rest
                else:
                    line = rest
            if keep:
                lines.append(line)

    def _scan_reply(self, tag: bytes) -> Reply:
        """L{read_reply} without keeping lines: scans the buffer, not line by line."""
        s = self.stream
        s.compact()
        prefix = tag + b" "
        marker = b"\r\n" + prefix
        fetches = literal = 0
        while True:
            buf, pos = s.buf, s.pos
            lit = buf.find(b"}\r\n", pos)
            # The tagged line is looked for only up to the next literal: a
            # search to the end of a large buffer for every literal would
            # make reading N literals cost N times the buffer.
            if buf.startswith(prefix, pos):
                tagged = pos
            else:
                tagged = buf.find(marker, pos, lit + 3 if lit >= 0 else len(buf))
                if tagged >= 0:
                    tagged += 2
            if lit >= 0 and (tagged < 0 or lit < tagged):
                fetches += buf.count(b" FETCH (", pos, lit)
                s.pos = lit + 3
                match = _LITERAL.search(buf, max(pos, lit - 22), lit + 1)
                if match is not None:
                    size = int(match.group(1))
                    s.skip(size)
                    literal += size
                continue
            if tagged >= 0:
                end = buf.find(b"\r\n", tagged)
                if end >= 0:
                    fetches += buf.count(b" FETCH (", pos, tagged)
                    status, _, text = bytes(buf[tagged + len(prefix):end]).partition(b" ")
                    s.pos = end + 2
                    return Reply(status, text, fetches, literal)
            last = buf.rfind(b"\r\n", pos)
            if last >= 0:
                fetches += buf.count(b" FETCH (", pos, last + 2)
                s.pos = last + 2
            s._more()

    def command(self, command: bytes, keep: bool = False, check: bool = True) -> Reply:
        """Send one command and wait for its reply (an error unless OK when C{check})."""
        tag = self._tag()
        self.stream.sock.sendall(tag + b" " + command + b"\r\n")
        reply = self.read_reply(tag, keep)
        if check and not reply.ok:
            raise ProtocolError(f"{command[:60]!r}: {reply.status!r} {reply.text!r}")
        return reply

    def pipeline(self, commands: list[bytes], keep: bool = False) -> list[Reply]:
        """Send all C{commands} at once and read their replies in order."""
        tags = [self._tag() for _ in commands]
        data = b"".join(t + b" " + c + b"\r\n" for t, c in zip(tags, commands))
        sender = self.stream.send_async(data)
        replies = [self.read_reply(t, keep) for t in tags]
        sender.join()
        for command, reply in zip(commands, replies):
            if not reply.ok:
                raise ProtocolError(f"{command[:60]!r}: {reply.status!r} {reply.text!r}")
        return replies

    def login(self, user: str, password: str) -> None:
        reply = self.command(b"CAPABILITY", keep=True)
        caps = b" ".join(reply.lines).upper().split()
        self.literal_plus = b"LITERAL+" in caps
        self.command(b'LOGIN "%s" "%s"' % (user.encode(), password.encode()))

    def append(self, mailbox: str, content: bytes, flags: str = "") -> Reply:
        """APPEND one message, with a non-synchronizing literal when the server allows."""
        tag = self._tag()
        head = tag + b' APPEND "%s" (%s) ' % (mailbox.encode(), flags.encode())
        sock = self.stream.sock
        if self.literal_plus:
            sock.sendall(head + b"{%d+}\r\n" % len(content) + content + b"\r\n")
        else:
            sock.sendall(head + b"{%d}\r\n" % len(content))
            line = self.stream.line()
            if not line.startswith(b"+"):
                raise ProtocolError(f"APPEND: no continuation: {line!r}")
            sock.sendall(content + b"\r\n")
        reply = self.read_reply(tag)
        if not reply.ok:
            raise ProtocolError(f"APPEND: {reply.status!r} {reply.text!r}")
        return reply

    def close(self) -> None:
        try:
            self.command(b"LOGOUT", check=False)
        except (OSError, ProtocolError):
            pass
        self.stream.close()


class POP3Client:
    """One POP3 connection (RFC 1939), with pipelined RETR (RFC 2449 PIPELINING)."""

    def __init__(self, host: str, port: int, timeout: float = 600.0) -> None:
        self.stream = _Stream(host, port, timeout)
        greeting = self.stream.line()
        if not greeting.startswith(b"+OK"):
            raise ProtocolError(f"unexpected greeting {greeting!r}")

    def command(self, command: bytes) -> bytes:
        self.stream.sock.sendall(command + b"\r\n")
        line = self.stream.line()
        if not line.startswith(b"+OK"):
            raise ProtocolError(f"{command!r}: {line!r}")
        return line

    def login(self, user: str, password: str) -> None:
        self.command(b"USER " + user.encode())
        self.command(b"PASS " + password.encode())

    def _multiline(self) -> int:
        """Read one multi-line reply after its status line; return its size in octets."""
        stream = self.stream
        stream.compact()
        status = stream.line()
        if not status.startswith(b"+OK"):
            raise ProtocolError(f"multi-line reply: {status!r}")
        start = stream.pos - 2
        while True:
            end = stream.buf.find(b"\r\n.\r\n", start)
            if end >= 0:
                size = end + 2 - (stream.pos)
                stream.pos = end + 5
                return size
            start = max(stream.pos - 2, len(stream.buf) - 4)
            stream._more()

    def retr_all(self, count: int) -> int:
        """RETR messages 1 to C{count}, pipelined; return the octets received."""
        data = b"".join(b"RETR %d\r\n" % i for i in range(1, count + 1))
        sender = self.stream.send_async(data)
        total = sum(self._multiline() for _ in range(count))
        sender.join()
        return total

    def quit(self) -> None:
        try:
            self.command(b"QUIT")
        except (OSError, ProtocolError):
            pass
        self.stream.close()
