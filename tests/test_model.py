"""The model: shapes, the method's formulas, and the localize() call."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from avdemo.config import preset
from avdemo.model import AVLocalizer, pairwise_localization_maps, soft_masked_mean


def test_paper_preset_visual_map_is_14x14_and_audio_vector_512():
    model = AVLocalizer(preset("paper")).eval()
    with torch.inference_mode():
        fmap = model.encode_image(torch.zeros(1, 3, 224, 224))
        avec = model.encode_audio(torch.zeros(1, 1, 257, 299))
    assert fmap.shape == (1, 512, 14, 14)
    assert avec.shape == (1, 512)


def test_localization_map_is_cosine_of_audio_with_every_cell():
    torch.manual_seed(0)
    fmap, avec = torch.randn(2, 8, 3, 4), torch.randn(2, 8)
    maps = pairwise_localization_maps(fmap, avec)
    i, j, y, x = 1, 0, 2, 3
    assert maps[i, j, y, x].item() == pytest.approx(F.cosine_similarity(fmap[i, :, y, x], avec[j], dim=0).item(), abs=1e-6)


def test_soft_masked_mean_follows_the_formula_and_tends_to_max_for_sharp_masks():
    maps = torch.tensor([[[0.9, 0.1], [0.7, -0.2]]])
    w = torch.sigmoid((maps - 0.65) / 0.03)
    assert soft_masked_mean(maps, 0.65, 0.03).item() == pytest.approx(((w * maps).sum() / w.sum()).item())
    assert soft_masked_mean(maps, 0.85, 1e-4).item() == pytest.approx(0.9, abs=1e-4)


def test_localize_returns_maps_at_frame_size_and_consistent_scores(tiny_model):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(3, 50, 70, 3), dtype=np.uint8)
    wav = rng.uniform(-0.5, 0.5, size=(44100, 2)).astype(np.float32)
    out = tiny_model.localize(frames, wav, sample_rate=44100)
    assert out.maps.shape == (3, 50, 70)
    assert out.maps_lowres.shape == (3, 4, 4)
    assert np.all(out.maps <= 1 + 1e-5) and np.all(out.maps >= -1 - 1e-5)
    np.testing.assert_allclose(np.linalg.norm(out.image_emb, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(out.s_A, (out.image_emb * out.audio_emb).sum(1), atol=1e-5)
    expected_sL = soft_masked_mean(torch.from_numpy(out.maps_lowres), 0.65, 0.03).numpy()
    np.testing.assert_allclose(out.s_L, expected_sL, atol=1e-5)
    # the upsampled map keeps the low-res extremes (bilinear, corners aligned)
    assert out.maps.max() == pytest.approx(out.maps_lowres.max(), abs=1e-5)


def test_localize_batch_equals_one_by_one_and_accepts_windows(tiny_model, tiny_config):
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, size=(4, 64, 64, 3), dtype=np.uint8)
    windows = rng.uniform(-1, 1, size=(4, tiny_config.audio.window_samples)).astype(np.float32)
    batch = tiny_model.localize(frames, windows, batch_size=3)
    single = [tiny_model.localize(frames[i], windows[i:i + 1]) for i in range(4)]
    np.testing.assert_allclose(batch.maps, np.concatenate([s.maps for s in single]), atol=1e-4)
    np.testing.assert_allclose(batch.s_A, np.concatenate([s.s_A for s in single]), atol=1e-5)


def test_localize_rejects_bad_inputs_with_clear_messages(tiny_model, tiny_config):
    with pytest.raises(ValueError, match="uint8 RGB"):
        tiny_model.localize(np.zeros((10, 10), np.float32), np.zeros(100), sample_rate=8000)
    with pytest.raises(ValueError, match="sample_rate"):
        tiny_model.localize(np.zeros((10, 10, 3), np.uint8), np.zeros(100, np.float32))
    with pytest.raises(ValueError, match="expects"):
        tiny_model.localize(np.zeros((10, 10, 3), np.uint8), np.zeros((1, 999), np.float32))
    windows = np.zeros((2, tiny_config.audio.window_samples), np.float32)
    with pytest.raises(ValueError, match="3 frames but 2"):
        tiny_model.localize(np.zeros((3, 10, 10, 3), np.uint8), windows)


def test_model_without_alignment_head_uses_pooled_backbone_features(tiny_config):
    import dataclasses

    model = AVLocalizer(dataclasses.replace(tiny_config, alignment_head=False)).eval()
    assert not hasattr(model, "visual_proj")
    with torch.inference_mode():
        fmap, avec = torch.randn(2, 512, 4, 4), torch.randn(2, 512)
        zv, za = model.embed(fmap, avec)
    torch.testing.assert_close(zv, F.normalize(fmap.amax((-2, -1)), dim=-1))
    torch.testing.assert_close(za, F.normalize(avec, dim=-1))
