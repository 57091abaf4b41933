"""Small message builders, and a corpus of messages, shared by tests."""

import base64
import quopri


def simple_message(subject: str, body: str = "Hello.", sender: str = "carol@example.net") -> bytes:
    return (f"From: {sender}\r\nTo: alice@example.org\r\nSubject: {subject}\r\n"
            f"Date: Tue, 8 Feb 2022 10:00:00 +0100\r\n\r\n{body}\r\n").encode()


def mime_message(headers: str, body: bytes) -> bytes:
    """A message of C{headers} (LF-separated) and C{body} (bytes, CRLF already)."""
    return headers.replace("\n", "\r\n").encode("ascii") + b"\r\n" + body


def base64_lines(data: bytes) -> bytes:
    """C{data} in base64, in lines ending in CRLF."""
    return base64.encodebytes(data).replace(b"\n", b"\r\n")


#: Messages whose MIME shapes and encodings the full-text search and the
#: summaries tests run on: RFC 2047 words, quoted-printable and base64 in
#: several charsets, multiparts with attachments, a forwarded message, an
#: empty body and a large one.
CORPUS = [
    # 1: RFC 2047 words in the header, plain ASCII body with quotes and LIKE wildcards.
    mime_message("From: =?iso-8859-1?q?Andr=E9_M=FCller?= <andre@example.org>\n"
                 "To: bob@example.org\n"
                 "Subject: =?utf-8?b?UmVuZGV6LXZvdXMgw6AgQ2Fmw6k=?=\n",
                 b'Meet "quoted" at 100% under_score time.\r\n[urgent] *star* what?\r\nSee you.\r\n'),
    # 2: quoted-printable latin-1 with a soft line break inside a word.
    mime_message("From: carol@example.org\nSubject: minutes\nMIME-Version: 1.0\n"
                 "Content-Type: text/plain; charset=iso-8859-1\n"
                 "Content-Transfer-Encoding: quoted-printable\n",
                 b"The extra=\r\nordinary r=E9sum=E9 of the meeting: caf=E9 au lait.=\r\n\r\n"
                 b"Gro=DFe STRA=DFE ahead.\r\n"),
    # 3: multipart: base64 UTF-8 text, HTML, and attachments with encoded names.
    mime_message("From: dave@example.org\nSubject: report\nMIME-Version: 1.0\n"
                 "Content-Type: multipart/mixed; boundary=\"b1\"\n",
                 b"--b1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
                 + base64_lines("Привет, мир! Quarterly Übersicht für Köln.".encode("utf-8"))
                 + b"--b1\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Hello <b>world</b></p>\r\n"
                 b"--b1\r\nContent-Type: application/pdf\r\n"
                 b"Content-Disposition: attachment; filename*=utf-8''%C3%BCbersicht-2024.pdf\r\n"
                 b"Content-Transfer-Encoding: base64\r\n\r\n"
                 + base64_lines(b"%PDF-1.4 binaryneedle \x00\x01\x02")
                 + b"--b1\r\nContent-Type: application/msword; name=\"=?utf-8?q?r=C3=A9sum=C3=A9.doc?=\"\r\n"
                 b"Content-Transfer-Encoding: base64\r\n\r\n"
                 + base64_lines(b"docneedle")
                 + b"--b1--\r\n"),
    # 4: a forwarded message/rfc822 whose own parts are encoded.
    mime_message("From: erin@example.org\nSubject: Fwd: plans\nMIME-Version: 1.0\n"
                 "Content-Type: multipart/mixed; boundary=outer\n",
                 b"--outer\r\nContent-Type: text/plain\r\n\r\nSee the attached.\r\n"
                 b"--outer\r\nContent-Type: message/rfc822\r\n\r\n"
                 b"From: frank@example.org\r\nSubject: =?utf-8?q?Inner_sujet_d=C3=A9j=C3=A0?=\r\n"
                 b"Content-Type: text/plain; charset=koi8-r\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
                 + quopri.encodestring("Секретный план".encode("koi8-r")).replace(b"\n", b"\r\n")
                 + b"\r\n--outer--\r\n"),
    # 5: other charsets: Shift_JIS and windows-1252.
    mime_message("From: gina@example.org\nSubject: =?shift_jis?b?k/qWe4zq?=\nMIME-Version: 1.0\n"
                 "Content-Type: multipart/alternative; boundary=alt\n",
                 b"--alt\r\nContent-Type: text/plain; charset=shift_jis\r\n\r\n"
                 + "日本語のテキストです".encode("shift_jis")
                 + b"\r\n--alt\r\nContent-Type: text/plain; charset=windows-1252\r\n\r\n"
                 + "\u201csmart\u201d quotes \u20ac5".encode("windows-1252")
                 + b"\r\n--alt--\r\n"),
    # 6: an empty body, and a message with only a header.
    mime_message("From: heidi@example.org\nSubject: a\n", b""),
    # 7: short words only.
    mime_message("From: ivan@example.org\nSubject: ok\n", b"a b c ab ba x\r\n"),
    # 8: a large plain body with one word near its end.
    mime_message("From: judy@example.org\nSubject: long\n",
                 b"filler line of text\r\n" * 2000 + b"needle-at-the-end\r\n"),
]
