"""The multi-positive loss: for every image view p and audio view q, InfoNCE over the batch (the diagonal
pairs are the positives) with s_L and with s_A, temperature 0.07, summed over the view pairs. Optional
extra negatives (silence and noise-only audio) join every image's candidates, never as a positive.

The scores reuse the model's own definitions (``pairwise_localization_maps``, ``soft_masked_mean``);
the loss is computed in float32 even under bf16 autocast, as s_L's soft mask is steep (1/0.03).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from avdemo.config import ModelConfig
from avdemo.model import localization_maps, pairwise_localization_maps, soft_masked_mean

from .config import TrainConfig


def info_nce(scores: torch.Tensor, temperature: float, direction: str) -> torch.Tensor:
    """scores (B, B + E): rows are images, columns audio, positives on the diagonal, E extra negative
    audio columns. ``image_to_audio``: each image picks its audio among the batch (the authors' code);
    ``symmetric``: the mean of that and each of the B audio picking its image."""
    logits = scores.float() / temperature
    b = logits.shape[0]
    target = torch.arange(b, device=logits.device)
    loss = F.cross_entropy(logits, target)
    if direction == "symmetric":
        loss = (loss + F.cross_entropy(logits[:, :b].T, target)) / 2
    return loss


def side_by_side(images: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Frames (B, 3, S, S) -> composites (B, 3, S, S): frame i and frame i - 1 (``torch.roll`` by 1), each
    squeezed to half the width, side by side; and (B,) whether frame i is the left half (drawn at random,
    so that the side says nothing)."""
    b, _, s, _ = images.shape
    halves = F.interpolate(images, size=(s, s // 2), mode="bilinear", antialias=True, align_corners=False)
    partner = halves.roll(1, dims=0)
    own_left = torch.rand(b, generator=generator) < 0.5
    pick = own_left.to(images.device)[:, None, None, None]
    return torch.cat([torch.where(pick, halves, partner), torch.where(pick, partner, halves)], dim=-1), own_left


def switch_loss(visual_map: torch.Tensor, audio_vec: torch.Tensor, own_left: torch.Tensor, model_cfg: ModelConfig,
                temperature: float) -> torch.Tensor:
    """The map must follow the sound within one frame: on composites of frames i and i - 1
    (``side_by_side``; maps (B, C, h, w)), audio i (``audio_vec``, (B, C)) picks the half its own frame
    fills and audio i - 1 the other, by s_L over each half (a 2-way InfoNCE). No labels: which half holds
    which clip's frame is known by construction."""
    with torch.autocast(visual_map.device.type, enabled=False):
        w = visual_map.shape[-1] // 2
        own_left = own_left.to(visual_map.device)
        terms = []
        for audio, left in ((audio_vec, own_left), (audio_vec.roll(1, dims=0), ~own_left)):
            maps = localization_maps(visual_map.float(), audio.float())                        # (B, h, w)
            halves = torch.stack([soft_masked_mean(maps[..., :w], model_cfg.mask_threshold, model_cfg.mask_temperature),
                                  soft_masked_mean(maps[..., w:], model_cfg.mask_threshold, model_cfg.mask_temperature)], -1)
            terms.append(F.cross_entropy(halves / temperature, (~left).long()))
        return (terms[0] + terms[1]) / 2


def localization_scores(visual_map: torch.Tensor, audio_vec: torch.Tensor, model_cfg: ModelConfig) -> torch.Tensor:
    """s_L for every image i and audio j: (B, C, h, w) x (B, C) -> (B, B)."""
    maps = pairwise_localization_maps(visual_map.float(), audio_vec.float())
    return soft_masked_mean(maps, model_cfg.mask_threshold, model_cfg.mask_temperature)


def multi_positive_loss(visual_maps: torch.Tensor, audio_vecs: torch.Tensor, image_emb: torch.Tensor | None,
                        audio_emb: torch.Tensor | None, batch_size: int, model_cfg: ModelConfig,
                        cfg: TrainConfig, num_negatives: int = 0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Features of all views stacked view-major: visual_maps (V_img * B, C, h, w), audio_vecs
    (V_aud * B + E, C), embeddings (V * B (+ E), D) or None without the alignment loss; the last
    ``num_negatives`` (E) audio rows are the extra negatives.
    Returns the summed loss and the mean s_L and s_A terms (detached, for logging)."""
    with torch.autocast(visual_maps.device.type, enabled=False):
        n_audio = audio_vecs.shape[0] - num_negatives
        v_views, a_views = visual_maps.split(batch_size), audio_vecs[:n_audio].split(batch_size)
        neg_vecs = audio_vecs[n_audio:]
        terms_L, terms_A = [], []
        for p, v in enumerate(v_views):
            for q, a in enumerate(a_views):
                if cfg.loss_localization:
                    scores = localization_scores(v, torch.cat([a, neg_vecs]), model_cfg)
                    terms_L.append(info_nce(scores, cfg.temperature, cfg.direction))
                if cfg.loss_alignment:
                    z_v = image_emb[p * batch_size:(p + 1) * batch_size].float()
                    z_a = torch.cat([audio_emb[q * batch_size:(q + 1) * batch_size], audio_emb[n_audio:]]).float()
                    terms_A.append(info_nce(z_v @ z_a.T, cfg.temperature, cfg.direction))
        loss = torch.stack(terms_L + terms_A).sum()
        zero = loss.new_zeros(())
        parts = {"loss_L": torch.stack(terms_L).mean().detach() if terms_L else zero,
                 "loss_A": torch.stack(terms_A).mean().detach() if terms_A else zero}
    return loss, parts
