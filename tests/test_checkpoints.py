"""Checkpoint formats: ours (safetensors + card), the authors' .pth.tar, peers' files; safe loading."""
from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch

from avdemo import AVDemoError, load_model, save_model
from avdemo.model import AVLocalizer
from tests.conftest import with_head


def _inputs(cfg, n=2):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(n, 40, 60, 3), dtype=np.uint8)
    windows = rng.uniform(-1, 1, size=(n, cfg.audio.window_samples)).astype(np.float32)
    return frames, windows


def official_state_dict(model: AVLocalizer) -> dict[str, torch.Tensor]:
    """The authors' layout: imgnet.* / audnet.* with the 1-channel stem as conv1_a, an unused 3-channel
    audio stem and classifier heads, under model_state_dict."""
    sd = {}
    for k, v in model.state_dict().items():
        if k.startswith("visual_encoder."):
            sd["imgnet." + k.removeprefix("visual_encoder.")] = v.clone()
        elif k.startswith("audio_encoder."):
            rest = k.removeprefix("audio_encoder.")
            sd["audnet." + rest.replace("conv1.", "conv1_a.", 1) if rest.startswith("conv1.") else "audnet." + rest] = v.clone()
    sd["audnet.conv1.weight"] = torch.randn(64, 3, 7, 7)
    sd["audnet.fc.weight"], sd["audnet.fc.bias"] = torch.randn(10, 512), torch.randn(10)
    sd["imgnet.fc.weight"], sd["imgnet.fc.bias"] = torch.randn(1000, 512), torch.randn(1000)
    return sd


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
def test_official_pth_tar_gives_the_same_maps_as_the_source_weights(tmp_path, tiny_config, prefix):
    cfg = with_head(tiny_config, False)
    torch.manual_seed(1)
    source = AVLocalizer(cfg).eval()
    sd = {prefix + k: v for k, v in official_state_dict(source).items()}
    path = tmp_path / "best.pth.tar"
    torch.save({"epoch": 3, "model_state_dict": sd}, path)
    loaded = load_model(path, config=cfg)
    frames, windows = _inputs(cfg)
    a, b = source.localize(frames, windows), loaded.localize(frames, windows)
    np.testing.assert_allclose(a.maps, b.maps, atol=1e-5)
    np.testing.assert_allclose(a.s_A, b.s_A, atol=1e-5)
    assert "no alignment head" in loaded.card["notes"]


def test_official_checkpoint_defaults_to_paper_preset_without_head(tmp_path):
    from avdemo.config import preset

    source = AVLocalizer(with_head(preset("paper"), False))
    path = tmp_path / "vggss.pth.tar"
    torch.save({"model_state_dict": official_state_dict(source)}, path)
    model = load_model(path)
    assert model.cfg.image_size == 224 and not model.cfg.alignment_head


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
        with pytest.raises(AVDemoError, match="weights-only"):
            load_model(p)
    assert not marker.exists()


def test_unknown_and_missing_files_give_clear_errors(tmp_path):
    with pytest.raises(AVDemoError, match="not found"):
        load_model(tmp_path / "nope.safetensors")
    (tmp_path / "x.onnx").write_bytes(b"123")
    with pytest.raises(AVDemoError, match="unknown checkpoint type"):
        load_model(tmp_path / "x.onnx")
