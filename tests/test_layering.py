"""
The storage side speaks its own vocabulary: backends, the MIME code and the
store-facing modules never import the protocol packages, so that a backend
can be written, and reused by POP3, LMTP or a command, without IMAP.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "twisted_mailhub"
PROTOCOLS = ("twisted_mailhub.imap", "twisted_mailhub.pop3")
STORAGE_SIDE = [
    *sorted((PACKAGE / "backends").rglob("*.py")),
    *sorted((PACKAGE / "mime").rglob("*.py")),
    *(PACKAGE / name for name in ("interfaces.py", "model.py", "criteria.py", "ranges.py",
                                  "errors.py", "notify.py")),
]


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("path", STORAGE_SIDE, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_storage_side_does_not_import_protocols(path: Path) -> None:
    offending = sorted(
        name for name in imported_modules(path)
        if any(name == p or name.startswith(p + ".") for p in PROTOCOLS)
    )
    assert offending == []
