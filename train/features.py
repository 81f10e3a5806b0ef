"""Features of a pretrained encoder for the conceptually similar views (METHOD.md: neighbours "in a
pretrained encoder's feature space"): the ImageNet EfficientNet-Lite0's average-pooled features of every
training frame, computed once and cached by encoder, input size and data.
"""
from __future__ import annotations

import hashlib

import numpy as np
import torch
from tqdm import tqdm

from avdemo.backbones import load_imagenet_trunk, visual_backbone
from avdemo.cache import cache_root

from .config import TrainConfig
from .data import Clip, ClipStore
from .augment import resize_square

ENCODER = "efficientnet_lite0"


def cache_key(clips: list[Clip], image_size: int) -> str:
    """Encoder, input size and every frame's id, size and modification time."""
    digest = hashlib.sha1(f"{ENCODER}/{image_size}".encode())
    for clip in clips:
        stat = clip.image_path.stat()
        digest.update(f"{clip.id}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return f"{ENCODER}-{image_size}px-{digest.hexdigest()[:16]}"


@torch.inference_mode()
def imagenet_features(store: ClipStore, clips: list[Clip], cfg: TrainConfig, device: torch.device,
                      batch_size: int = 64) -> np.ndarray:
    """(N, 1280) float32 pooled ImageNet features of the training frames at the model's input size,
    in training order; read from ``<cache_root()>/features`` when this encoder has seen these frames before."""
    size = cfg.model.image_size
    path = cache_root() / "features" / f"{cache_key(clips, size)}.npy"
    if path.is_file():
        return np.load(path)
    backbone = visual_backbone(ENCODER)
    encoder = load_imagenet_trunk(backbone.build(), ENCODER).to(device).eval()
    mean = torch.tensor(backbone.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(backbone.std, device=device).view(1, 3, 1, 1)
    feats = []
    for start in tqdm(range(0, len(store), batch_size), desc="ImageNet features", leave=False):
        frames = torch.stack([resize_square(store.get(i)[0], size)
                              for i in range(start, min(start + batch_size, len(store)))])
        images = (frames.to(device).float() / 255 - mean) / std
        feats.append(encoder(images).mean(dim=(-2, -1)).float().cpu())
    features = torch.cat(feats).numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, features)
    tmp.replace(path)
    return features
