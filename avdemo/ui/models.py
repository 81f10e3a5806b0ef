"""The app's models: the picker's choices (names, never server folders), what each name stands for, and
a small cache of loaded models (the app's only state).

A choice is one of: a file name under ``checkpoints/``; ``upload/<content hash>/<file name>`` for an
uploaded checkpoint; or a checkpoint the app was started with (``register_checkpoint``): its file name,
or its URL / ``hf://`` reference.
"""
from __future__ import annotations

import re
from pathlib import Path

from ..cache import PROJECT_ROOT
from ..checkpoints import OFFICIAL_SUFFIXES
from ..errors import AVDemoError
from ..fetch import parse_ref, resolve_checkpoint
from ..model import AVLocalizer
from .guards import MODELS, upload_store
from .inputs import shown

CHECKPOINT_DIR = PROJECT_ROOT / "checkpoints"
DEFAULT_CHECKPOINT = CHECKPOINT_DIR / "default.safetensors"
UPLOAD_PREFIX = "upload/"
_UPLOAD_CHOICE = re.compile(r"upload/([0-9a-f]{16})/([^/\\]+)")
_STARTED_WITH: dict[str, str] = {}     # choice name -> reference, for the checkpoints given at start


def is_checkpoint_file(path: Path) -> bool:
    return path.suffix == ".safetensors" or path.name.endswith(OFFICIAL_SUFFIXES)


def uploads_dir() -> Path:
    """Uploaded checkpoints, one folder per content hash, in the cache folder."""
    return upload_store().root


def upload_choice(path: Path) -> str:
    """The picker's name for an uploaded checkpoint kept at ``uploads_dir()/<hash>/<name>``."""
    return f"{UPLOAD_PREFIX}{path.parent.name}/{path.name}"


def register_checkpoint(ref: str | Path) -> str:
    """Offer the checkpoint ``ref`` (a path, an https:// URL or an hf:// reference) in the picker;
    returns its choice name: the file name for a local file, the reference itself for a remote one."""
    parsed = parse_ref(ref)
    if parsed.kind != "path":
        _STARTED_WITH[str(ref)] = str(ref)
        return str(ref)
    path = Path(parsed.location).resolve()
    if path.parent == CHECKPOINT_DIR and not parsed.sha256:
        return path.name
    ref = str(path) + (f"#sha256={parsed.sha256}" if parsed.sha256 else "")
    name = path.name
    if (CHECKPOINT_DIR / name).exists() or _STARTED_WITH.get(name, ref) != ref:
        name = f"{path.parent.name}/{path.name}"
    _STARTED_WITH[name] = ref
    return name


def checkpoint_choices() -> list[str]:
    """The picker's names: the default first, the other files under ``checkpoints/``, then the
    checkpoints the app was started with."""
    bundled = sorted(p.name for p in CHECKPOINT_DIR.iterdir() if is_checkpoint_file(p))
    if DEFAULT_CHECKPOINT.name in bundled:
        bundled.remove(DEFAULT_CHECKPOINT.name)
        bundled.insert(0, DEFAULT_CHECKPOINT.name)
    return bundled + [name for name in _STARTED_WITH if name not in bundled]


def checkpoint_file(choice: str) -> str:
    """The local file a picker choice stands for (downloaded first for a remote reference); a clear
    error for a name that is none of the choices."""
    name = choice if isinstance(choice, str) else ""
    if name in _STARTED_WITH:
        return str(resolve_checkpoint(_STARTED_WITH[name]))
    path = None
    if match := _UPLOAD_CHOICE.fullmatch(name):
        path = upload_store().use(f"{match[1]}/{match[2]}")      # limits: marked used; removed ones named
    elif name and "/" not in name and "\\" not in name and not name.startswith("."):
        path = CHECKPOINT_DIR / name
    if path is None or not path.is_file() or not is_checkpoint_file(path):
        raise AVDemoError(f"model: {shown(choice)} is not one of the models; pick a listed checkpoint or upload one")
    return str(path)


def model_at(path: str) -> AVLocalizer:
    """The model in the local file ``path``, loaded once (on the GPU when there is one) and shared by
    all sessions (read-only use only); a bounded number of them stay loaded (``guards.MODELS``)."""
    return MODELS.get(path)


def get_model(choice: str) -> AVLocalizer:
    """The model a picker choice stands for."""
    return model_at(checkpoint_file(choice))
