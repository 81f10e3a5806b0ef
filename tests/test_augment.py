"""The augmented image view batched on the device (train/augment.py) against torchvision's, frame by frame."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torchvision.transforms.v2 as T
import torchvision.transforms.v2.functional as TF
from scipy.stats import ks_2samp

from train.augment import (ImageAugment, augment_frame, brightness, contrast, crop, gaussian_blur, grayscale, hue,
                           frame_transform, resize_square, saturation, translate)
from train.config import ImageAugConfig

OFF = ImageAugConfig(crop_scale=1.0, rotate90_p=0, jitter_p=0, blur_p=0, hflip_p=0, vflip_p=0, translate=0,
                     grayscale_p=0)


@pytest.fixture(scope="module")
def frames() -> torch.Tensor:
    return torch.randint(0, 256, (6, 3, 40, 40), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)


@pytest.mark.parametrize("ours, theirs, factors", [
    (brightness, TF.adjust_brightness, [0.6, 0.8, 1.0, 1.2, 1.4, 0.7]),
    (contrast, TF.adjust_contrast, [0.6, 0.8, 1.0, 1.2, 1.4, 0.7]),
    (saturation, TF.adjust_saturation, [0.6, 0.8, 1.0, 1.2, 1.4, 0.7]),
    (hue, TF.adjust_hue, [-0.1, -0.05, 0.0, 0.03, 0.1, 0.07]),
])
def test_colour_operations_equal_torchvision_on_uint8(frames, ours, theirs, factors):
    out = ours(frames.float(), torch.tensor(factors, dtype=torch.float64).view(-1, 1, 1, 1))
    expected = torch.stack([theirs(f, factor) for f, factor in zip(frames, factors)])
    assert torch.equal(out, expected.float())


def test_blur_grayscale_translation_and_crop_equal_torchvision(frames):
    sigmas = [0.1, 0.5, 1.0, 1.5, 2.0, 0.3]
    blurred = gaussian_blur(frames.float(), torch.tensor(sigmas), 5)
    expected = torch.stack([TF.gaussian_blur(f, [5, 5], [s, s]) for f, s in zip(frames, sigmas)])
    assert torch.equal(blurred, expected.float())
    gray = grayscale(frames.float()).expand_as(frames)
    assert torch.equal(gray, torch.stack([TF.rgb_to_grayscale(f, 3) for f in frames]).float())
    dx, dy = [-3, 0, 5, 2, -7, 1], [1, -4, 0, 3, 2, -1]
    moved = translate(frames, torch.tensor(dx), torch.tensor(dy))
    assert torch.equal(moved, torch.stack([
        TF.affine(f, angle=0.0, translate=[x, y], scale=1.0, shear=[0.0, 0.0],
                  interpolation=T.InterpolationMode.NEAREST, fill=0) for f, x, y in zip(frames, dx, dy)]))
    top, left = [0, 1, 2, 3, 4, 5], [5, 4, 3, 2, 1, 0]
    cropped = crop(frames, torch.tensor(top), torch.tensor(left), 30)
    assert torch.equal(cropped, torch.stack([TF.crop(f, t, l, 30, 30) for f, t, l in zip(frames, top, left)]))


def test_parameters_come_from_the_generator_only_and_everything_off_is_the_identity(frames):
    aug = ImageAugment(ImageAugConfig(), 32)
    state = torch.get_rng_state()
    a = aug(frames, torch.Generator().manual_seed(5))
    b = aug(frames, torch.Generator().manual_seed(5))
    c = aug(frames, torch.Generator().manual_seed(6))
    assert torch.equal(torch.get_rng_state(), state)
    assert a.shape == (6, 3, 32, 32) and a.dtype == torch.uint8
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(ImageAugment(OFF, 40)(frames, torch.Generator().manual_seed(1)), frames)


def test_the_loaders_frame_by_frame_view_is_seeded_and_leaves_the_global_rng_alone(frames):
    transform = frame_transform(ImageAugConfig(), 32)
    state = torch.get_rng_state()
    a, b, c = (augment_frame(transform, frames[0], seed) for seed in (5, 5, 6))
    assert torch.equal(torch.get_rng_state(), state)
    assert a.shape == (3, 32, 32) and a.dtype == torch.uint8
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_each_frame_gets_its_own_parameters(frames):
    same = frames[:1].expand(64, -1, -1, -1)
    out = ImageAugment(ImageAugConfig(), 32)(same, torch.Generator().manual_seed(0))
    assert len({bytes(o.numpy()) for o in out}) == 64


def statistics(views: torch.Tensor) -> dict[str, np.ndarray]:
    """Per view: mean of each channel, share of black pixels (translation fill), spread between
    channels (saturation), and where the bright top-left quadrant went (rotation, flips, crop, shift)."""
    x = views.float()
    rows = torch.arange(x.shape[-1], dtype=torch.float32)
    weight = (x.mean(1) > 200).float() + 1e-6
    return {"red": x[:, 0].mean((-2, -1)).numpy(), "green": x[:, 1].mean((-2, -1)).numpy(),
            "blue": x[:, 2].mean((-2, -1)).numpy(), "black": (x.amax(1) == 0).float().mean((-2, -1)).numpy(),
            "chroma": (x.amax(1) - x.amin(1)).mean((-2, -1)).numpy(),
            "bright_row": ((weight * rows[:, None]).sum((-2, -1)) / weight.sum((-2, -1))).numpy(),
            "bright_col": ((weight * rows[None, :]).sum((-2, -1)) / weight.sum((-2, -1))).numpy()}


def test_batched_views_are_distributed_as_torchvisions_frame_by_frame():
    """Two-sample KS tests on 600 views each; the same check tells a batched view whose colour jitter
    is off from the reference, so it has the power to fail."""
    side, size, n = 44, 40, 600
    frame = torch.zeros(3, side, side, dtype=torch.uint8)
    frame[0] = torch.linspace(30, 230, side).round().to(torch.uint8)[None, :]   # a red ramp
    frame[2] = 90
    frame[:, : side // 2, : side // 2] = torch.tensor([250, 240, 60], dtype=torch.uint8)[:, None, None]
    cfg = ImageAugConfig()
    transform = frame_transform(cfg, size)
    reference = torch.stack([augment_frame(transform, frame, seed) for seed in range(n)])
    batched = ImageAugment(cfg, size)(frame.expand(n, -1, -1, -1), torch.Generator().manual_seed(1))
    no_jitter = ImageAugment(dataclasses.replace(cfg, jitter_p=0.0), size)(
        frame.expand(n, -1, -1, -1), torch.Generator().manual_seed(2))
    ref, ours, wrong = statistics(reference), statistics(batched), statistics(no_jitter)
    p_same = {k: ks_2samp(ref[k], ours[k]).pvalue for k in ref}
    p_wrong = {k: ks_2samp(ref[k], wrong[k]).pvalue for k in ref}
    assert min(p_same.values()) > 1e-3, p_same
    assert min(p_wrong.values()) < 1e-6, p_wrong


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_views_on_the_gpu_equal_those_on_the_cpu(frames):
    aug = ImageAugment(ImageAugConfig(), 32)
    params = aug.draw(len(frames), frames.shape[-1], torch.Generator().manual_seed(3))
    on_gpu = aug.apply(frames.cuda(), params).cpu()
    assert (on_gpu.int() - aug.apply(frames, params).int()).abs().max() <= 1


def test_resizing_a_batch_equals_resizing_each_frame(frames):
    assert torch.equal(resize_square(frames, 29), torch.stack([resize_square(f, 29) for f in frames]))
