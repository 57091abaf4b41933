"""
The embedding example runs, serves IMAP next to its own periodic job, and
stops cleanly.
"""

from __future__ import annotations

import imaplib
import re
import subprocess
import sys

from test_plugin import DEADLINE, REPO, stop_cleanly, subprocess_env, wait_for

EXAMPLE = REPO / "examples" / "embed.py"


def test_embed_example_serves_imap(tmp_path):
    output = tmp_path / "embed.out"
    with open(output, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, str(EXAMPLE)],
            cwd=tmp_path,
            env=subprocess_env(tmp_path),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        match = wait_for(
            lambda: re.search(r"listening on 127\.0\.0\.1:(\d+)", output.read_text()),
            "the example to listen", process, output,
        )
        with imaplib.IMAP4("127.0.0.1", int(match.group(1)), timeout=DEADLINE) as client:
            assert client.login("alice", "wonderland")[0] == "OK"
            typ, count = client.select("INBOX", readonly=True)
            assert typ == "OK" and int(count[0]) >= 1
            typ, data = client.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            assert typ == "OK"
            assert data[0][1].strip() == b"Subject: Report 1"
            client.logout()
    finally:
        stop_cleanly(process, output)


def test_embed_example_rejects_a_bad_endpoint(tmp_path):
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), "nonsense:1"],
        cwd=tmp_path,
        env=subprocess_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )
    assert result.returncode != 0
