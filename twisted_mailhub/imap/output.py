"""
The one place IMAP output passes through on its way to the socket: a sans-IO
tracker of the byte stream as the client's parser will read it.

A server response is a line that may be interrupted by literals
(``{n}\\r\\n`` followed by exactly n bytes, RFC 9051 section 4.3, and
``~{n}\\r\\n`` for literal8, RFC 3516); the line goes on after each literal
until its CRLF.  Once a literal is announced the client counts n bytes
whatever they are, so any other response written before the count is
reached would be read as message data and desynchronise the client for
good.

L{ResponseOutput} follows the stream the way a client does (it looks only at
line ends and skips literal bodies, so it costs little per byte) and
enforces one rule: a I{new} response never starts inside another.  When a
response is left unfinished (a FETCH whose message vanished, an exception
in a handler, a goodbye during a stream), L{ResponseOutput.response} first
completes it: the rest of an open literal is padded with spaces, open
quoted strings and parentheses are closed, and the line ends with CRLF.

Nothing here does I/O: methods return the bytes to write.
"""

from __future__ import annotations

import re

__all__ = ["ResponseOutput"]

CRLF = b"\r\n"
# A line (so far) that ends with a literal announcement: {123} or ~{123}.
_LITERAL_AT_END = re.compile(rb"\{(\d+)\}\Z")
_PAD = b" "


class ResponseOutput:
    """
    What has been sent so far: between responses, inside a response's
    line, or inside one of its literals.

    Use L{response} for bytes that start a new response (one or more
    whole responses: status lines, untagged data, continuation requests)
    and L{part} for the next piece of the response being written (the
    pieces of a streamed FETCH).  Both return the bytes to send.
    """

    def __init__(self) -> None:
        #: Bytes of the open literal still owed to the client.
        self.literal_remaining = 0
        # The current line outside literals since its start, one segment
        # per stretch between literals: kept only while a line is open.
        self._segments: list[bytes] = []
        self._mid_line = False

    @property
    def between_responses(self) -> bool:
        """True when the next byte sent starts a new response."""
        return not self._mid_line and self.literal_remaining == 0

    @property
    def in_literal(self) -> bool:
        """True while an announced literal has not had all its bytes."""
        return self.literal_remaining > 0

    def response(self, data: bytes) -> bytes:
        """
        The bytes to send for C{data}, which starts a new response: the end
        of any unfinished response comes first (see L{finish}).
        """
        prefix = self.finish()
        self._feed(data)
        return prefix + data if prefix else data

    def part(self, data: bytes) -> bytes:
        """The bytes to send for C{data}, the next piece of the current response."""
        self._feed(data)
        return data

    def padding(self, limit: int | None = None) -> bytes:
        """
        Filler for the open literal (at most C{limit} bytes of it), for a
        writer that has fewer bytes than it announced.  Empty when no
        literal is open.
        """
        count = self.literal_remaining if limit is None else min(limit, self.literal_remaining)
        if count <= 0:
            return b""
        self.literal_remaining -= count
        return _PAD * count

    def finish(self) -> bytes:
        """
        The bytes that complete an unfinished response so that it parses:
        padding for an open literal, then whatever closes the line (a
        quote, parentheses, CRLF).  Empty between responses.
        """
        if self.between_responses:
            return b""
        out = self.padding()
        in_quote, depth = _open_syntax(self._segments)
        if in_quote:
            out += b'"'
        out += b")" * depth + CRLF
        self._segments = []
        self._mid_line = False
        return out

    # -- following the stream ------------------------------------------------

    def _feed(self, data: bytes) -> None:
        if not data:
            return
        if self.between_responses and data.endswith(CRLF) and b"}\r\n" not in data:
            # Whole lines and no literal: the common case, one C-level scan.
            return
        pos, end = 0, len(data)
        while pos < end:
            if self.literal_remaining:
                take = min(self.literal_remaining, end - pos)
                self.literal_remaining -= take
                pos += take
                continue
            eol = data.find(CRLF, pos)
            if eol == -1:
                self._add_segment(data[pos:])
                return
            line = data[pos:eol]
            pos = eol + 2
            if self._segments:
                # A CRLF split over two writes is not handled specially:
                # our writers never split one.
                tail = self._segments[-1] + line
            else:
                tail = line
            match = _LITERAL_AT_END.search(tail[-24:])
            if match is not None:
                self._add_segment(line)
                self.literal_remaining = int(match.group(1))
                # The segment list marks where the literal was.
                self._segments.append(b"")
                self._mid_line = True
                if self.literal_remaining == 0:
                    continue
            else:
                self._segments = []
                self._mid_line = False

    def _add_segment(self, text: bytes) -> None:
        if not text and not self._mid_line:
            return
        self._mid_line = True
        if self._segments:
            self._segments[-1] += text
        else:
            self._segments.append(text)


def _open_syntax(segments: list[bytes]) -> tuple[bool, int]:
    """Whether the line ends inside a quoted string, and its open parentheses."""
    depth = 0
    in_quote = False
    for segment in segments:
        # A literal lies between two segments: it is never inside a quote.
        in_quote = False
        escaped = False
        for byte in segment:
            if in_quote:
                if escaped:
                    escaped = False
                elif byte == 0x5C:  # backslash
                    escaped = True
                elif byte == 0x22:
                    in_quote = False
            elif byte == 0x22:
                in_quote = True
            elif byte == 0x28:
                depth += 1
            elif byte == 0x29 and depth:
                depth -= 1
    return in_quote, depth
