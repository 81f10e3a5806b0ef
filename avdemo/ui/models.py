"""The app's models: the picker's choices (names, never server folders), and a ``ModelHandle`` per picked
name, resolved once (the file found or downloaded, its content hashed) and then handed to every handler.

A choice is one of: a file name under ``checkpoints/``; ``upload/<content hash>/<file name>`` for an
uploaded checkpoint; or a checkpoint the app was started with (``register_checkpoint``): its file name,
or its URL / ``hf://`` / ``gdrive://`` reference.

The route of a picked model: the picker's names -> ``Blocks.preprocess_data`` (inputs.py) checks them
against the session's choices -> ``handles(names)`` returns each name's handle (``resolve`` runs once per
name, when it is first picked or uploaded) -> the handler reads ``handle.model`` (``model_at``: loaded once,
least recently used dropped) and ``indexes.get_index(handle, dataset)``.
"""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from ..cache import PROJECT_ROOT, file_sha256
from ..checkpoints import OFFICIAL_SUFFIXES
from ..errors import AVDemoError
from ..fetch import parse_ref, resolve_checkpoint
from ..model import AVLocalizer
from .guards import MODELS, upload_store
from .inputs import shown

MAX_MODELS = 4                  # models side by side: every tab has this many panels
CHECKPOINT_DIR = PROJECT_ROOT / "checkpoints"
DEFAULT_CHECKPOINT = CHECKPOINT_DIR / "default.safetensors"
UPLOAD_PREFIX = "upload/"
_UPLOAD_CHOICE = re.compile(r"upload/([0-9a-f]{16})/([^/\\]+)")
_STARTED_WITH: dict[str, str] = {}     # choice name -> reference, for the checkpoints given at start
_HANDLES: dict[str, "ModelHandle"] = {}
_HANDLES_LOCK = threading.Lock()


@dataclass(frozen=True)
class ModelHandle:
    """A picked model, resolved: the name users see, the local file, its content digest. The loaded model
    and its card are read through it (shared by all sessions, read-only)."""

    name: str          # the picker's choice
    path: str          # the local checkpoint file
    digest: str        # sha256 of its content

    @property
    def model(self) -> AVLocalizer:
        return model_at(self.path)

    @property
    def card(self) -> dict[str, Any]:
        return self.model.card

    @property
    def label(self) -> str:
        """A short name for a column, a trace or a panel: the file name without its folders."""
        return Path(self.name.split("#")[0]).name


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


def resolve(name: str) -> ModelHandle:
    """The handle of the picker choice ``name``: resolved (found or downloaded, hashed) the first time it
    is asked for, then the same handle every time (an upload is marked used each time, and said to be
    removed once the upload store has removed it)."""
    with _HANDLES_LOCK:
        handle = _HANDLES.get(name)
        if handle is not None and _UPLOAD_CHOICE.fullmatch(name):
            checkpoint_file(name)
        if handle is None or not Path(handle.path).is_file():
            path = checkpoint_file(name)
            handle = _HANDLES[name] = ModelHandle(name, path, file_sha256(Path(path)))
        return handle


def handles(names: Any) -> list[ModelHandle]:
    """The handles of the picked models (one name, or a list of up to ``MAX_MODELS``); a clear error for
    none, too many, or a name picked twice."""
    names = [names] if isinstance(names, str) else list(names or [])
    if not names:
        raise AVDemoError("models: pick at least one model")
    if len(names) > MAX_MODELS:
        raise AVDemoError(f"models: at most {MAX_MODELS} side by side ({len(names)} picked)")
    if len(set(map(str, names))) != len(names):
        raise AVDemoError("models: a model is picked twice")
    return [resolve(name) for name in names]


def model_picker(choices: list[str], value: list[str], **kwargs: Any) -> gr.Dropdown:
    """The models' picker: up to ``MAX_MODELS`` choices; handlers that take it get ``list[ModelHandle]``
    (the app's ``Blocks`` converts the checked names with ``handles``)."""
    dropdown = gr.Dropdown(choices, value=value, multiselect=True, max_choices=MAX_MODELS, **kwargs)
    dropdown.converts = handles
    return dropdown


def model_at(path: str) -> AVLocalizer:
    """The model in the local file ``path``, loaded once (on the GPU when there is one) and shared by
    all sessions (read-only use only); a bounded number of them stay loaded (``guards.MODELS``)."""
    return MODELS.get(path)
