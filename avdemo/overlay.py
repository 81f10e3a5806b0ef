"""Pictures of heat maps: normalisation of raw cosine maps, colour maps, blending, contours, sample cards.

Pure functions on numpy arrays: frames are uint8 RGB (..., H, W, 3), maps are float (..., H, W).
"""
from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .errors import AVDemoError
from .metrics import minmax_normalize

NORMALISATIONS = {
    "frame": "per frame: min-max of each map (always shows a hot spot, even in silence)",
    "clip": "per clip: min-max over all frames of the clip",
    "absolute": "absolute: cosine similarity 0..1 as is",
}
# Both towers end in a ReLU, so every feature is >= 0 and the cosine S lies in 0..1: the absolute scale
# maps S = 0 to the bottom of the colour map and S = 1 to its top.
ABSOLUTE_RANGE = (0.0, 1.0)
COLORMAPS = ("jet", "inferno", "viridis", "magma", "turbo", "gray")


def value_range(maps: np.ndarray) -> tuple[float, float]:
    """(min, max) over every value of ``maps``: the scale of the "clip" normalisation."""
    return float(np.min(maps)), float(np.max(maps))


def _scale(maps: np.ndarray, lo: float, hi: float) -> np.ndarray:
    if hi <= lo:
        return np.zeros(np.shape(maps), np.float32)
    return np.clip((np.asarray(maps, np.float32) - lo) / (hi - lo), 0.0, 1.0)


def normalise(maps_raw: np.ndarray, mode: str, clip_range: tuple[float, float] | None = None) -> np.ndarray:
    """Raw cosine maps (..., H, W) -> float32 in 0..1 for display.

    ``mode``: "frame" (per-map min-max; a constant map gives zeros), "clip" (min-max over ``clip_range``,
    by default the range of ``maps_raw`` itself; pass ``value_range`` of the whole clip when rendering it
    in pieces), or "absolute" (``ABSOLUTE_RANGE``, clipped).
    """
    if mode == "frame":
        return minmax_normalize(np.asarray(maps_raw, np.float32))
    if mode == "clip":
        return _scale(maps_raw, *(clip_range or value_range(maps_raw)))
    if mode == "absolute":
        return _scale(maps_raw, *ABSOLUTE_RANGE)
    raise AVDemoError(f"unknown normalisation {mode!r}; choose one of {sorted(NORMALISATIONS)}")


@lru_cache(maxsize=None)
def colour_table(cmap: str) -> np.ndarray:
    """The matplotlib colour map ``cmap`` as a (256, 3) uint8 lookup table (made once per name; read-only)."""
    try:
        table = matplotlib.colormaps[cmap](np.linspace(0.0, 1.0, 256))[:, :3]
    except KeyError:
        raise AVDemoError(f"unknown colour map {cmap!r}; try one of {', '.join(COLORMAPS)}") from None
    table = np.round(table * 255).astype(np.uint8)
    table.flags.writeable = False
    return table


def colorize(maps01: np.ndarray, cmap: str = "jet") -> np.ndarray:
    """Maps in 0..1 (..., H, W) -> uint8 RGB (..., H, W, 3)."""
    index = (np.clip(maps01, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
    return np.take(colour_table(cmap), index, axis=0)


def blend(frames: np.ndarray, colours: np.ndarray, opacity: float) -> np.ndarray:
    """(1 - opacity) * frame + opacity * colour, uint8 (in 1/256 steps of opacity: integer arithmetic is
    several times faster than float on video frames)."""
    if not 0.0 <= opacity <= 1.0:
        raise AVDemoError(f"opacity must be between 0 and 1; got {opacity}")
    weight = round(opacity * 256)
    out = frames.astype(np.uint16) * (256 - weight)
    out += colours.astype(np.uint16) * weight
    out += 128
    return (out >> 8).astype(np.uint8)


def _erode(mask: np.ndarray) -> np.ndarray:
    """4-neighbour binary erosion of (..., H, W); pixels beyond the border count as set."""
    p = np.pad(mask, [(0, 0)] * (mask.ndim - 2) + [(1, 1), (1, 1)], mode="edge")
    return mask & p[..., :-2, 1:-1] & p[..., 2:, 1:-1] & p[..., 1:-1, :-2] & p[..., 1:-1, 2:]


def contour(mask: np.ndarray, thickness: int = 1) -> np.ndarray:
    """The inner boundary (``thickness`` pixels) of a boolean mask (..., H, W)."""
    inner = mask
    for _ in range(thickness):
        inner = _erode(inner)
    return mask & ~inner


def draw_contour(frames: np.ndarray, maps01: np.ndarray, threshold: float,
                 colour: Sequence[int] = (255, 255, 255), thickness: int | None = None) -> np.ndarray:
    """Frames with the outline of {map >= threshold} drawn in ``colour``; the thickness defaults to
    about 1/180 of the shorter side (at least 1 px)."""
    if thickness is None:
        thickness = max(1, round(min(maps01.shape[-2:]) / 180))
    out = frames.copy()
    out[contour(maps01 >= threshold, thickness)] = np.asarray(colour, np.uint8)
    return out


def overlay(frames: np.ndarray, maps01: np.ndarray, cmap: str = "jet", opacity: float = 0.5,
            contour_threshold: float | None = None) -> np.ndarray:
    """Frames (..., H, W, 3) with their normalised maps (..., H, W) coloured and blended, and optionally
    the threshold contour."""
    if frames.shape[:-1] != maps01.shape:
        raise ValueError(f"frames {frames.shape} and maps {maps01.shape} differ in size")
    out = blend(frames, colorize(maps01, cmap), opacity)
    if contour_threshold is not None:
        out = draw_contour(out, maps01, contour_threshold)
    return out


def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _panel(image: np.ndarray, side: int, label: str) -> Image.Image:
    """An image scaled to ``side`` pixels high with a label in its top-left corner."""
    h, w = image.shape[:2]
    panel = Image.fromarray(image).resize((max(1, round(w * side / h)), side), Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(panel)
    font = _font(max(10, side // 16))
    box = draw.textbbox((4, 2), label, font=font)
    draw.rectangle((box[0] - 3, box[1] - 2, box[2] + 3, box[3] + 2), fill=(0, 0, 0))
    draw.text((4, 2), label, fill=(255, 255, 255), font=font)
    return panel


def sample_card(image: np.ndarray, map_raw: np.ndarray, scores: dict[str, float], *,
                gt_boxes: Sequence[Sequence[float]] = (), gt_mask: np.ndarray | None = None,
                pred_mask: np.ndarray | None = None, title: str = "", normalisation: str = "frame",
                cmap: str = "jet", opacity: float = 0.5, side: int = 224) -> np.ndarray:
    """One sample side by side, as uint8 RGB: the image with its ground truth (normalised xyxy boxes in
    green, and/or the outline of ``gt_mask``), the heat map blended on it, the binarised map (e.g. the
    median-thresholded map that cIoU scores), and a line of ``title`` and ``scores``.

    ``map_raw``, ``gt_mask`` and ``pred_mask`` are (H, W) at the image's size.
    """
    h, w = image.shape[:2]
    if map_raw.shape != (h, w):
        raise ValueError(f"map {map_raw.shape} must match the image {(h, w)}")
    truth = image.copy()
    if gt_mask is not None:
        truth = draw_contour(truth, np.asarray(gt_mask, np.float32), 0.5, colour=(0, 255, 0))
    panels = [_panel(truth, side, "image + ground truth"),
              _panel(overlay(image, normalise(map_raw, normalisation), cmap, opacity), side,
                     f"map ({normalisation})")]
    if pred_mask is not None:
        binary = np.where(np.asarray(pred_mask, bool)[..., None], image, image // 4)
        panels.append(_panel(binary, side, "binarised map"))
    for panel in panels[::2]:                                 # boxes on the image and the binarised map
        pw, ph = panel.size
        for x1, y1, x2, y2 in gt_boxes:
            ImageDraw.Draw(panel).rectangle((x1 * pw, y1 * ph, x2 * pw - 1, y2 * ph - 1),
                                            outline=(0, 255, 0), width=2)
    font = _font(max(10, side // 14))
    text = "   ".join([title] * bool(title) + [f"{k} {v:.3f}" for k, v in scores.items()])
    gap = 4
    text_width = round(ImageDraw.Draw(panels[0]).textlength(text, font=font))
    width = max(sum(p.size[0] + gap for p in panels), text_width + gap) + gap
    card = Image.new("RGB", (width, side + 3 * gap + font.size + 4), (255, 255, 255))
    x = gap
    for p in panels:
        card.paste(p, (x, gap))
        x += p.size[0] + gap
    ImageDraw.Draw(card).text((gap, side + 2 * gap), text, fill=(0, 0, 0), font=font)
    return np.asarray(card)
