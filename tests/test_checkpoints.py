"""Checkpoint formats: ours (safetensors + card), the authors' .pth.tar, peers' files; safe loading."""
from __future__ import annotations

import argparse
import json
import pickle
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from avdemo import AVDemoError, load_model, save_model


def _inputs(cfg, n=2):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(n, 40, 60, 3), dtype=np.uint8)
    windows = rng.uniform(-1, 1, size=(n, cfg.audio.window_samples)).astype(np.float32)
    return frames, windows


class RefBlock(nn.Module):
    """The reference BasicBlock: conv3x3-bn-relu-conv3x3-bn, plus the (downsampled) input, relu."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)) \
            if stride != 1 or cin != cout else None

    def forward(self, x):
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(out + (self.downsample(x) if self.downsample is not None else x))


class RefResNet(nn.Module):
    """A transcription of the reference ResNet-18 class both towers are built from: three stems (conv1 for
    images, conv1_a for audio, conv1_flow unused), layer4 with stride 1, an unused classifier fc."""

    def __init__(self, modal: str):
        super().__init__()
        self.modal = modal
        self.conv1_a = nn.Conv2d(1, 64, 7, 2, 3, bias=False)
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.conv1_flow = nn.Conv2d(6, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        widths, strides, cin = (64, 128, 256, 512), (1, 2, 2, 1), 64
        for i, (w, s) in enumerate(zip(widths, strides), start=1):
            setattr(self, f"layer{i}", nn.Sequential(RefBlock(cin, w, s), RefBlock(w, w, 1)))
            cin = w
        self.fc = nn.Linear(512, 1000)

    def forward(self, x):
        x = self.conv1_a(x) if self.modal == "audio" else self.conv1(x)
        x = F.max_pool2d(F.relu(self.bn1(x)), 3, 2, 1)
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class RefModel(nn.Module):
    """The reference model's towers and its formulas for the map and the scores."""

    def __init__(self):
        super().__init__()
        self.imgnet, self.audnet = RefResNet("vision"), RefResNet("audio")
        for m in self.modules():          # batch norms with non-trivial statistics
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                nn.init.uniform_(m.weight, 0.5, 1.5)
                nn.init.uniform_(m.bias, -0.2, 0.2)

    def forward(self, image, spec, threshold=0.65, temperature=0.03):
        img = F.normalize(self.imgnet(image), dim=1)
        aud = F.normalize(F.adaptive_max_pool2d(self.audnet(spec), 1).flatten(1), dim=1)
        A = torch.einsum("ncqa,nchw->nqa", img, aud[:, :, None, None])
        pos = torch.sigmoid((A - threshold) / temperature)
        s_L = (pos * A).flatten(1).sum(1) / pos.flatten(1).sum(1)
        s_A = (F.normalize(self.imgnet(image).amax((2, 3)), dim=1) * aud).sum(1)    # no head: pooled features
        return A, s_L, s_A


def released_checkpoint(model: RefModel, path, prefix: str = "") -> None:
    """Save as the authors' training script does: the weights under model_state_dict next to other objects."""
    state = {prefix + k: v for k, v in model.state_dict().items()}
    torch.save({"epoch": 20, "model_state_dict": state, "optimizer": {"state": {}, "param_groups": [{"lr": 1e-4}]},
                "loss": torch.tensor(1.25), "args": argparse.Namespace(epsilon=0.65, tau=0.03, trainset="vggss"),
                "best_ciou": np.float64(0.393)}, path)


IGNORED = ["audnet.conv1.weight", "audnet.conv1_flow.weight", "audnet.fc.bias", "audnet.fc.weight",
           "imgnet.conv1_a.weight", "imgnet.conv1_flow.weight", "imgnet.fc.bias", "imgnet.fc.weight"]


def test_our_format_round_trips_with_card(tmp_path, tiny_model, tiny_config):
    path = save_model(tiny_model, tmp_path / "m.safetensors", card={"provenance": {"steps": 3}})
    card = json.loads((tmp_path / "m.json").read_text())
    assert card["config"]["image_size"] == tiny_config.image_size and card["provenance"]["steps"] == 3
    loaded = load_model(path)
    frames, windows = _inputs(tiny_config)
    a, b = tiny_model.localize(frames, windows), loaded.localize(frames, windows)
    np.testing.assert_allclose(a.maps, b.maps, atol=1e-5)
    assert loaded.card["provenance"]["steps"] == 3
    assert not list(tmp_path.glob("*.tmp"))


def test_float16_storage_loads_close_to_float32(tmp_path, tiny_model, tiny_config):
    path = save_model(tiny_model, tmp_path / "h.safetensors", dtype=torch.float16)
    frames, windows = _inputs(tiny_config)
    a, b = tiny_model.localize(frames, windows), load_model(path).localize(frames, windows)
    np.testing.assert_allclose(a.maps, b.maps, atol=2e-2)


@pytest.mark.parametrize("prefix", ["", "module."])
def test_the_released_layout_loads_and_gives_the_reference_maps_and_scores(tmp_path, prefix):
    torch.manual_seed(1)
    reference = RefModel().eval()
    path = tmp_path / "ours_sup.pth.tar"
    released_checkpoint(reference, path, prefix)
    model = load_model(path)                                   # the paper preset, no config given
    assert model.cfg.image_size == 224 and not model.cfg.alignment_head
    assert model.card["ignored_keys"] == IGNORED                # named without the DDP prefix
    assert model.card["family"] == "ours" and load_model(path, family="lvs").card["family"] == "lvs"
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(2, 180, 240, 3), dtype=np.uint8)
    windows = rng.uniform(-1, 1, size=(2, model.cfg.audio.window_samples)).astype(np.float32)
    out = model.localize(frames, windows)
    with torch.no_grad():
        A, s_L, s_A = reference(model.preprocess_frames(frames), model.audio_to_specs(windows, None, 2))
    assert out.maps_lowres.shape == (2, 14, 14)
    np.testing.assert_allclose(out.maps_lowres, A.numpy(), atol=1e-4)
    np.testing.assert_allclose(out.s_L, s_L.numpy(), atol=1e-4)
    np.testing.assert_allclose(out.s_A, s_A.numpy(), atol=1e-4)


def test_other_unexpected_keys_in_the_released_layout_are_still_named(tmp_path):
    state = {f"imgnet.{k}": v for k, v in RefResNet("vision").state_dict().items()}
    state |= {f"audnet.{k}": v for k, v in RefResNet("audio").state_dict().items()}
    state["imgnet.dim_mapping.weight"] = torch.zeros(8, 512)
    del state["audnet.layer4.1.bn2.running_var"]
    torch.save({"model_state_dict": state}, tmp_path / "odd.pth.tar")
    with pytest.raises(AVDemoError, match=r"missing keys \(audio_encoder.layer4.1.bn2.running_var\).*"
                                          r"unexpected keys \(visual_encoder.dim_mapping.weight\)"):
        load_model(tmp_path / "odd.pth.tar")


class _Plain:
    """A picklable class that is not on the allowlist (importable, no code runs on load)."""

    def __init__(self):
        self.value = 3


def test_code_free_extras_load_and_other_classes_need_an_explicit_trust(tmp_path, tiny_model, tiny_config):
    path = tmp_path / "extras.pth"
    torch.save({"model": tiny_model.state_dict(), "args": argparse.Namespace(lr=1e-4), "best": np.float32(0.5),
                "step": np.int64(7)}, path)
    load_model(path, config=tiny_config)                       # Namespace and numpy numbers are allowed
    torch.save({"model": tiny_model.state_dict(), "extra": _Plain()}, path)
    with pytest.raises(AVDemoError, match=r"extras.pth: refused: it holds an object of test_checkpoints._Plain, "
                                          r"which could run code when loaded") as refused:
        load_model(path, config=tiny_config)
    _assert_ours(str(refused.value))
    with pytest.warns(UserWarning, match="full unpickling"):
        loaded = load_model(path, config=tiny_config, trusted=True)
    frames, windows = _inputs(tiny_config)
    np.testing.assert_allclose(loaded.localize(frames, windows).maps, tiny_model.localize(frames, windows).maps,
                               atol=1e-5)


def test_peer_model_dict_loads_when_architecture_matches(tmp_path, tiny_model, tiny_config):
    path = tmp_path / "peer.pth"
    torch.save({"model": tiny_model.state_dict(), "optimizer": {}, "epoch": 1}, path)
    loaded = load_model(path, config=tiny_config)
    frames, windows = _inputs(tiny_config)
    np.testing.assert_allclose(tiny_model.localize(frames, windows).maps, loaded.localize(frames, windows).maps, atol=1e-5)


def test_missing_and_mismatched_keys_are_named(tmp_path, tiny_model, tiny_config):
    sd = dict(tiny_model.state_dict())
    del sd["visual_proj.weight"]
    sd["audio_proj.bias"] = torch.zeros(7)
    path = tmp_path / "broken.pth"
    torch.save({"model": sd}, path)
    with pytest.raises(AVDemoError, match=r"missing keys \(visual_proj.weight\).*audio_proj.bias: file \(7,\)"):
        load_model(path, config=tiny_config)


class _Payload:
    def __reduce__(self):
        import os
        return (os.system, (f"touch {_Payload.marker}",))


def test_pickle_with_code_payload_is_refused_and_does_not_run(tmp_path):
    marker = tmp_path / "pwned"
    _Payload.marker = marker
    path = tmp_path / "evil.pth.tar"
    with open(path, "wb") as f:
        pickle.dump({"model_state_dict": _Payload()}, f)
    torch.save({"model_state_dict": {"x": _Payload()}}, tmp_path / "evil2.pth")
    for p in (path, tmp_path / "evil2.pth"):
        with pytest.raises(AVDemoError, match="refused: it holds") as refused:
            load_model(p)
        _assert_ours(str(refused.value))
    assert "posix.system" in str(refused.value)
    shutil.copy(tmp_path / "evil2.pth", tmp_path / "evil.safetensors")     # named as ours: still refused
    with pytest.raises(AVDemoError, match="refused: it holds an object of posix.system"):
        load_model(tmp_path / "evil.safetensors")
    assert not marker.exists()


def _assert_ours(message: str) -> None:
    """A message in our words: short, whole sentences, no terminal codes, never PyTorch's advice to
    unpickle fully."""
    assert len(message) < 400 and "\x1b" not in message and message.endswith(("file", ")"))
    assert "weights_only" not in message and "Re-running" not in message and "trusted source" not in message


def test_the_format_is_read_from_the_bytes_not_the_name(tmp_path, tiny_model, tiny_config):
    ours = save_model(tiny_model, tmp_path / "real.safetensors")
    renamed = tmp_path / "real.pth.tar"
    shutil.copy(ours, renamed)
    with pytest.raises(AVDemoError, match=r"real.pth.tar is a safetensors file, whatever its name says, and its "
                                          r"model card real.pth.json is missing: name it real.safetensors"):
        load_model(renamed)
    shutil.copy(tmp_path / "real.json", tmp_path / "real.pth.json")
    frames, windows = _inputs(tiny_config)
    expected = tiny_model.localize(frames, windows).maps
    np.testing.assert_allclose(load_model(renamed).localize(frames, windows).maps, expected, atol=1e-5)
    torch_file = tmp_path / "peer.safetensors"                   # a torch.save zip under our suffix
    torch.save({"model": tiny_model.state_dict()}, torch_file)
    np.testing.assert_allclose(load_model(torch_file, config=tiny_config).localize(frames, windows).maps,
                               expected, atol=1e-5)
    legacy = tmp_path / "legacy.ckpt"                            # the pre-zip pickle format
    torch.save({"model": tiny_model.state_dict()}, legacy, _use_new_zipfile_serialization=False)
    assert load_model(legacy, config=tiny_config).card["format"] == "pytorch"


def test_a_broken_torch_file_gets_a_short_message_in_whole_sentences(tmp_path):
    path = tmp_path / "cut.pth.tar"
    path.write_bytes(b"PK\x03\x04" + b"\x00" * 64)                  # a zip's magic, nothing after it
    with pytest.raises(AVDemoError, match=r"cut.pth.tar: not a readable PyTorch checkpoint \(") as e:
        load_model(path)
    _assert_ours(str(e.value))


def _card_with(tmp_path, tiny_model, text: str):
    path = save_model(tiny_model, tmp_path / "m.safetensors")
    (tmp_path / "m.json").write_text(text)
    return path


@pytest.mark.parametrize("text, message", [
    ('{"config": {"image_size": 64', r"m.json: the model card is not valid JSON \(Expecting"),
    ("[1, 2]", "m.json: the model card must be a JSON object, not a list"),
    ('{"format": "avdemo/1"}', 'm.json: the model card has no "config" object'),
    ('{"config": [64]}', 'm.json: the model card has no "config" object'),
    ('{"config": {"image_size": "big"}}', 'm.json: "config" image_size = \'big\': expected int'),
    ('{"config": {"image_size": -64}}', 'm.json: "config" image_size = -64: expected a finite number > 0'),
    ('{"config": {"mask_temperature": 1e999}}', 'm.json: "config" mask_temperature = inf: expected a finite'),
    ('{"config": {"alignment_head": 1}}', 'm.json: "config" alignment_head = 1: expected bool'),
    ('{"config": {"audio": {"nperseg": 0}}}', 'm.json: "config" nperseg = 0'),
    ('{"config": {"audio": {"nperseg": 64, "noverlap": 64}}}', "noverlap must be below nperseg"),
    ('{"config": {"audio": 3}}', 'm.json: "config" audio must be an object'),
    ('{"config": {"colour": "red"}}', 'm.json: unknown "config" settings colour'),
    ('{"config": {"family": "mine"}}', 'm.json: "config" family \'mine\' is not one of'),
    ('{"config": {"visual_backbone": "vgg"}}', r"m.safetensors: the model cannot be built from its config "
                                               r"\(unknown visual backbone 'vgg'"),
])
def test_a_bad_model_card_is_named_with_what_is_wrong(tmp_path, tiny_model, text, message):
    with pytest.raises(AVDemoError, match=message):
        load_model(_card_with(tmp_path, tiny_model, text))


def test_unknown_and_missing_files_give_clear_errors(tmp_path):
    with pytest.raises(AVDemoError, match="not found"):
        load_model(tmp_path / "nope.safetensors")
    (tmp_path / "x.onnx").write_bytes(b"123")
    with pytest.raises(AVDemoError, match="unknown checkpoint type"):
        load_model(tmp_path / "x.onnx")
