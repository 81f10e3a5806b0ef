"""The uploads folder under a budget: one folder per upload (``<root>/<content hash>/<file>``), a cap on
each file and on the folder's total size (least recently used uploads go first), and an age limit for
uploads nobody used. An upload goes with what was derived from it (its indexes and mapped example clips
under the index folder), except what a protected checkpoint (the app's default model) shares with it
(the same bytes give the same full-dataset indexes and examples).
Removed uploads are remembered, so that their users are told what happened."""
from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time
from pathlib import Path
from typing import Callable, Iterable

from .cache import atomic_write, file_sha256
from .errors import AVDemoError
from .index import checkpoint_key
from .limits import Limits

MB = 2**20
USED = ".used"                  # in an upload's folder: its time of last use is this file's mtime
EVICTED = ".evicted.json"       # in the root: {"<hash>/<file>": why it was removed}
SUBSET = re.compile(r"-p\d+$")   # an index of a subset of a dataset: an upload's own, never the default model's


def derived_prefixes(checkpoint: Path) -> tuple[str, str]:
    """How the names of what the app derives from a checkpoint begin: its index folders
    (``index.index_folder_name``) and its mapped example clips (``ui.video_tab.example_folder``)."""
    return f"{checkpoint_key(checkpoint)}-", f"{checkpoint.stem}-{file_sha256(checkpoint)[:12]}-"


class UploadStore:
    """The uploads under ``root`` and their derived folders under ``index_dir``, within ``limits``."""

    def __init__(self, root: Path, index_dir: Path, limits: Limits,
                 clock: Callable[[], float] = time.time) -> None:
        self.root, self.index_dir, self.limits, self.clock = Path(root), Path(index_dir), limits, clock
        self._protected: set[Path] = set()
        self._lock = threading.RLock()

    # --- limits ---

    @property
    def file_cap(self) -> int:
        return int(min(self.limits.max_file_mb, self.limits.max_uploads_mb) * MB)

    def kept_for(self) -> str:
        return f"uploads are kept up to {self.limits.max_uploads_mb:g} MB in all and {self.limits.upload_ttl_h:g} h unused"

    def check_sizes(self, paths: Iterable[Path]) -> None:
        """Refuse a file over the per-file cap (before anything is copied)."""
        for path in map(Path, paths):
            if (size := path.stat().st_size) > self.file_cap:
                raise AVDemoError(f"{path.name}: {size / MB:.1f} MB is over the upload limit of "
                                  f"{self.file_cap / MB:.0f} MB per file (AVDEMO_MAX_DOWNLOAD_MB, AVDEMO_MAX_UPLOADS_MB)")

    def protect(self, checkpoint: Path) -> None:
        """Never remove what ``checkpoint`` (a file outside the uploads) shares with an upload."""
        self._protected.add(Path(checkpoint))

    # --- use ---

    def touch(self, folder: Path) -> None:
        """Mark the upload in ``folder`` used now."""
        now = self.clock()
        (folder / USED).touch()
        os.utime(folder / USED, (now, now))

    def use(self, key: str) -> Path | None:
        """The file of the upload ``<hash>/<file>``, marked used; None for an unknown one; a clear
        ``AVDemoError`` for one that was removed."""
        with self._lock:
            path = self.root / key
            if path.is_file():
                self.touch(path.parent)
                return path
            if why := self._evicted().get(key):
                raise AVDemoError(f"model: {path.name} was removed ({why}; {self.kept_for()}); upload it again")
            return None

    def added(self, folder: Path) -> list[str]:
        """After a new upload was put in ``folder``: mark it used, then remove others to stay within the
        limits; returns the removed uploads' keys."""
        with self._lock:
            self.touch(folder)
            self._evicted_write({k: v for k, v in self._evicted().items() if not k.startswith(folder.name + "/")})
            return self.enforce(keep=folder)

    # --- eviction ---

    def uploads(self) -> list[tuple[float, int, Path]]:
        """(last use, bytes, folder) of every upload, least recently used first."""
        found = []
        for folder in self.root.iterdir() if self.root.is_dir() else []:
            if folder.is_dir() and not folder.name.startswith("."):
                used = folder / USED
                last = used.stat().st_mtime if used.exists() else folder.stat().st_mtime
                found.append((last, sum(p.stat().st_size for p in folder.iterdir() if p.is_file()), folder))
        return sorted(found, key=lambda u: u[0])

    def total_bytes(self) -> int:
        return sum(size for _, size, _ in self.uploads())

    def enforce(self, keep: Path | None = None) -> list[str]:
        """Remove the uploads unused for longer than the age limit, then the least recently used ones while
        the total is over the cap (never ``keep``); returns the removed uploads' keys."""
        with self._lock:
            uploads = self.uploads()
            total, removed = sum(size for _, size, _ in uploads), []
            ttl_s = self.limits.upload_ttl_h * 3600
            for last, size, folder in uploads:
                if folder == keep:
                    continue
                if ttl_s and self.clock() - last > ttl_s:
                    why = f"unused for more than {self.limits.upload_ttl_h:g} h"
                elif total > self.limits.max_uploads_mb * MB:
                    why = "the uploads folder was full and it was the least recently used"
                else:
                    continue
                removed += self.remove(folder, why)
                total -= size
            return removed

    def remove(self, folder: Path, why: str) -> list[str]:
        """Remove the upload in ``folder`` and what was derived from it; returns its keys."""
        weights = [p for p in folder.iterdir() if p.is_file() and p.suffix != ".json" and p.name != USED]
        shared = tuple(prefix for p in self._protected if p.is_file() for prefix in derived_prefixes(p))
        prefixes = tuple(prefix for w in weights for prefix in derived_prefixes(w))
        for parent in (self.index_dir, self.index_dir / "examples"):
            for derived in parent.iterdir() if parent.is_dir() else []:
                protected = derived.name.startswith(shared) and not SUBSET.search(derived.name)
                if derived.is_dir() and derived.name.startswith(prefixes) and not protected:
                    shutil.rmtree(derived, ignore_errors=True)
        shutil.rmtree(folder, ignore_errors=True)
        keys = [f"{folder.name}/{w.name}" for w in weights]
        self._evicted_write({**self._evicted(), **{key: why for key in keys}})
        return keys

    def _evicted(self) -> dict[str, str]:
        path = self.root / EVICTED
        return json.loads(path.read_text()) if path.is_file() else {}

    def _evicted_write(self, evicted: dict[str, str]) -> None:
        if evicted or (self.root / EVICTED).exists():
            atomic_write(self.root / EVICTED, lambda tmp: tmp.write_text(json.dumps(evicted)))
