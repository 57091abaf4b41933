"""
COMPRESS=DEFLATE (RFC 4978): transcripts of the clear and compressed
halves of a session, imaplib with a deflate layer fetching a large message,
pipelined bursts, a decompression bomb, broken input, and the layer itself
on a fake transport and clock.
"""

from __future__ import annotations

import base64
import imaplib
import os
import zlib

from twisted.internet import task
from twisted.trial import unittest

from harness import IMAPServerTestCase, RawClient, on_every_store
from tests_messages import simple_message

from twisted_mailhub.imap.compress import CHUNK, TURN_BUDGET, CompressingTransport, Deflate
from twisted_mailhub.model import AppendRequest


class DeflateClient(RawClient):
    """A raw line client that compresses, once L{start} is called, both ways."""

    def __init__(self, port: int) -> None:
        super().__init__(port)
        self.out: zlib._Compress | None = None
        self.inflater: zlib._Decompress | None = None
        self.wire_received = 0
        self.wire_sent = 0

    def start(self) -> None:
        self.out = zlib.compressobj(6, zlib.DEFLATED, -15)
        self.inflater = zlib.decompressobj(-15)

    def send(self, data: bytes) -> None:
        if self.out is not None:
            data = self.out.compress(data) + self.out.flush(zlib.Z_SYNC_FLUSH)
        self.wire_sent += len(data)
        self.sock.sendall(data)

    def read_to_eof(self) -> None:
        """Read (and count) until the server closes the connection."""
        try:
            while True:
                self.buffer += self._recv()
        except ConnectionError:
            pass

    def _recv(self) -> bytes:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection; had: %r" % self.buffer)
        self.wire_received += len(chunk)
        if self.inflater is None:
            return chunk
        if self.inflater.eof:
            # The server ended its stream: the rest is in the clear.
            return chunk
        out = self.inflater.decompress(chunk)
        if self.inflater.eof:
            out += self.inflater.unused_data
        return out

    def line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            self.buffer += self._recv()
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line + b"\r\n"

    def read_exact(self, n: int) -> bytes:
        while len(self.buffer) < n:
            self.buffer += self._recv()
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data


class DeflateIMAP4(imaplib.IMAP4):
    """imaplib with COMPRESS=DEFLATE: the commands and responses inflated in between."""

    _out = None

    def compress(self):
        # imaplib knows no COMPRESS: say in which states it may be sent.
        imaplib.Commands.setdefault("COMPRESS", ("AUTH", "SELECTED"))
        typ, data = self._simple_command("COMPRESS", "DEFLATE")
        if typ == "OK":
            self._out = zlib.compressobj(6, zlib.DEFLATED, -15)
            self._in = zlib.decompressobj(-15)
            self._plain = bytearray()
            self.wire_received = 0
        return typ, data

    def _fill(self) -> None:
        chunk = self.file.read1(65536)
        if not chunk:
            raise self.abort("socket error: EOF")
        self.wire_received += len(chunk)
        self._plain += self._in.decompress(chunk)

    def read(self, size):
        if self._out is None:
            return super().read(size)
        while len(self._plain) < size:
            self._fill()
        data = bytes(self._plain[:size])
        del self._plain[:size]
        return data

    def readline(self):
        if self._out is None:
            return super().readline()
        while b"\n" not in self._plain:
            self._fill()
        end = self._plain.index(b"\n") + 1
        line = bytes(self._plain[:end])
        del self._plain[:end]
        return line

    def send(self, data):
        if self._out is not None:
            data = self._out.compress(data) + self._out.flush(zlib.Z_SYNC_FLUSH)
        super().send(data)


def big_message(size: int) -> bytes:
    """A message of about C{size} bytes: base64 of random data, which
    compresses to three quarters, so the compressed stream is large too."""
    body = base64.encodebytes(os.urandom(size * 3 // 4)).replace(b"\n", b"\r\n")
    return (b"From: carol@example.net\r\nTo: alice@example.org\r\nSubject: big\r\n"
            b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n"
            b"\r\n" + body)


@on_every_store
class CompressTranscriptTests(IMAPServerTestCase):
    async def setUp(self) -> None:
        await super().setUp()
        store = await self.backend.open_store("alice")
        inbox = await store.get_mailbox("INBOX")
        await inbox.append([AppendRequest(simple_message(f"m{i}")) for i in range(1, 4)])

    def login(self) -> DeflateClient:
        c = DeflateClient(self.port)
        c.line()
        c.command(b"t0 LOGIN alice wonderland")
        return c

    async def test_compressed_session(self) -> None:
        def run():
            c = self.login()
            caps = c.command(b"t1 CAPABILITY")[0].split()
            out = [c.command(b"t2 COMPRESS DEFLATE")]
            c.start()
            out += [c.command(b"t3 NOOP"),
                    c.command(b"t4 COMPRESS DEFLATE"),
                    c.command(b"t5 EXAMINE INBOX"),
                    c.command(b"t6 FETCH 2 (UID RFC822.SIZE BODY[HEADER.FIELDS (SUBJECT)])"),
                    c.command(b"t7 LOGOUT")]
            self.assertTrue(c.closed())
            c.close()
            return caps, out

        caps, out = await self.in_thread(run)
        self.assertIn(b"COMPRESS=DEFLATE", caps)
        # The OK is the last thing said in the clear.
        self.assertEqual(out[0], [b"t2 OK DEFLATE active\r\n"])
        self.assertEqual(out[1], [b"t3 OK NOOP completed\r\n"])
        # RFC 4978 section 3: not twice.
        self.assertEqual(out[2], [
            b"t4 NO [COMPRESSIONACTIVE] DEFLATE is already active via COMPRESS\r\n"])
        self.assertIn(b"* 3 EXISTS\r\n", out[3])
        self.assertEqual(out[3][-1], b"t5 OK [READ-ONLY] EXAMINE completed\r\n")
        size = len(simple_message("m2"))
        self.assertEqual(out[4], [
            b"* 2 FETCH (UID 2 RFC822.SIZE %d BODY[HEADER.FIELDS (SUBJECT)] {15}\r\n" % size,
            b"Subject: m2\r\n",
            b"\r\n",
            b")\r\n",
            b"t6 OK FETCH completed\r\n"])
        self.assertEqual(out[5], [b"* BYE Logging out\r\n", b"t7 OK LOGOUT completed\r\n"])

    async def test_bytes_counted_are_those_on_the_wire(self) -> None:
        """The connection's byte counts (metrics) are of the compressed stream."""
        c = await self.in_thread(self.login)
        [protocol] = list(self.factory.connections)

        def run():
            c.command(b"t1 COMPRESS DEFLATE")
            c.start()
            c.command(b"t2 SELECT INBOX")
            c.command(b"t3 FETCH 1:3 (BODY.PEEK[])")
            c.command(b"t4 LOGOUT")
            c.read_to_eof()
            c.close()

        await self.in_thread(run)
        self.assertEqual(protocol.bytes_sent, c.wire_received)
        self.assertEqual(protocol.bytes_received, c.wire_sent)

    async def test_idle_pushes_through_compression(self) -> None:
        """An update pushed during IDLE is flushed to the client at once."""

        def start():
            c = self.login()
            c.command(b"t1 COMPRESS DEFLATE")
            c.start()
            c.command(b"t2 SELECT INBOX")
            c.send(b"t3 IDLE\r\n")
            return c, c.line()

        c, idling = await self.in_thread(start)
        self.assertEqual(idling, b"+ idling\r\n")
        inbox = await (await self.backend.open_store("alice")).get_mailbox("INBOX")
        await inbox.append([AppendRequest(simple_message("while idling"))])

        def finish():
            pushed = [c.line(), c.line()]
            c.send(b"DONE\r\n")
            done = c.until_tagged(b"t3")
            c.close()
            return pushed, done

        pushed, done = await self.in_thread(finish)
        self.assertEqual(pushed[0], b"* 4 EXISTS\r\n")
        self.assertEqual(done, [b"t3 OK IDLE terminated\r\n"])

    async def test_refused_before_login_and_for_other_mechanisms(self) -> None:
        def run():
            c = DeflateClient(self.port)
            greeting = c.line()
            out = [c.command(b"t1 COMPRESS DEFLATE")]
            c.command(b"t2 LOGIN alice wonderland")
            out += [c.command(b"t3 COMPRESS LZW"), c.command(b"t4 COMPRESS"),
                    c.command(b"t5 NOOP")]
            c.close()
            return greeting, out

        greeting, out = await self.in_thread(run)
        # COMPRESS is a command of the authenticated state, offered there.
        self.assertNotIn(b"COMPRESS=DEFLATE", greeting)
        self.assertEqual(out, [
            [b"t1 BAD COMPRESS not allowed before authentication\r\n"],
            [b"t3 BAD Unknown compression mechanism: LZW\r\n"],
            [b"t4 BAD Missing compression mechanism\r\n"],
            # Refused, so still in the clear.
            [b"t5 OK NOOP completed\r\n"]])

    async def test_pipelined_burst(self) -> None:
        """Three hundred commands in one compressed write, answered in order."""

        def run():
            c = self.login()
            c.command(b"t1 COMPRESS DEFLATE")
            c.start()
            c.command(b"t2 SELECT INBOX")
            burst = b"".join(b"p%d %s\r\n" % (i, (b"NOOP", b"FETCH 1:3 (UID FLAGS)",
                                                  b"UID SEARCH ALL")[i % 3])
                             for i in range(300))
            c.send(burst)
            lines = c.until_tagged(b"p299")
            c.command(b"t3 LOGOUT")
            c.close()
            return lines

        lines = await self.in_thread(run)
        tagged = [line.split(b" ", 2)[:2] for line in lines if line.startswith(b"p")]
        self.assertEqual(tagged, [[b"p%d" % i, b"OK"] for i in range(300)])
        self.assertEqual(sum(line.startswith(b"* 3 FETCH (UID 3 FLAGS (") for line in lines), 100)
        self.assertEqual(lines.count(b"* SEARCH 1 2 3\r\n"), 100)

    async def test_unauthenticate_ends_compression(self) -> None:
        """RFC 8437 section 4.1: the OK is the last compressed byte, both ways."""

        def run():
            c = self.login()
            c.command(b"t1 COMPRESS DEFLATE")
            c.start()
            c.command(b"t2 SELECT INBOX")
            out = [c.command(b"t3 UNAUTHENTICATE")]
            # The server ended its stream after the OK; the client stops too.
            ended = c.inflater.eof
            c.out = None
            out += [c.command(b"t4 LOGIN bob builder"), c.command(b"t5 COMPRESS DEFLATE")]
            c.start()
            out += [c.command(b"t6 STATUS INBOX (MESSAGES)"), c.command(b"t7 LOGOUT")]
            c.close()
            return ended, out

        ended, out = await self.in_thread(run)
        self.assertTrue(ended)
        self.assertEqual(out[0], [b"t3 OK UNAUTHENTICATE completed\r\n"])
        self.assertRegex(out[1][0], rb"^t4 OK \[CAPABILITY .*\] LOGIN completed\r\n$")
        # Compression may start again: it is not active any more.
        self.assertEqual(out[2], [b"t5 OK DEFLATE active\r\n"])
        self.assertEqual(out[3], [b'* STATUS INBOX (MESSAGES 0)\r\n',
                                  b"t6 OK STATUS completed\r\n"])

    async def test_login_pipelined_after_the_end_of_the_compressed_stream(self) -> None:
        def run():
            c = self.login()
            c.command(b"t1 COMPRESS DEFLATE")
            c.start()
            # UNAUTHENTICATE, the end of the client's stream, then a LOGIN in
            # the clear, in one write.
            c.sock.sendall(c.out.compress(b"t2 UNAUTHENTICATE\r\n") + c.out.flush(zlib.Z_FINISH)
                           + b"t3 LOGIN bob builder\r\n")
            c.out = None
            out = [c.until_tagged(b"t2"), c.until_tagged(b"t3"), c.command(b"t4 NOOP")]
            c.close()
            return out

        out = await self.in_thread(run)
        self.assertEqual(out[0], [b"t2 OK UNAUTHENTICATE completed\r\n"])
        self.assertRegex(out[1][0], rb"^t3 OK \[CAPABILITY .*\] LOGIN completed\r\n$")
        self.assertEqual(out[2], [b"t4 OK NOOP completed\r\n"])

    async def test_invalid_compressed_data_ends_the_session(self) -> None:
        def run():
            c = self.login()
            c.command(b"t1 COMPRESS DEFLATE")
            c.start()
            # Not DEFLATE: block type 3 does not exist (RFC 1951 3.2.3).
            c.sock.sendall(b"\xff\xff\xff\xff")
            bye = c.line()
            closed = c.closed()
            c.close()
            return bye, closed

        bye, closed = await self.in_thread(run)
        self.assertEqual(bye, b"* BYE Invalid compressed data\r\n")
        self.assertTrue(closed)


class CompressWithClientsTests(IMAPServerTestCase):
    async def test_large_fetch_through_compression_arrives_whole(self) -> None:
        """imaplib reads an 8 MB message through the compressed stream."""
        content = big_message(8 * 2**20)
        store = await self.backend.open_store("alice")
        inbox = await store.get_mailbox("INBOX")
        await inbox.append([AppendRequest(simple_message("small")), AppendRequest(content)])

        def run():
            client = DeflateIMAP4("127.0.0.1", self.port, timeout=60)
            client.login("alice", "wonderland")
            self.assertEqual(client.compress()[0], "OK")
            client.select("INBOX")
            typ, data = client.fetch("2", "(BODY.PEEK[])")
            client.logout()
            return typ, data, client.wire_received

        typ, data, wire = await self.in_thread(run)
        self.assertEqual(typ, "OK")
        self.assertEqual(data[0][1], content)
        # Compressed on the way: base64 of random bytes deflates to about 3/4.
        self.assertLess(wire, len(content) * 0.9)

    async def test_decompression_bomb_is_read_in_bounded_pieces(self) -> None:
        """
        A 32 MB line sent as a few tens of kilobytes is refused as too long,
        like the same line sent uncompressed, and the session goes on.
        """

        def run():
            c = DeflateClient(self.port)
            c.line()
            c.command(b"t0 LOGIN alice wonderland")
            c.command(b"t1 COMPRESS DEFLATE")
            c.start()
            c.send(b"t2 NOOP " + b"x" * (32 * 2**20) + b"\r\n")
            refused = c.line()
            after = c.command(b"t3 NOOP")
            c.close()
            return refused, after, c.wire_received

        refused, after, _ = await self.in_thread(run)
        self.assertEqual(refused, b"t2 BAD [TOOBIG] Line too long\r\n")
        self.assertEqual(after, [b"t3 OK NOOP completed\r\n"])


class MemoryTransport:
    """What CompressingTransport writes to: bytes kept, pauses counted."""

    def __init__(self) -> None:
        self.written = bytearray()
        self.paused = False
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written += data

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False

    def loseConnection(self) -> None:
        self.closed = True


class Counter:
    bytes_sent = 0


class CompressingTransportTests(unittest.TestCase):
    def setUp(self) -> None:
        self.clock = task.Clock()
        self.transport = MemoryTransport()
        self.delivered: list[int] = []
        self.failures: list[Exception] = []
        self.counter = Counter()
        self.layer = CompressingTransport(
            self.transport, lambda data: self.delivered.append(len(data)),
            self.failures.append, self.clock.callLater, counter=self.counter)

    def test_one_flush_per_turn(self) -> None:
        for i in range(200):
            line = b"* %03d FETCH (UID 1)\r\n" % i
            self.counter.bytes_sent += len(line)  # as the protocol counts its writes
            self.layer.write(line)
        # One flush scheduled for the end of the turn, however many writes.
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.clock.advance(0)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        inflater = zlib.decompressobj(-15)
        text = inflater.decompress(bytes(self.transport.written))
        self.assertEqual(text, b"".join(b"* %03d FETCH (UID 1)\r\n" % i for i in range(200)))
        # The count is of the bytes that went out: the compressed ones.
        self.assertEqual(self.counter.bytes_sent, len(self.transport.written))
        self.assertLess(len(self.transport.written), 1000)
        # A sync flush ends the burst: the client can read all of it now.
        self.assertTrue(self.transport.written.endswith(b"\x00\x00\xff\xff"))

    def test_bomb_is_inflated_a_budget_per_turn(self) -> None:
        size = 64 * 2**20
        bomb = zlib.compressobj(9, zlib.DEFLATED, -15)
        data = bomb.compress(b"\0" * size) + bomb.flush(zlib.Z_SYNC_FLUSH)
        self.assertLess(len(data), 128 * 1024)
        self.layer.receive(data)
        per_turn = [sum(self.delivered)]
        self.assertLessEqual(max(self.delivered), CHUNK)
        # The socket is not read while inflated input waits.
        self.assertTrue(self.transport.paused)
        # One reactor turn at a time (Clock.advance would run the calls
        # scheduled meanwhile in the same go).
        while self.clock.getDelayedCalls():
            [call] = self.clock.getDelayedCalls()
            self.clock.calls.remove(call)
            before = sum(self.delivered)
            call.func(*call.args, **call.kw)
            per_turn.append(sum(self.delivered) - before)
        self.assertEqual(sum(self.delivered), size)
        self.assertLessEqual(max(per_turn), TURN_BUDGET)
        self.assertLessEqual(max(self.delivered), CHUNK)
        self.assertFalse(self.transport.paused)

    def test_protocol_pause_stops_inflating(self) -> None:
        out = zlib.compressobj(6, zlib.DEFLATED, -15)
        data = out.compress(os.urandom(1024) * 512) + out.flush(zlib.Z_SYNC_FLUSH)

        def deliver(chunk: bytes) -> None:
            self.delivered.append(len(chunk))
            self.layer.pauseProducing()  # a command runs; its backlog is full

        self.layer._deliver = deliver
        self.layer.receive(data)
        self.assertEqual(len(self.delivered), 1)
        self.assertTrue(self.transport.paused)
        self.clock.advance(0)
        self.assertEqual(len(self.delivered), 1)
        self.layer._deliver = lambda chunk: self.delivered.append(len(chunk))
        self.layer.resumeProducing()
        self.assertTrue(self.transport.paused)
        self.clock.advance(0)
        self.assertEqual(sum(self.delivered), 512 * 1024)
        self.assertFalse(self.transport.paused)

    def test_finish_ends_the_stream_and_gives_back_the_clear_rest(self) -> None:
        self.layer.write(b"u1 OK UNAUTHENTICATE completed\r\n")
        client = zlib.compressobj(6, zlib.DEFLATED, -15)
        self.layer.receive(client.compress(b"u1 UNAUTHENTICATE\r\n") + client.flush(zlib.Z_FINISH)
                           + b"u2 LOGIN bob builder\r\n")
        self.assertEqual(self.delivered, [len(b"u1 UNAUTHENTICATE\r\n")])
        rest = self.layer.finish()
        self.assertEqual(rest, b"u2 LOGIN bob builder\r\n")
        inflater = zlib.decompressobj(-15)
        self.assertEqual(inflater.decompress(bytes(self.transport.written)),
                         b"u1 OK UNAUTHENTICATE completed\r\n")
        self.assertTrue(inflater.eof)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_input_after_the_end_is_bounded(self) -> None:
        client = zlib.compressobj(6, zlib.DEFLATED, -15)
        self.layer.receive(client.flush(zlib.Z_FINISH) + b"x" * (CHUNK + 1))
        self.assertEqual(len(self.failures), 1)

    def test_codec_refuses_what_is_not_deflate(self) -> None:
        from twisted_mailhub.imap.compress import CompressionError

        codec = Deflate()
        codec.feed(b"\xff\xff\xff")
        self.assertRaises(CompressionError, codec.inflate)
