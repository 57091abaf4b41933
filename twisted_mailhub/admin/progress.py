"""
The progress of ``mailhub import`` and ``export``.

On a terminal, one line on standard error redrawn at most ten times a
second: the mailbox, messages done (of how many, when known), megabytes
(of how many), and the rates.  Either way a summary line is printed on
standard output at the end, unless the command was asked to be quiet.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

_MB = 1024 * 1024
_REDRAW = 0.1


class Progress:
    """
    Counts messages and bytes for the mailbox being worked on and in all.

    C{bar} says whether to draw the bar (default: when C{stream} is a
    terminal); C{quiet} turns both bar and summary off.
    """

    def __init__(self, verb: str, *, quiet: bool = False, stream: TextIO | None = None,
                 bar: bool | None = None, out: TextIO | None = None) -> None:
        self.verb = verb
        self.stream = stream if stream is not None else sys.stderr
        self.out = out if out is not None else sys.stdout
        self.quiet = quiet
        self.bar = not quiet and (self.stream.isatty() if bar is None else bar)
        self.messages = 0
        self.bytes = 0
        self.mailboxes = 0
        self._started = time.monotonic()
        self._drawn = 0.0
        self._name = ""
        self._done = 0
        self._total: int | None = None
        self._done_bytes = 0
        self._total_bytes: int | None = None
        self._box_started = self._started

    def mailbox(self, name: str, messages: int | None = None, size: int | None = None) -> None:
        """Start on the mailbox C{name} of C{messages} messages and C{size} bytes, if known."""
        if self.mailboxes:
            self._draw(force=True)  # how the last one ended
        self.mailboxes += 1
        self._name, self._total, self._total_bytes = name, messages, size
        self._done = self._done_bytes = 0
        self._box_started = time.monotonic()
        self._draw(force=True)

    def advance(self, messages: int, size: int) -> None:
        """C{messages} more messages of C{size} bytes are done."""
        self.messages += messages
        self.bytes += size
        self._done += messages
        self._done_bytes += size
        self._draw()

    def _draw(self, force: bool = False) -> None:
        if not self.bar:
            return
        now = time.monotonic()
        if not force and now - self._drawn < _REDRAW:
            return
        self._drawn = now
        elapsed = max(now - self._box_started, 1e-6)
        count = f"{self._done}" + (f"/{self._total}" if self._total is not None else "")
        size = f"{self._done_bytes / _MB:.1f}" + (
            f"/{self._total_bytes / _MB:.1f}" if self._total_bytes is not None else "")
        line = (f"{self._name}  {count} messages  {size} MB  "
                f"{self._done / elapsed:.0f} msg/s  {self._done_bytes / _MB / elapsed:.1f} MB/s")
        if self._total_bytes:
            done = min(1.0, self._done_bytes / self._total_bytes)
        elif self._total:
            done = min(1.0, self._done / self._total)
        else:
            done = None
        if done is not None:
            filled = int(done * 20)
            line = f"[{'#' * filled}{'.' * (20 - filled)}] {done * 100:3.0f}%  " + line
        self.stream.write("\r\x1b[K" + line)
        self.stream.flush()

    def summary(self, where: str) -> str:
        """The closing line: what was done, where, and how fast."""
        elapsed = max(time.monotonic() - self._started, 1e-6)
        return (f"{self.verb} {self.messages} messages ({self.bytes / _MB:.1f} MB) "
                f"{where} in {elapsed:.1f} s ({self.messages / elapsed:.0f} messages/s)")

    def finish(self, where: str) -> None:
        """Clear the bar and print the summary line."""
        if self.bar and self.mailboxes:
            self._draw(force=True)
        if self.bar:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
        if not self.quiet:
            print(self.summary(where), file=self.out)
