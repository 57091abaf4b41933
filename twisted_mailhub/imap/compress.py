"""
COMPRESS=DEFLATE (RFC 4978): raw DEFLATE (RFC 1951, no zlib header) over
the rest of the connection, both ways.

Two pieces, as for the parser and the protocol:

  - L{Deflate} is the sans-IO codec: bytes in, bytes out, and the one
    place where the client's stream is inflated, a bounded amount at a
    time (a few kilobytes of "zip bomb" must not become gigabytes held in
    memory);
  - L{CompressingTransport} sits between the connection's transport (TCP,
    or the TLS layer under it: RFC 4978 section 3 compresses first, then
    encrypts) and the IMAP protocol.  The protocol writes to it as to any
    transport; it compresses as it goes and flushes (``Z_SYNC_FLUSH``) once
    per reactor turn, so a burst of responses costs one flush, not one per
    line.  Flow control is the transport's own: the compressed bytes reach
    it as zlib produces them, and it pauses the protocol when they pile up.

The inflated input is handed to the protocol in pieces of at most
L{CHUNK} bytes and at most L{TURN_BUDGET} bytes per reactor turn; while
the protocol has reading paused (a command is running and its backlog is
full) nothing more is inflated, and reading from the socket stays paused
as long as inflated-but-undelivered input remains.  The parser's own
limits on lines and literals then apply as they do without compression.
"""

from __future__ import annotations

import zlib
from typing import Any, Callable

__all__ = ["CompressionError", "Deflate", "CompressingTransport", "CHUNK", "TURN_BUDGET"]

#: The most inflated bytes handed on at once.
CHUNK = 64 * 1024
#: The most inflated bytes handed on in one reactor turn; the rest waits
#: for the next turn, with reading from the socket paused meanwhile.
TURN_BUDGET = 1024 * 1024
# RFC 4978 section 4 suggests a cheap level (1 to 5) for mail traffic.
LEVEL = 5


class CompressionError(Exception):
    """The client's compressed stream cannot be inflated."""


class Deflate:
    """
    The two raw DEFLATE streams of one connection.  Output: L{compress},
    then L{flush} at the end of a burst (or L{finish} to end the stream).
    Input: L{feed} what arrives, then L{inflate} until it returns nothing.

    After the client ends its stream (a final block), what follows on the
    wire is not compressed: it is kept in L{after_end} (RFC 8437 section
    4.1: a client leaving compression with UNAUTHENTICATE).
    """

    def __init__(self, level: int = LEVEL) -> None:
        self._out = zlib.compressobj(level, zlib.DEFLATED, -15)
        self._in = zlib.decompressobj(-15)
        self._tail = b""
        # The last inflate filled its limit: zlib may hold more output.
        self._full = False
        self.after_end = b""

    # -- output --------------------------------------------------------------

    def compress(self, data: bytes) -> bytes:
        """Compressed bytes ready to send (often none: zlib buffers)."""
        return self._out.compress(data)

    def flush(self) -> bytes:
        """Everything given so far, decodable by the client now (``Z_SYNC_FLUSH``)."""
        return self._out.flush(zlib.Z_SYNC_FLUSH)

    def finish(self) -> bytes:
        """The rest of the output stream, ended with a final block."""
        return self._out.flush(zlib.Z_FINISH)

    # -- input ---------------------------------------------------------------

    @property
    def ended(self) -> bool:
        """Whether the client's stream has ended."""
        return self._in.eof

    @property
    def pending(self) -> bool:
        """Whether L{inflate} may have more to give without more input."""
        return not self._in.eof and (bool(self._tail) or self._full)

    def feed(self, data: bytes) -> None:
        """Take compressed C{data} from the client."""
        if self._in.eof:
            self.after_end += data
        else:
            self._tail += data

    def inflate(self, limit: int = CHUNK) -> bytes:
        """
        Up to C{limit} inflated bytes of what was fed; C{b""} when all of it
        has been inflated.  Raises L{CompressionError} for data that is not
        DEFLATE.
        """
        if self._in.eof or not (self._tail or self._full):
            return b""
        try:
            out = self._in.decompress(self._tail, limit)
        except zlib.error as e:
            raise CompressionError(str(e)) from None
        self._full = len(out) >= limit
        if self._in.eof:
            self.after_end += self._in.unused_data
            self._tail = b""
            self._full = False
        else:
            self._tail = self._in.unconsumed_tail
        return out


class CompressingTransport:
    """
    The transport a connection's protocol writes to while COMPRESS is
    active: writes are compressed onto C{transport}, and the client's bytes,
    given to L{receive}, come out inflated through C{deliver}; C{failed} is
    told of a L{CompressionError} (the connection cannot go on).

    C{call_later} schedules the end-of-turn flush and the next slice of
    input (the factory's clock).  C{counter}, when given, is the object
    whose C{bytes_sent} counts what the protocol writes: it is kept at the
    bytes that go to C{transport}, the compressed ones.  At most
    C{max_after_end} bytes are kept of what comes after the end of the
    client's stream (see L{Deflate.after_end}).  Anything else is passed to
    C{transport} (the peer's address, TCP options, producers).
    """

    def __init__(self, transport: Any, deliver: Callable[[bytes], None],
                 failed: Callable[[CompressionError], None],
                 call_later: Callable[..., Any], counter: Any = None,
                 codec: Deflate | None = None, max_after_end: int = CHUNK) -> None:
        self.transport = transport
        self.codec = codec if codec is not None else Deflate()
        self._deliver = deliver
        self._failed = failed
        self._max_after_end = max_after_end
        self._call_later = call_later
        self._counter = counter
        self._flush_call: Any = None
        self._slice_call: Any = None
        # Reading paused by the protocol, and by this layer (input left).
        self._paused = False
        self._holding = False
        self._closed = False
        self._broken = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)

    # -- output --------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Compress C{data}; it reaches the client by the end of this turn."""
        if self._closed:
            return
        self._count(-len(data))
        self._send(self.codec.compress(data))
        if self._flush_call is None:
            self._flush_call = self._call_later(0, self.flush)

    def writeSequence(self, data) -> None:
        self.write(b"".join(data))

    def flush(self) -> None:
        """Send what zlib holds, so the client can read every response written."""
        self._cancel_flush()
        if not self._closed:
            self._send(self.codec.flush())

    def _send(self, data: bytes) -> None:
        if data:
            self._count(len(data))
            self.transport.write(data)

    def _count(self, n: int) -> None:
        if self._counter is not None:
            self._counter.bytes_sent += n

    def _cancel_flush(self) -> None:
        call, self._flush_call = self._flush_call, None
        if call is not None and call.active():
            call.cancel()

    def loseConnection(self) -> None:
        if not self._closed:
            self.flush()
            self._stop()
        self.transport.loseConnection()

    def abortConnection(self) -> None:
        self._stop()
        self.transport.abortConnection()

    def _stop(self) -> None:
        self._closed = True
        self._cancel_flush()
        call, self._slice_call = self._slice_call, None
        if call is not None and call.active():
            call.cancel()

    def finish(self) -> bytes:
        """
        End compression: send the rest of the output stream (ended with a
        final block) and stop.  Returns the client's bytes that came after
        the end of its own stream, which are not compressed; whatever else
        was received and not yet handed on is dropped, as it was sent
        compressed after the client should have stopped.
        """
        self._cancel_flush()
        self._send(self.codec.finish())
        self._stop()
        if self._holding and not self._paused:
            self.transport.resumeProducing()
        self._holding = False
        return self.codec.after_end

    # -- input ---------------------------------------------------------------

    def receive(self, data: bytes) -> None:
        """Take bytes the client sent (compressed)."""
        if self._closed or self._broken:
            return
        self.codec.feed(data)
        self._inflate()

    def _inflate(self) -> None:
        budget = TURN_BUDGET
        while not (self._closed or self._broken or self._paused) and budget > 0:
            try:
                out = self.codec.inflate(min(CHUNK, budget))
            except CompressionError as e:
                # Nothing more is read; the protocol says goodbye, compressed.
                self._broken = True
                self._failed(e)
                return
            if not out:
                break
            budget -= len(out)
            self._deliver(out)
        if len(self.codec.after_end) > self._max_after_end and not self._broken:
            # Uncompressed input is only right once UNAUTHENTICATE ends
            # compression, and then it is a command or two.
            self._broken = True
            self._failed(CompressionError("too much data after the compressed stream ended"))
            return
        self._hold(not (self._closed or self._broken) and self.codec.pending)
        if self._holding and not self._paused and self._slice_call is None:
            # Out of budget for this turn: the rest comes in the next one.
            self._slice_call = self._call_later(0, self._next_slice)

    def _next_slice(self) -> None:
        self._slice_call = None
        self._inflate()

    def _hold(self, holding: bool) -> None:
        """Keep the socket unread while inflated input waits to be handed on."""
        if holding == self._holding:
            return
        self._holding = holding
        if self._paused:
            return
        if holding:
            self.transport.pauseProducing()
        else:
            self.transport.resumeProducing()

    # -- IPushProducer, for the protocol pausing its own input ----------------

    def pauseProducing(self) -> None:
        if not self._paused:
            self._paused = True
            if not self._holding:
                self.transport.pauseProducing()

    def resumeProducing(self) -> None:
        if self._paused:
            self._paused = False
            if not self._holding:
                self.transport.resumeProducing()
            elif self._slice_call is None and not (self._closed or self._broken):
                self._slice_call = self._call_later(0, self._next_slice)

    def stopProducing(self) -> None:
        self.transport.stopProducing()
