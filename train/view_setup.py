"""Where a run's views come from: image views made in the loader workers or batched on the device, and
the conceptually similar views' neighbour tables (the model's own embeddings, ImageNet features or a file)."""
from __future__ import annotations

import numpy as np
import torch

from .augment import ImageAugment
from .config import TrainConfig
from .data import TrainData
from .distributed import Dist
from .features import imagenet_features
from .views import EmbeddingBank, NeighbourTable, load_feature_file


class ImageViews:
    """The image views of a batch, made here on the device (``on_device``) or already made by the loader."""

    def __init__(self, cfg: TrainConfig, place: Dist):
        self.cfg, self.place = cfg, place
        self.augment = ImageAugment(cfg.image_aug, cfg.model.image_size)
        self.on_device = cfg.image_views_on == "device" or (cfg.image_views_on == "auto"
                                                            and place.device.type == "cuda")

    def __call__(self, frames: torch.Tensor, step: int) -> torch.Tensor:
        """The loader's images (B, V_img, 3, S, S), or cached frames (B, V_img, 3, s, s) made into views
        here (``on_device``: the augmented view batched, the others resized) -> (V_img * B, 3, S, S) uint8
        on the training device, view-major; the augmentation is seeded by (seed, step, rank)."""
        frames = frames.to(self.place.device, non_blocking=True)
        if not self.on_device:
            return frames.transpose(0, 1).flatten(0, 1)
        kinds = [k for k in self.cfg.image_views if k != "neighbour" or frames.shape[1] == len(self.cfg.image_views)]
        seed = np.random.SeedSequence([self.cfg.seed, step, self.place.rank]).generate_state(1)[0]
        return self.augment.views(frames, kinds, torch.Generator().manual_seed(int(seed)))


def neighbour_source(cfg: TrainConfig, data: TrainData, device: torch.device) -> EmbeddingBank | None:
    """The neighbour tables of a run with conceptually similar views: from fixed features (ImageNet's or a
    file's), set on the sampler now; or from the model's own embeddings, gathered in the returned bank
    while training."""
    if not cfg.uses_neighbours:
        return None
    if cfg.neighbour_features is None:
        return EmbeddingBank(len(data.store), cfg.model.embed_dim if cfg.loss_alignment else cfg.model.feat_dim)
    if cfg.neighbour_features == "imagenet":
        features = imagenet_features(data.store, data.clips, cfg, device)
        data.sampler.neighbours = NeighbourTable.from_features(features, features, cfg.neighbour_k)
    else:
        data.sampler.neighbours = NeighbourTable.from_features(
            *load_feature_file(cfg.neighbour_features, len(data.store)), cfg.neighbour_k)
    return None
