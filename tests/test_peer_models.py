"""The peers of the reference evaluation load from their own key layouts and give their own maps:
EZ-VSL / FNAC (one projection per modality) and SLAVC (two, maps averaged; momentum copies ignored),
each checked against a forward pass written here from their public code's formulas."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from avdemo import AVDemoError, load_model


def _audnet() -> nn.Module:
    """torchvision ResNet-18 with a 1-channel stem, global max pooling and no classifier."""
    net = torchvision.models.resnet18(weights=None)
    net.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    net.avgpool = nn.AdaptiveMaxPool2d((1, 1))
    net.fc = nn.Identity()
    return net


def _imgnet() -> nn.Module:
    """torchvision ResNet-18 without avgpool and fc: (B, 3, 224, 224) -> (B, 512 * 7 * 7) flattened."""
    net = torchvision.models.resnet18(weights=None)
    net.avgpool, net.fc = nn.Identity(), nn.Identity()
    return net


def _randomise_batch_norms(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.2, 0.2)


class EZVSL(nn.Module):
    """EZ-VSL's (and FNAC's) towers and projections; the map is the cosine at every position."""

    def __init__(self, dim: int = 512):
        super().__init__()
        self.imgnet, self.audnet = _imgnet(), _audnet()
        self.img_proj = nn.Conv2d(512, dim, kernel_size=(1, 1))
        self.aud_proj = nn.Linear(512, dim)
        _randomise_batch_norms(self)

    def forward(self, image, audio):
        img = F.normalize(self.img_proj(self.imgnet(image).unflatten(1, (512, 7, 7))), dim=1)
        aud = F.normalize(self.aud_proj(self.audnet(audio)), dim=1)
        return torch.einsum("nchw,nc->nhw", img, aud)


class SLAVC(nn.Module):
    """SLAVC's towers, two projections per modality (maps averaged) and the momentum copies."""

    def __init__(self, dim: int = 512):
        super().__init__()
        self.imgnet, self.audnet = _imgnet(), _audnet()
        self.img_proj1, self.img_proj2 = nn.Conv2d(512, dim, 1), nn.Conv2d(512, dim, 1)
        self.aud_proj1, self.aud_proj2 = nn.Linear(512, dim), nn.Linear(512, dim)
        self.momentum_imgnet, self.momentum_audnet = _imgnet(), _audnet()
        self.momentum_img_proj1, self.momentum_aud_proj1 = nn.Conv2d(512, dim, 1), nn.Linear(512, dim)
        _randomise_batch_norms(self)

    def forward(self, image, audio):
        img = self.imgnet(image).unflatten(1, (512, 7, 7))
        aud = self.audnet(audio)
        maps = [torch.einsum("nchw,nc->nhw", F.normalize(p(img), dim=1), F.normalize(q(aud), dim=1))
                for p, q in ((self.img_proj1, self.aud_proj1), (self.img_proj2, self.aud_proj2))]
        return (maps[0] + maps[1]) / 2


@pytest.mark.parametrize("family, reference_class, dim", [("ezvsl", EZVSL, 512), ("slavc", SLAVC, 512),
                                                          ("ezvsl", EZVSL, 128)])
def test_peer_checkpoints_give_their_own_maps(tmp_path, family, reference_class, dim):
    torch.manual_seed(2)
    reference = reference_class(dim).eval()
    path = tmp_path / f"{family}.pth"
    torch.save({"model": {f"module.{k}": v for k, v in reference.state_dict().items()}, "epoch": 19,
                "best_cIoU": 0.38}, path)
    model = load_model(path)
    assert model.card["family"] == family and model.card["map_size"] == 7 and model.cfg.embed_dim == dim
    assert all(k.startswith("momentum_") for k in model.card["ignored_keys"])
    assert bool(model.card["ignored_keys"]) == (family == "slavc")
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(2, 120, 160, 3), dtype=np.uint8)
    windows = rng.uniform(-1, 1, size=(2, model.cfg.audio.window_samples)).astype(np.float32)
    out = model.localize(frames, windows)
    with torch.no_grad():
        expected = reference(model.preprocess_frames(frames), model.audio_to_specs(windows, None, 2))
    assert out.maps_lowres.shape == (2, 7, 7)
    np.testing.assert_allclose(out.maps_lowres, expected.numpy(), atol=1e-4)


def test_fnac_is_read_as_the_ezvsl_layout_and_named_by_the_override(tmp_path):
    path = tmp_path / "fnac.pth"
    torch.save({"model": EZVSL().state_dict()}, path)
    assert load_model(path, family="fnac").card["family"] == "fnac"
    with pytest.raises(AVDemoError, match="unknown model family"):
        load_model(path, family="vggsound")


def test_ssl_tie_is_refused_with_a_clear_message(tmp_path):
    path = tmp_path / "ssltie.pth"
    torch.save({"model": {"vision_fc1.weight": torch.zeros(512, 1024, 1, 1)}}, path)
    with pytest.raises(AVDemoError, match="SSL-TIE checkpoints are not supported"):
        load_model(path)
