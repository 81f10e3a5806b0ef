"""Where the project writes: one cache folder for indexes, uploads, downloads and generated data.

``$AVDEMO_CACHE`` when set (e.g. ``/data/avdemo`` on a Hugging Face Space with persistent storage),
else ``data_cache/`` at the top of the project.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def cache_root() -> Path:
    """The writable cache folder (not created here)."""
    return Path(os.environ.get("AVDEMO_CACHE") or PROJECT_ROOT / "data_cache")


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write via ``write(tmp_path)`` to a temp file in the same folder, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
