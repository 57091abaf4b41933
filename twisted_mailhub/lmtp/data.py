"""
The message text after DATA: found up to its terminating line and
un-stuffed, within a size bound, whatever the chunking of the input.

RFC 5321 section 4.1.1.4: the mail data ends with a line holding a single
period, that is the sequence CRLF "." CRLF (the CRLF before the period may
be the one ending the DATA command, for an empty message).  Section 4.5.2:
a line of the data that starts with a period had one more period added by
the client, which the server removes.
"""

from __future__ import annotations

_END = b"\r\n.\r\n"
_STUFFED = b"\r\n."


class DataReader:
    """
    Collects one message.  Feed it the bytes received after the 354 reply
    with L{feed}; once the terminating line has been seen, L{feed} returns
    the bytes that followed it (the client's next commands, when it
    pipelines).  A message over C{max_size} octets (un-stuffed) is read to
    its end but not kept: L{too_big} is then true and L{content} C{None}.
    """

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self.too_big = False
        self.done = False
        # The raw (stuffed) bytes received, after a CRLF standing for the
        # end of the DATA line: a first line "." then ends the data, and a
        # first line starting with "." is un-stuffed like any other.
        self._raw = bytearray(b"\r\n")
        # How many lines of _raw start with a period: the octets un-stuffing
        # will remove.
        self._stuffed = 0
        self._content: bytes | None = None

    def _size_so_far(self) -> int:
        # The un-stuffed size if the data went on; the start of the
        # terminating line may be pending ("CRLF . CR"), which adds at most
        # one octet that will not be content.
        return len(self._raw) - 2 - self._stuffed

    def feed(self, data: bytes) -> bytes | None:
        """
        Take C{data}; return C{None} while the message goes on, or the
        bytes after its terminating line once it ended (maybe C{b""}).
        """
        if self.done:
            raise RuntimeError("the message has already ended")
        start = len(self._raw)
        self._raw += data
        end = self._raw.find(_END, max(0, start - 4))
        if end >= 0:
            rest = bytes(self._raw[end + len(_END):])
            self.done = True
            if not self.too_big:
                # Keep the CRLF ending the last line; drop the one standing
                # for the DATA line.
                content = bytes(self._raw[:end + 2].replace(_STUFFED, b"\r\n")[2:])
                if len(content) > self.max_size:
                    self.too_big = True
                else:
                    self._content = content
            self._raw = bytearray()
            return rest
        self._count_stuffed(start)
        if not self.too_big and self._size_so_far() > self.max_size + 1:
            self.too_big = True
        if self.too_big:
            # Keep only what may be the start of the terminating line.
            del self._raw[:-4]
            self._stuffed = 0
        return None

    def _count_stuffed(self, start: int) -> None:
        if self.too_big:
            return
        # An occurrence starting two octets before the new data ends in it,
        # so was not counted before; one starting earlier was.
        self._stuffed += self._raw.count(_STUFFED, max(0, start - 2))

    @property
    def content(self) -> bytes | None:
        """The message, un-stuffed, with its final CRLF; C{None} if too big."""
        return self._content
