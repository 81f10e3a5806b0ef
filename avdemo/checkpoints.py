"""Load and save models: our safetensors + JSON model card, the authors' .pth.tar, peers' {'model': ...}.

Loading never runs code from a file: safetensors, or ``torch.load(weights_only=True)`` with a short
allowlist of plain types; full unpickling only when the caller says the file is trusted.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import re
import subprocess
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from .cache import atomic_write
from .config import FAMILIES, ModelConfig
from .errors import AVDemoError
from .fetch import checkpoint_format, read_card, resolve_checkpoint
from .model import AVLocalizer

OFFICIAL_SUFFIXES = (".pth.tar", ".pth", ".pt", ".tar", ".ckpt")


def card_path(weights_path: Path) -> Path:
    return weights_path.with_suffix(".json")


def git_commit() -> str | None:
    """The current commit of the project, for provenance; None outside a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def save_model(model: AVLocalizer, path: str | Path, card: dict[str, Any] | None = None,
               dtype: torch.dtype = torch.float32) -> Path:
    """Write ``path`` (.safetensors) and its JSON model card (config + ``card``), each atomically."""
    path = Path(path).with_suffix(".safetensors")
    state = {k: v.detach().to("cpu", dtype if v.is_floating_point() else v.dtype).contiguous()
             for k, v in model.state_dict().items()}
    full_card = {"format": "avdemo/1", "config": model.cfg.to_dict(), **(card or {})}
    atomic_write(path, lambda p: save_file(state, str(p), metadata={"format": "avdemo/1"}))
    atomic_write(card_path(path), lambda p: p.write_text(json.dumps(full_card, indent=2)))
    return path


# The reference code builds both towers from one ResNet class with three stems: conv1 (3 channels, used by
# the visual tower), conv1_a (1 channel, used by the audio tower) and conv1_flow (6 channels, never used),
# and a classifier fc that neither tower uses. Per tower: (key prefix, our module, the stem it uses).
OFFICIAL_TOWERS = (("imgnet.", "visual_encoder.", "conv1."), ("audnet.", "audio_encoder.", "conv1_a."))
OFFICIAL_STEMS = ("conv1.", "conv1_a.", "conv1_flow.")
OFFICIAL_UNUSED = ("fc.",)
# The EZ-VSL family's projections (SLAVC: two per modality) -> ours; SLAVC's momentum copies of both
# towers are dropped (the reference can evaluate with them; we use the trained towers).
PEER_HEADS = {"img_proj.": "visual_peer_proj.heads.0.", "img_proj1.": "visual_peer_proj.heads.0.",
              "img_proj2.": "visual_peer_proj.heads.1.", "aud_proj.": "audio_peer_proj.heads.0.",
              "aud_proj1.": "audio_peer_proj.heads.0.", "aud_proj2.": "audio_peer_proj.heads.1."}
PEER_UNUSED = ("momentum_",)


def detect_family(state: dict[str, torch.Tensor]) -> str:
    """The model family of a state dict, from its keys: SLAVC (two projections per modality), EZ-VSL /
    FNAC (one; the same layout, ``ezvsl`` is assumed), else ours / LVS (one layout, ``ours`` assumed)."""
    keys = {k.removeprefix("module.") for k in state}
    if any(k.startswith("vision_fc1.") for k in keys):
        raise AVDemoError("SSL-TIE checkpoints are not supported: their fusion head's layout is not read "
                          "unambiguously from the file")
    if any(k.startswith("img_proj1.") for k in keys):
        return "slavc"
    if any(k.startswith("img_proj.") for k in keys):
        return "ezvsl"
    return "ours"


def official_to_ours(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The reference key layout -> ours, and the keys dropped: ``imgnet.*`` -> visual encoder,
    ``audnet.*`` -> audio encoder, each keeping the stem it uses; the other stems and the classifiers
    are dropped. An audio tower without ``conv1_a`` (a single 1-channel ``conv1``) keeps ``conv1``.
    Keys already in our layout pass through; anything else is left for the fit check to name."""
    state = {k.removeprefix("module."): v for k, v in state.items()}
    out: dict[str, torch.Tensor] = {}
    ignored: list[str] = []
    for key, value in state.items():
        tower = next((t for t in OFFICIAL_TOWERS if key.startswith(t[0])), None)
        head = next((h for h in PEER_HEADS if key.startswith(h)), None)
        if key.startswith(PEER_UNUSED):
            ignored.append(key)
            continue
        if head is not None:
            out[PEER_HEADS[head] + key.removeprefix(head)] = value
            continue
        if tower is None:
            out[key] = value
            continue
        prefix, ours, used_stem = tower
        if used_stem == "conv1_a." and prefix + used_stem + "weight" not in state:
            used_stem = "conv1."
        rest = key.removeprefix(prefix)
        stem = next((s for s in OFFICIAL_STEMS if rest.startswith(s)), None)
        if rest.startswith(OFFICIAL_UNUSED) or (stem is not None and stem != used_stem):
            ignored.append(key)
        else:
            out[ours + (rest.replace(used_stem, "conv1.", 1) if stem else rest)] = value
    return out, sorted(ignored)


# Plain, code-free objects that training scripts save next to the weights, allowed through
# torch.load(weights_only=True): argparse arguments and numpy numbers (e.g. a best score).
SAFE_GLOBALS = [argparse.Namespace, np.dtype, np._core.multiarray.scalar,
                (np._core.multiarray.scalar, "numpy.core.multiarray.scalar"),      # pickled by numpy < 2
                *[type(np.dtype(t)) for t in ("float64", "float32", "int64", "int32", "bool")]]


def _first_sentence(text: str, limit: int = 200) -> str:
    """The first sentence of an exception's text, without terminal colour codes, at most ``limit`` chars
    (cut at a word)."""
    lines = re.sub(r"\x1b\[[0-9;]*m", "", text).strip().splitlines()
    sentence = re.split(r"(?<=[.!?])\s", lines[0], maxsplit=1)[0] if lines else ""
    return sentence if len(sentence) <= limit else sentence[:limit].rsplit(" ", 1)[0] + " ..."


def _torch_load_error(name: str, e: Exception) -> AVDemoError:
    """Why a weights-only load failed, in our words: PyTorch's own message advises full unpickling,
    which a public app must never suggest."""
    if "Weights only load failed" in str(e):
        found = re.search(r"GLOBAL ([\w.]+)", str(e))
        what = f"an object of {found[1]}" if found else "pickled instructions other than plain data"
        return AVDemoError(f"{name}: refused: it holds {what}, which could run code when loaded; only "
                           f"tensors, numbers, strings, lists, dicts and argparse arguments are read from a "
                           f"PyTorch file")
    return AVDemoError(f"{name}: not a readable PyTorch checkpoint ({_first_sentence(str(e))})")


def _read_torch_file(path: Path, trusted: bool = False) -> dict[str, torch.Tensor]:
    if trusted:
        warnings.warn(f"{path.name}: loading with full unpickling (trusted=True): the file can run code",
                      stacklevel=3)
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            obj = torch.load(path, map_location="cpu", weights_only=not trusted)
    except Exception as e:  # noqa: BLE001 - any failure here is a bad or unsafe file
        raise _torch_load_error(path.name, e) from None
    if isinstance(obj, dict):
        for key in ("model_state_dict", "model", "state_dict"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(torch.is_tensor(v) for v in obj.values()):
        raise AVDemoError(f"{path.name}: no state dict found (expected the weights under 'model_state_dict' "
                          f"or 'model', or a plain state dict)")
    return obj


def _load_weights(model: AVLocalizer, state: dict[str, torch.Tensor], name: str) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = sorted(k for k in set(expected) & set(state) if tuple(expected[k].shape) != tuple(state[k].shape))
    if missing or unexpected or mismatched:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected)):
            if keys:
                parts.append(f"{len(keys)} {label} keys ({', '.join(keys[:8])}{', ...' if len(keys) > 8 else ''})")
        if mismatched:
            parts.append("shape mismatches (" + ", ".join(
                f"{k}: file {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}" for k in mismatched[:8]) + ")")
        raise AVDemoError(f"{name}: weights do not fit the model: " + "; ".join(parts))
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})


def _card_of(weights: Path) -> dict[str, Any]:
    """The model card next to a safetensors file (which may carry another name)."""
    card = card_path(weights)
    if card.exists():
        return read_card(card)
    if weights.suffix != ".safetensors":
        stem = weights.name.split(".")[0]
        raise AVDemoError(f"{weights.name} is a safetensors file, whatever its name says, and its model card "
                          f"{card.name} is missing: name it {stem}.safetensors, next to its card {stem}.json")
    raise AVDemoError(f"{weights.name}: its model card {card.name} (config) is missing")


# Settings that may be 0; every other number of a config must be positive.
MAY_BE_ZERO = {"peer_projections", "noverlap", "tukey_alpha", "mask_threshold"}


def _check_config_values(values: dict[str, Any], defaults: Any, name: str) -> None:
    """Each value has its default's type (a float may be given as an int); numbers are finite and
    positive (or 0 where ``MAY_BE_ZERO``)."""
    for key, value in values.items():
        default = getattr(defaults, key)
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        expected = float if type(default) is float else type(default)
        if not (number if expected is float else type(value) is expected):
            raise AVDemoError(f'{name}: "config" {key} = {value!r}: expected {expected.__name__}')
        if number and not (math.isfinite(value) and (value > 0 or (value == 0 and key in MAY_BE_ZERO))):
            raise AVDemoError(f'{name}: "config" {key} = {value!r}: expected a finite number > 0')


def config_from_card(card: dict[str, Any], name: str) -> ModelConfig:
    """The ``ModelConfig`` of a model card (``read_card``), with a clear error naming the card and the
    setting that is wrong."""
    values = dict(card["config"])
    audio = values.pop("audio", {})
    if not isinstance(audio, dict):
        raise AVDemoError(f'{name}: "config" audio must be an object')
    for given, dataclass_ in ((values, ModelConfig), (audio, ModelConfig().audio)):
        unknown = sorted(set(given) - {f.name for f in dataclasses.fields(dataclass_)})
        if unknown:
            raise AVDemoError(f'{name}: unknown "config" settings {", ".join(unknown)}')
    _check_config_values(values, ModelConfig(), name)
    _check_config_values(audio, ModelConfig().audio, name)
    cfg = ModelConfig.from_dict(card["config"])
    if cfg.audio.noverlap >= cfg.audio.nperseg:
        raise AVDemoError(f'{name}: "config" audio noverlap must be below nperseg')
    if cfg.family not in FAMILIES:
        raise AVDemoError(f'{name}: "config" family {cfg.family!r} is not one of {", ".join(FAMILIES)}')
    return cfg


def load_model(ref: str | Path, device: str | torch.device = "cpu", config: ModelConfig | None = None,
               trusted: bool = False, family: str | None = None) -> AVLocalizer:
    """Load any supported checkpoint into an ``AVLocalizer`` in eval mode, with ``model.card`` set.

    ``ref``: a local path, an ``https://`` URL or ``hf://owner/repo/path[@revision]``, optionally pinned
    with ``#sha256=...`` (``avdemo.fetch``). Ours: ``x.safetensors`` (+ ``x.json`` card with the config).
    The authors' ``.pth.tar`` and peers' ``{'model': ...}`` files are built as their family
    (``FAMILIES``: read from the keys, or ``family``) unless ``config`` is given; without alignment-head
    weights, the model uses the pooled features as embeddings (the card says so). ``trusted=True`` allows full unpickling of a .pth file (it can run
    code: only for files you trust; never for uploads).
    """
    path = resolve_checkpoint(ref)
    if path.is_dir():
        candidates = sorted(path.glob("*.safetensors"))
        if len(candidates) != 1:
            raise AVDemoError(f"{path}: expected exactly one .safetensors file in the folder, found {len(candidates)}")
        path = candidates[0]
    if path.suffix == ".json":
        path = path.with_suffix(".safetensors")
    if not path.exists():
        raise AVDemoError(f"checkpoint not found: {path}")

    fmt = checkpoint_format(path)
    if fmt == "safetensors":
        card = _card_of(path)
        cfg = config or config_from_card(card, card_path(path).name)
        try:
            state = load_file(str(path))
        except Exception as e:  # noqa: BLE001
            raise AVDemoError(f"{path.name}: not a valid safetensors file ({_first_sentence(str(e))})") from None
    elif fmt == "torch":
        raw = _read_torch_file(path, trusted)
        family = family or detect_family(raw)
        if family not in FAMILIES:
            raise AVDemoError(f"unknown model family {family!r}; known: {', '.join(FAMILIES)}")
        state, ignored = official_to_ours(raw)
        has_head = any(k.startswith(("visual_proj.", "audio_proj.")) for k in state)
        cfg = config or dataclasses.replace(FAMILIES[family], alignment_head=has_head)
        if config is None and "visual_peer_proj.heads.0.weight" in state:      # the projections' width
            cfg = dataclasses.replace(cfg, embed_dim=int(state["visual_peer_proj.heads.0.weight"].shape[0]))
        card = {"format": "pytorch", "source": path.name, "family": cfg.family, "map_size": cfg.map_size,
                "ignored_keys": ignored,
                "notes": ("alignment head included" if has_head else
                          "no alignment head in this checkpoint: embeddings and s_A use the L2-normalised "
                          "pooled backbone features (visual map max-pooled, audio vector)")}
    else:
        raise AVDemoError(f"{path.name}: unknown checkpoint type: its bytes are neither safetensors nor a "
                          f"weights-only PyTorch checkpoint; use .safetensors (+ .json) or "
                          f"{', '.join(OFFICIAL_SUFFIXES)}")
    try:
        model = AVLocalizer(cfg)
    except (AVDemoError, ValueError, KeyError, TypeError, RuntimeError) as e:
        raise AVDemoError(f"{path.name}: the model cannot be built from its config ({_first_sentence(str(e))})") from None
    _load_weights(model, state, path.name)
    model.card = {**card, "config": cfg.to_dict(), "path": str(path)}
    return model.to(device).to(memory_format=torch.channels_last).eval()
