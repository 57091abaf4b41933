import os
import sys
import tempfile

# Shared test helpers (tests/harness.py, tests/tests_messages.py) import as
# top-level modules.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def pytest_sessionstart(session):
    # trial's TestCase.mktemp() makes paths relative to the working directory;
    # keep them (and any store a test creates) out of the source tree.
    os.chdir(tempfile.mkdtemp(prefix="mailhub-tests-"))
