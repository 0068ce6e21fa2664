"""Helpers for the hostile tests: fingerprints of a user's files before and after."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def fingerprint(folder: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """``relative path -> sha256`` of every regular file under ``folder`` (links are
    recorded by their target, not followed); names under a ``skip`` folder are left out
    (lookalike's own output)."""
    prints: dict[str, str] = {}
    for directory, folders, files in os.walk(folder):
        folders[:] = [name for name in folders if name not in skip]
        for name in files:
            path = Path(directory) / name
            relative = path.relative_to(folder).as_posix()
            if path.is_symlink():
                prints[relative] = "link:" + os.readlink(path)
            else:
                prints[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
    return prints
