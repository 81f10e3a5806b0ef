"""Where the project writes and how: one cache folder for indexes, uploads, downloads and generated data;
atomic writes; content hashes.

``$AVDEMO_CACHE`` when set (e.g. ``/data/avdemo`` on a Hugging Face Space with persistent storage),
else ``data_cache/`` at the top of the project.
"""
from __future__ import annotations

import hashlib
import os
import signal
import tempfile
from pathlib import Path
from typing import Callable

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# Test hook: a process that is about to rename a finished temp file over the path this variable names stops
# itself (SIGSTOP), so that a test can kill it exactly while the temp file exists, or let it go on (SIGCONT).
PAUSE_BEFORE_RENAME = "AVDEMO_TEST_PAUSE_BEFORE_RENAME"


def cache_root() -> Path:
    """The writable cache folder (not created here)."""
    return Path(os.environ.get("AVDEMO_CACHE") or PROJECT_ROOT / "data_cache")


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write via ``write(tmp_path)`` to a temp file in the same folder, then rename over ``path``.

    When ``$AVDEMO_TEST_PAUSE_BEFORE_RENAME`` names ``path``, the process stops itself just before the
    rename (see ``PAUSE_BEFORE_RENAME``); unset, nothing changes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        _pause_before_rename(path)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _pause_before_rename(path: Path) -> None:
    target = os.environ.get(PAUSE_BEFORE_RENAME)
    if target and hasattr(signal, "SIGSTOP") and os.path.abspath(target) == os.path.abspath(path):
        os.kill(os.getpid(), signal.SIGSTOP)


def file_sha256(path: Path) -> str:
    """The sha256 of a file's content, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
