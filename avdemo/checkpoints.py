"""Load and save models: our safetensors + JSON model card, the authors' .pth.tar, peers' {'model': ...}.

Loading never runs code from a file: safetensors, or ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors.torch import load_file, save_file

from .config import ModelConfig, preset
from .errors import AVDemoError
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


def official_to_ours(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map the reference key layout to ours: ``imgnet.*`` -> visual encoder, ``audnet.*`` -> audio
    encoder whose 1-channel stem is ``conv1_a`` when present; classifiers (``fc``) and the unused
    3-channel audio stem are dropped. Keys already in our layout pass through."""
    state = {k.removeprefix("module."): v for k, v in state.items()}
    audio_stem_is_conv1_a = "audnet.conv1_a.weight" in state
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith("imgnet."):
            rest = key.removeprefix("imgnet.")
            if not rest.startswith("fc."):
                out["visual_encoder." + rest] = value
        elif key.startswith("audnet."):
            rest = key.removeprefix("audnet.")
            if rest.startswith("fc.") or (audio_stem_is_conv1_a and rest.startswith("conv1.")):
                continue
            out["audio_encoder." + rest.replace("conv1_a.", "conv1.", 1)] = value
        else:
            out[key] = value
    return out


def _read_torch_file(path: Path) -> dict[str, torch.Tensor]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure here is a bad or unsafe file
        raise AVDemoError(f"{path.name}: cannot be read as a weights-only PyTorch checkpoint (files that "
                          f"need code to load are refused): {str(e).splitlines()[0][:300]}") from None
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


def load_model(path: str | Path, device: str | torch.device = "cpu", config: ModelConfig | None = None) -> AVLocalizer:
    """Load any supported checkpoint into an ``AVLocalizer`` in eval mode, with ``model.card`` set.

    Ours: ``x.safetensors`` (+ ``x.json`` card with the config). The authors' ``.pth.tar`` and peers'
    ``{'model': ...}`` files use the ``paper`` preset unless ``config`` is given; without alignment-head
    weights, the model uses the pooled backbone features as embeddings (the card says so).
    """
    path = Path(path)
    if path.is_dir():
        candidates = sorted(path.glob("*.safetensors"))
        if len(candidates) != 1:
            raise AVDemoError(f"{path}: expected exactly one .safetensors file in the folder, found {len(candidates)}")
        path = candidates[0]
    if path.suffix == ".json":
        path = path.with_suffix(".safetensors")
    if not path.exists():
        raise AVDemoError(f"checkpoint not found: {path}")

    if path.suffix == ".safetensors":
        if not card_path(path).exists():
            raise AVDemoError(f"{path.name}: its model card {card_path(path).name} (config) is missing")
        card = json.loads(card_path(path).read_text())
        cfg = config or ModelConfig.from_dict(card["config"])
        try:
            state = load_file(str(path))
        except Exception as e:  # noqa: BLE001
            raise AVDemoError(f"{path.name}: not a valid safetensors file ({e})") from None
    elif path.name.endswith(OFFICIAL_SUFFIXES):
        state = official_to_ours(_read_torch_file(path))
        has_head = any(k.startswith(("visual_proj.", "audio_proj.")) for k in state)
        cfg = config or dataclasses.replace(preset("paper"), alignment_head=has_head)
        card = {"format": "pytorch", "source": str(path.name),
                "notes": ("alignment head included" if has_head else
                          "no alignment head in this checkpoint: embeddings and s_A use the L2-normalised "
                          "pooled backbone features (visual map max-pooled, audio vector)")}
    else:
        raise AVDemoError(f"{path.name}: unknown checkpoint type; use .safetensors (+ .json) or "
                          f"{', '.join(OFFICIAL_SUFFIXES)}")
    model = AVLocalizer(cfg)
    _load_weights(model, state, path.name)
    model.card = {**card, "config": cfg.to_dict(), "path": str(path)}
    return model.to(device).to(memory_format=torch.channels_last).eval()
