"""The augmented image view of METHOD.md, made two ways with the same distribution.

Random crop, rotation by a multiple of 90 degrees, horizontal and vertical flips, translation, colour
jitter (brightness, contrast, saturation and hue, in a random order per frame), Gaussian blur, grayscale:
- ``frame_transform``: torchvision's transforms, frame by frame, in the loader workers (CPU training);
- ``ImageAugment``: a whole batch at once on the training device (GPU training, where per-frame work in
  the workers starved the GPU). The training step draws every frame's own parameters on the CPU from a
  seeded generator (a run is the same on any device) and applies them batched; each operation follows
  its torchvision transform on uint8 images, rounding included.
tests/test_augment.py checks the two agree operation by operation and in distribution.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
import torchvision.transforms.v2 as T
import torchvision.transforms.v2.functional as TF
from torchvision.transforms.v2.functional._color import _hsv_to_rgb, _rgb_to_hsv

from .config import ImageAugConfig

GRAY_WEIGHTS = (0.2989, 0.587, 0.114)     # torchvision's (ITU-R 601) luma weights


def blur_kernel_size(size: int) -> int:
    """Odd Gaussian kernel side, about a tenth of the image side."""
    return 2 * max(1, round(0.05 * size)) + 1


def frame_transform(cfg: ImageAugConfig, size: int) -> T.Compose:
    """The augmented view of one uint8 frame (3, s, s) with torchvision's transforms (global RNG)."""
    return T.Compose([
        T.RandomCrop(size),
        T.RandomApply([T.RandomChoice([T.Lambda(lambda x, k=k: torch.rot90(x, k, dims=(-2, -1)))
                                       for k in (1, 2, 3)])], p=cfg.rotate90_p),
        T.RandomHorizontalFlip(cfg.hflip_p),
        T.RandomVerticalFlip(cfg.vflip_p),
        T.RandomAffine(degrees=0, translate=(cfg.translate, cfg.translate)),
        T.RandomApply([T.ColorJitter(*cfg.jitter)], p=cfg.jitter_p),
        T.RandomApply([T.GaussianBlur(blur_kernel_size(size), sigma=cfg.blur_sigma)], p=cfg.blur_p),
        T.RandomGrayscale(cfg.grayscale_p),
    ])


def augment_frame(transform: T.Compose, frame: torch.Tensor, seed: int) -> torch.Tensor:
    """``transform(frame)`` drawn from ``seed``; the caller's RNG state is left untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return transform(frame)


@dataclass
class AugmentParams:
    """Every frame's random draws (first dimension B)."""

    top: torch.Tensor           # crop origin, pixels
    left: torch.Tensor
    quarter_turns: torch.Tensor  # counter-clockwise rotation by k * 90 degrees, k in 0..3
    hflip: torch.Tensor          # bool
    vflip: torch.Tensor
    shift_x: torch.Tensor        # translation, pixels
    shift_y: torch.Tensor
    jitter: torch.Tensor         # bool: colour jitter applied
    jitter_order: torch.Tensor   # (B, 4): the order of 0 brightness, 1 contrast, 2 saturation, 3 hue
    jitter_factors: torch.Tensor  # (B, 4) float64: their factors
    blur: torch.Tensor           # bool
    blur_sigma: torch.Tensor
    gray: torch.Tensor           # bool


class ImageAugment:
    """Batched augmented views: uint8 frames (B, 3, s, s), s >= size -> uint8 (B, 3, size, size)."""

    def __init__(self, cfg: ImageAugConfig, size: int):
        self.cfg, self.size = cfg, size
        self.kernel_size = blur_kernel_size(size)
        b, c, s, h = cfg.jitter
        self.jitter_ranges = [(max(0.0, 1 - b), 1 + b), (max(0.0, 1 - c), 1 + c), (max(0.0, 1 - s), 1 + s), (-h, h)]

    def draw(self, n: int, side: int, generator: torch.Generator) -> AugmentParams:
        """The random parameters of n frames of side ``side``, with torchvision's distributions."""
        cfg, size = self.cfg, self.size

        def chance(p: float) -> torch.Tensor:
            return torch.rand(n, generator=generator) < p

        def uniform(low: float, high: float) -> torch.Tensor:
            return low + (high - low) * torch.rand(n, generator=generator, dtype=torch.float64)

        max_shift = cfg.translate * size
        return AugmentParams(
            top=torch.randint(side - size + 1, (n,), generator=generator),
            left=torch.randint(side - size + 1, (n,), generator=generator),
            quarter_turns=torch.randint(1, 4, (n,), generator=generator) * chance(cfg.rotate90_p),
            hflip=chance(cfg.hflip_p), vflip=chance(cfg.vflip_p),
            shift_x=uniform(-max_shift, max_shift).round().long(),
            shift_y=uniform(-max_shift, max_shift).round().long(),
            jitter=chance(cfg.jitter_p),
            jitter_order=torch.rand(n, 4, generator=generator).argsort(dim=1),     # a random permutation each
            jitter_factors=torch.stack([uniform(*r) for r in self.jitter_ranges], dim=1),
            blur=chance(cfg.blur_p), blur_sigma=uniform(*cfg.blur_sigma).float(),
            gray=chance(cfg.grayscale_p),
        )

    def views(self, frames: torch.Tensor, kinds: list[str], generator: torch.Generator) -> torch.Tensor:
        """Cached frames (B, V, 3, s, s) of the view ``kinds`` -> uint8 views (V * B, 3, size, size),
        view-major: the augmented view augmented, the others resized."""
        return torch.cat([self(frames[:, v], generator) if kind == "augmented"
                          else resize_square(frames[:, v], self.size) for v, kind in enumerate(kinds)])

    def __call__(self, frames: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Draw (from ``generator``) and apply every frame's augmentation."""
        return self.apply(frames, self.draw(frames.shape[0], frames.shape[-1], generator))

    def apply(self, frames: torch.Tensor, p: AugmentParams) -> torch.Tensor:
        """The augmented views of uint8 frames (B, 3, s, s) with the given (CPU) parameters."""
        device = frames.device
        x = crop(frames, p.top.to(device), p.left.to(device), self.size)
        for k in (1, 2, 3):
            x = where_rows(p.quarter_turns == k, lambda y: torch.rot90(y, k, dims=(-2, -1)), x)
        x = where_rows(p.hflip, lambda y: y.flip(-1), x)
        x = where_rows(p.vflip, lambda y: y.flip(-2), x)
        x = translate(x, p.shift_x.to(device), p.shift_y.to(device)).float()
        for position in range(4):
            for op, fn in enumerate((brightness, contrast, saturation, hue)):
                rows = p.jitter & (p.jitter_order[:, position] == op)
                factor = p.jitter_factors[rows, op].view(-1, 1, 1, 1).to(device)
                x = where_rows(rows, lambda y: fn(y, factor), x)
        x = where_rows(p.blur, lambda y: gaussian_blur(y, p.blur_sigma[p.blur].to(device), self.kernel_size), x)
        x = where_rows(p.gray, lambda y: grayscale(y).expand_as(y), x)
        return x.to(torch.uint8)


def where_rows(rows: torch.Tensor, fn, x: torch.Tensor) -> torch.Tensor:
    """x with ``fn`` applied, in place, to the rows (first dimension) where the CPU mask ``rows`` is true
    (the mask stays on the CPU, so that the device is never waited for)."""
    index = rows.nonzero().squeeze(1)
    if index.numel() == 0:
        return x
    index = index.to(x.device, non_blocking=True)
    return x.index_copy_(0, index, fn(x.index_select(0, index)).to(x.dtype))


def crop(frames: torch.Tensor, top: torch.Tensor, left: torch.Tensor, size: int) -> torch.Tensor:
    """(B, C, s, s) -> (B, C, size, size), each frame from its own origin."""
    offsets = torch.arange(size, device=frames.device)
    rows = (top[:, None] + offsets)[:, None, :, None]
    cols = (left[:, None] + offsets)[:, None, None, :]
    batch = torch.arange(frames.shape[0], device=frames.device)[:, None, None, None]
    channel = torch.arange(frames.shape[1], device=frames.device)[None, :, None, None]
    return frames[batch, channel, rows, cols]


def translate(x: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor) -> torch.Tensor:
    """Move each frame by (dx, dy) whole pixels (right, down), filling with zeros (as torchvision's
    affine with nearest interpolation)."""
    size = x.shape[-1]
    offsets = torch.arange(size, device=x.device)
    rows, cols = offsets[None, :] - dy[:, None], offsets[None, :] - dx[:, None]       # source pixel
    inside = ((rows >= 0) & (rows < size))[:, None, :, None] & ((cols >= 0) & (cols < size))[:, None, None, :]
    batch = torch.arange(x.shape[0], device=x.device)[:, None, None, None]
    channel = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    moved = x[batch, channel, rows.clamp(0, size - 1)[:, None, :, None], cols.clamp(0, size - 1)[:, None, None, :]]
    return moved * inside


# Colour operations on float32 frames that hold uint8 values, rounding as torchvision does on uint8;
# factors (B, 1, 1, 1) in float64.
def luma(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x.unbind(dim=-3)
    return r.mul(GRAY_WEIGHTS[0]).add_(g, alpha=GRAY_WEIGHTS[1]).add_(b, alpha=GRAY_WEIGHTS[2]).unsqueeze(-3)


def blend(x: torch.Tensor, other: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    """x * ratio + other * (1 - ratio), with ``ratio`` in float64 and 1 - ratio taken before the cast to
    float32, as torchvision does with a Python float."""
    return torch.addcmul(x * ratio.float(), other, (1 - ratio).float()).clamp(0, 255).trunc()


def brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return (x * factor.float()).clamp(0, 255).trunc()


def contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return blend(x, luma(x).floor().mean(dim=(-3, -2, -1), keepdim=True), factor)


def saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return blend(x, luma(x).floor(), factor)


def hue(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    h, s, v = _rgb_to_hsv(x * (1.0 / 255)).unbind(dim=-3)
    rgb = _hsv_to_rgb(torch.stack(((h + factor[:, 0].float()).remainder(1.0), s, v), dim=-3))
    return (rgb * (256 - 1e-3)).trunc()


def grayscale(x: torch.Tensor) -> torch.Tensor:
    return luma(x).trunc()


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Each frame blurred with its own sigma: torchvision's kernel and reflect padding, applied as two
    1-D passes (the same sums in another order: a value may round the other way, rarely), rounded."""
    b, c, h, w = x.shape
    lim = (kernel_size - 1) / (2.0 * 2.0 ** 0.5)
    grid = torch.linspace(-lim, lim, kernel_size, device=x.device)
    k1d = torch.softmax(-(grid[None, :] / sigma[:, None]).pow(2), dim=1).repeat_interleave(c, dim=0)  # (B*C, K)
    pad = kernel_size // 2
    y = F.pad(x.reshape(1, b * c, h, w), (pad, pad, 0, 0), mode="reflect")
    y = F.conv2d(y, k1d[:, None, None, :], groups=b * c)
    y = F.pad(y, (0, 0, pad, pad), mode="reflect")
    y = F.conv2d(y, k1d[:, None, :, None], groups=b * c)
    return y.reshape(b, c, h, w).round()


def resize_square(frames_uint8: torch.Tensor, side: int) -> torch.Tensor:
    """uint8 (..., 3, H, W) -> (..., 3, side, side), bicubic with antialiasing (aspect not kept, as the
    reference)."""
    if tuple(frames_uint8.shape[-2:]) == (side, side):
        return frames_uint8
    return TF.resize(frames_uint8, [side, side], interpolation=T.InterpolationMode.BICUBIC, antialias=True)
