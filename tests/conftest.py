import os
import sys

# Shared test helpers (tests/harness.py) import as a top-level module.
sys.path.insert(0, os.path.dirname(__file__))
