"""The model and its optimiser for a run: initial weights (scratch, ImageNet trunk or one of our
checkpoints), what stays frozen, the towers as one DDP module, AdamW/Adam with warmup + cosine, bf16."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from avdemo.backbones import load_imagenet_trunk
from avdemo.cache import file_sha256
from avdemo.checkpoints import load_model
from avdemo.config import ModelConfig
from avdemo.errors import AVDemoError
from avdemo.model import AVLocalizer, bf16_is_fast

from .config import TrainConfig
from .distributed import Dist


def use_bf16(amp: str, device: torch.device) -> bool:
    """Whether to train under bf16 autocast: ``amp`` "bf16" or "off", or "auto" = where it is fast."""
    return bf16_is_fast(device) if amp == "auto" else amp == "bf16"


def freeze_visual_trunk(model: AVLocalizer, mode: str) -> list[nn.Module]:
    """Stop the gradients of what ``mode`` freezes: the whole visual trunk ("frozen"), its batch norms
    ("frozen_bn") or nothing ("train"). Returns the frozen modules, which must stay in eval mode (their
    running statistics are the pretrained ones)."""
    if mode == "train":
        return []
    frozen = [m for m in model.visual_encoder.modules()
              if mode == "frozen" or isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for module in frozen:
        module.requires_grad_(False)
    return frozen


def initial_weights(path: str, model_cfg: ModelConfig) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The weights of one of our checkpoints, in float32, for a run whose model config is ``model_cfg``,
    and what the new card records of it (path, sha256, its training provenance)."""
    start = load_model(path)
    if start.cfg != model_cfg:
        raise AVDemoError(f"init_from={path}: its model config differs from this run's; "
                          f"{start.cfg.to_dict()} != {model_cfg.to_dict()}")
    state = {k: v.float() if v.is_floating_point() else v for k, v in start.state_dict().items()}
    provenance = {k: v for k, v in start.card.get("provenance", {}).items() if k != "train_config"}
    return state, {"path": path, "sha256": file_sha256(Path(path)), "provenance": provenance}


class Towers(nn.Module):
    """Both encoders and the alignment head as one module, so that DDP sees a single forward per step."""

    def __init__(self, model: AVLocalizer):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor, specs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        visual_map, audio_vec = self.model.encode_image(images), self.model.encode_audio(specs)
        if not self.model.cfg.alignment_head:
            return visual_map, audio_vec, None, None
        return (visual_map, audio_vec, *self.model.embed(visual_map, audio_vec))


class ModelParts(NamedTuple):
    model: AVLocalizer
    towers: nn.Module                    # ``Towers``, wrapped in DDP under torchrun
    frozen: list[nn.Module]              # kept in eval mode while training
    init_card: dict[str, Any] | None     # what the card records of ``init_from``


def build_model(cfg: TrainConfig, place: Dist) -> ModelParts:
    """The model to train, seeded by ``cfg.seed``, with its initial weights and frozen parts, on the device."""
    torch.manual_seed(cfg.seed)
    model, init_card = AVLocalizer(cfg.model_config), None
    if cfg.init_from is not None:
        state, init_card = initial_weights(cfg.init_from, model.cfg)
        model.load_state_dict(state)
    elif cfg.visual_init == "imagenet":
        load_imagenet_trunk(model.visual_encoder, cfg.model.visual_backbone)
    frozen = freeze_visual_trunk(model, cfg.visual_trunk)
    model.to(place.device, memory_format=torch.channels_last)
    towers = DistributedDataParallel(Towers(model)) if place.world > 1 else Towers(model)
    return ModelParts(model, towers, frozen, init_card)


def parameter_groups(model: AVLocalizer, cfg: TrainConfig) -> list[dict[str, Any]]:
    """The trainable parameters: the visual trunk's at ``lr * trunk_lr_ratio``, the rest at ``lr``."""
    trunk = {id(p) for p in model.visual_encoder.parameters()}
    groups = [{"params": [p for p in model.parameters() if p.requires_grad and id(p) in trunk],
               "lr": cfg.lr * cfg.trunk_lr_ratio},
              {"params": [p for p in model.parameters() if p.requires_grad and id(p) not in trunk], "lr": cfg.lr}]
    return [g for g in groups if g["params"]]


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Linear warmup, then cosine decay to ``final_lr_ratio``."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps))
    return cfg.final_lr_ratio + (1 - cfg.final_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def build_optimiser(cfg: TrainConfig, model: AVLocalizer
                    ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW (or Adam) over ``parameter_groups`` and its warmup + cosine schedule."""
    optim = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    optimizer = optim(parameter_groups(model, cfg), lr=cfg.lr, weight_decay=cfg.weight_decay)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, cfg))
