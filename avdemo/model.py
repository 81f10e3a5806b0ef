"""The localization model of "Sound Source Localization is All about Cross-Modal Alignment".

Visual encoder f_v: ResNet-18 with a stride-1 last stage -> (B, 512, H/16, W/16) feature map; or another
                    backbone of output stride 16 (``avdemo.backbones``) with a 1x1 projection to 512.
Audio encoder f_a:  ResNet-18 with a 1-channel stem on a log spectrogram, global max pool -> (B, 512).
                    Its last stage has stride 1 in the paper (as the visual tower), 2 in our small presets.
Peer families:      EZ-VSL / FNAC project both (a 1x1 conv on f_v, a linear layer on f_a) before the
                    cosine; SLAVC has two projections per modality and averages their maps.
Localization map:   S = cos(f_a, f_v[:, :, i, j]) for every cell.
Localization score: s_L = sum(w * S) / sum(w), w = sigmoid((S - threshold) / temperature).
Alignment score:    s_A = z_v . z_a, z_v = norm(W_v maxpool(f_v)), z_a = norm(W_a f_a).
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from .audio import LogSpectrogram, clip_window, to_model_rate
from .backbones import resnet18_trunk, visual_backbone
from .config import ModelConfig


def localization_maps(visual_map: torch.Tensor, audio_vec: torch.Tensor) -> torch.Tensor:
    """S for matched pairs: (B, C, h, w) x (B, C) -> (B, h, w) cosine similarities."""
    return torch.einsum("bchw,bc->bhw", F.normalize(visual_map, dim=1), F.normalize(audio_vec, dim=1))


def pairwise_localization_maps(visual_map: torch.Tensor, audio_vec: torch.Tensor) -> torch.Tensor:
    """S for every image i and audio j of a batch: (B, C, h, w) x (B', C) -> (B, B', h, w)."""
    return torch.einsum("bchw,kc->bkhw", F.normalize(visual_map, dim=1), F.normalize(audio_vec, dim=1))


def soft_masked_mean(maps: torch.Tensor, threshold: float, temperature: float) -> torch.Tensor:
    """s_L: mean of S weighted by the soft mask sigmoid((S - threshold) / temperature), over (h, w)."""
    w = torch.sigmoid((maps - threshold) / temperature)
    return (w * maps).sum((-2, -1)) / w.sum((-2, -1)).clamp_min(1e-12)


def upsample_maps(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Maps (N, h, w) -> (N, H, W), bilinear with aligned corners (so extremes are kept): the heat map
    users see."""
    return F.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=True)[:, 0]


def bf16_is_fast(device: torch.device) -> bool:
    """Whether bf16 autocast speeds the towers up on ``device``: on GPUs, and on CPUs whose oneDNN has bf16
    convolutions (AVX-512 / AMX); on AVX2-only CPUs they fall back to a reference kernel about 5x slower
    than float32."""
    return device.type == "cuda" or bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def fold_batch_norms(module: nn.Module) -> nn.Module:
    """An inference copy of ``module`` with each BatchNorm2d folded into the Conv2d registered just before it
    (every block here applies its BN to that conv's output): the same outputs to float rounding, one pass
    over the activations fewer per conv. The video pipeline runs its frames through such a copy."""
    module = copy.deepcopy(module).eval()
    for parent in module.modules():
        names = list(parent._modules)
        for conv_name, bn_name in zip(names, names[1:]):
            conv, bn = parent._modules[conv_name], parent._modules[bn_name]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                parent._modules[conv_name] = fuse_conv_bn_eval(conv, bn)
                parent._modules[bn_name] = nn.Identity()
    return module


class NormalisedProjections(nn.Module):
    """k parallel projections, each L2-normalised over channels, concatenated and scaled by 1/sqrt(k): the
    cosine of two such outputs is the mean of the k cosines (SLAVC's averaged maps; k = 1: EZ-VSL's)."""

    def __init__(self, make: Callable[[], nn.Module], k: int):
        super().__init__()
        self.heads = nn.ModuleList(make() for _ in range(k))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([F.normalize(head(x), dim=1) for head in self.heads], dim=1) / math.sqrt(len(self.heads))


@dataclass
class Localization:
    """What ``AVLocalizer.localize`` returns for a batch of N frame/audio pairs (numpy, float32)."""

    maps: np.ndarray        # (N, H, W) raw cosine maps S, upsampled to the frames' (or output_size) size
    maps_lowres: np.ndarray  # (N, h, w) S at the feature map's resolution
    s_L: np.ndarray         # (N,) soft-masked mean of S
    s_A: np.ndarray         # (N,) alignment score
    image_emb: np.ndarray   # (N, D) z_v, L2-normalised
    audio_emb: np.ndarray   # (N, D) z_a, L2-normalised


class AVLocalizer(nn.Module):
    """A visual and an audio tower, the localization map S, s_L and the alignment head for s_A."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        backbone = visual_backbone(cfg.visual_backbone)
        self.visual_encoder = backbone.build()
        # the pretrained variants' 1x1 projection of the trunk's channels to the shared space
        self.visual_map_proj = nn.Conv2d(backbone.channels, cfg.feat_dim, 1) \
            if backbone.channels != cfg.feat_dim else nn.Identity()
        self.audio_encoder = resnet18_trunk(in_channels=1, last_stride=cfg.audio_last_stride)
        if cfg.peer_projections:
            k, d_in, d_out = cfg.peer_projections, cfg.feat_dim, cfg.embed_dim
            self.visual_peer_proj = NormalisedProjections(lambda: nn.Conv2d(d_in, d_out, 1), k)
            self.audio_peer_proj = NormalisedProjections(lambda: nn.Linear(d_in, d_out), k)
        if cfg.alignment_head:
            self.visual_proj = nn.Linear(cfg.feat_dim, cfg.embed_dim)
            self.audio_proj = nn.Linear(cfg.feat_dim, cfg.embed_dim)
        self.spectrogram = LogSpectrogram(cfg.audio)
        self.register_buffer("pixel_mean", torch.tensor(backbone.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(backbone.std).view(1, 3, 1, 1), persistent=False)

    # --- encoders -------------------------------------------------------------------------------
    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised images (B, 3, S, S) -> visual feature map f_v (B, C, map_size, map_size)."""
        visual_map = self.visual_map_proj(self.visual_encoder(images))
        return self.visual_peer_proj(visual_map) if self.cfg.peer_projections else visual_map

    def encode_audio(self, specs: torch.Tensor) -> torch.Tensor:
        """Log spectrograms (B, 1, F, T) -> audio vector f_a (B, C), global max pooled."""
        return self.audio_head(self.audio_encoder(specs).amax(dim=(-2, -1)))

    def audio_head(self, pooled: torch.Tensor) -> torch.Tensor:
        """The audio trunk's pooled features (B, 512) -> f_a: the peers' projections, else as they are."""
        return self.audio_peer_proj(pooled) if self.cfg.peer_projections else pooled

    def embed(self, visual_map: torch.Tensor, audio_vec: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Alignment space: z_v = norm(W_v maxpool(f_v)), z_a = norm(W_a f_a); without a head, the
        L2-normalised pooled backbone features."""
        v = visual_map.amax(dim=(-2, -1))
        a = audio_vec
        if self.cfg.alignment_head:
            v, a = self.visual_proj(v), self.audio_proj(a)
        return F.normalize(v, dim=-1), F.normalize(a, dim=-1)

    def s_L(self, maps: torch.Tensor) -> torch.Tensor:
        return soft_masked_mean(maps, self.cfg.mask_threshold, self.cfg.mask_temperature)

    def scores(self, visual_map: torch.Tensor, audio_vec: torch.Tensor) -> dict[str, torch.Tensor]:
        """Matched features -> S (B, h, w), s_L (B,), s_A (B,), z_v and z_a (B, D)."""
        maps = localization_maps(visual_map, audio_vec)
        image_emb, audio_emb = self.embed(visual_map, audio_vec)
        return {"maps": maps, "s_L": self.s_L(maps), "s_A": (image_emb * audio_emb).sum(-1),
                "image_emb": image_emb, "audio_emb": audio_emb}

    def forward(self, images: torch.Tensor, specs: torch.Tensor) -> dict[str, torch.Tensor]:
        """Matched pairs of normalised images (B, 3, S, S) and spectrograms (B, 1, F, T) -> ``scores``."""
        return self.scores(self.encode_image(images), self.encode_audio(specs))

    # --- inputs ---------------------------------------------------------------------------------
    def preprocess_frames(self, frames_uint8: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 RGB (H, W, 3) or (N, H, W, 3) of any size -> (N, 3, S, S) normalised, bicubic resize."""
        x = torch.as_tensor(np.asarray(frames_uint8)) if not torch.is_tensor(frames_uint8) else frames_uint8
        if x.ndim == 3:
            x = x[None]
        if x.ndim != 4 or x.shape[-1] != 3 or x.dtype != torch.uint8:
            raise ValueError(f"frames must be uint8 RGB (H, W, 3) or (N, H, W, 3); got {tuple(x.shape)} {x.dtype}")
        x = x.permute(0, 3, 1, 2).float().div_(255.0)
        size = self.cfg.image_size
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bicubic", antialias=True, align_corners=False)
            x = x.clamp_(0.0, 1.0)
        x = x.to(self.pixel_mean.device)
        return (x - self.pixel_mean) / self.pixel_std

    def audio_to_specs(self, audio: np.ndarray | torch.Tensor, sample_rate: int | None, n: int) -> torch.Tensor:
        """A waveform (its centred window, ``avdemo.audio.clip_window``) or (N, samples) precomputed
        windows at the model rate, or (N, 1, F, T) spectrograms -> (n or 1, 1, F, T)."""
        a = torch.as_tensor(np.asarray(audio, dtype=np.float32)) if not torch.is_tensor(audio) else audio.float()
        a = a.to(self.pixel_mean.device)
        if a.ndim == 4:
            specs = a
        elif a.ndim == 2 and sample_rate is None:
            specs = self.spectrogram(a)
        else:
            if sample_rate is None:
                raise ValueError("a waveform needs its sample_rate")
            wav = to_model_rate(a.cpu(), sample_rate, self.cfg.audio)
            specs = self.spectrogram(clip_window(wav, self.cfg.audio)[None].to(a.device))
        expected = self.cfg.audio.spec_shape
        if tuple(specs.shape[-2:]) != expected:
            raise ValueError(f"audio windows give spectrograms of {tuple(specs.shape[-2:])}; this model "
                             f"expects {expected} ({self.cfg.audio.window_s} s at {self.cfg.audio.sample_rate} Hz)")
        if specs.shape[0] not in (1, n):
            raise ValueError(f"{n} frames but {specs.shape[0]} audio windows")
        return specs

    # --- the one call users, the app and the evaluator share ------------------------------------
    @torch.inference_mode()
    def localize(self, frames: np.ndarray | torch.Tensor, audio: np.ndarray | torch.Tensor,
                 sample_rate: int | None = None, output_size: tuple[int, int] | None = None,
                 batch_size: int = 32) -> Localization:
        """Heat maps and scores for one frame or a batch of frames and their audio.

        frames: uint8 RGB (H, W, 3) or (N, H, W, 3). audio: a waveform (T,) or (T, C) at ``sample_rate``
        (its centred window is heard by every frame), or (N, window_samples) windows already at the
        model's rate (``sample_rate=None``), or (N, 1, F, T) spectrograms.
        Maps come back at the frames' size unless ``output_size=(H, W)`` is given.
        """
        was_training = self.training
        self.eval()
        images = self.preprocess_frames(frames)
        specs = self.audio_to_specs(audio, sample_rate, images.shape[0])
        if output_size is None:
            output_size = tuple(np.asarray(frames).shape[-3:-1])
        shared_audio = self.encode_audio(specs.contiguous(memory_format=torch.channels_last)) \
            if specs.shape[0] == 1 else None                             # one window heard by every frame
        outs = []
        for i in range(0, images.shape[0], batch_size):
            visual_map = self.encode_image(images[i:i + batch_size].contiguous(memory_format=torch.channels_last))
            audio_vec = shared_audio.expand(visual_map.shape[0], -1) if shared_audio is not None else \
                self.encode_audio(specs[i:i + batch_size].contiguous(memory_format=torch.channels_last))
            outs.append(self.scores(visual_map, audio_vec))
        self.train(was_training)
        out = {k: torch.cat([o[k] for o in outs]) for k in outs[0]}
        maps_up = upsample_maps(out["maps"], output_size)
        as_np = lambda t: t.float().cpu().numpy()
        return Localization(maps=as_np(maps_up), maps_lowres=as_np(out["maps"]), s_L=as_np(out["s_L"]),
                            s_A=as_np(out["s_A"]), image_emb=as_np(out["image_emb"]),
                            audio_emb=as_np(out["audio_emb"]))
