"""The training module's parts: the loss, the neighbour sampler, the views, the batch order, the config."""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from avdemo.audio import audio_windows
from avdemo.config import AudioConfig
from avdemo.errors import AVDemoError
from train.config import (ABLATIONS, PRESETS, AudioAugConfig, TrainConfig, ablation, apply_overrides,
                          load_config)
from train.data import TrainBatchSampler
from train.losses import multi_positive_loss, side_by_side, switch_loss
from train.model_setup import lr_factor
from train.views import EmbeddingBank, NeighbourTable, audio_views, augment_window, knn

TINY = PRESETS["tiny"]


def reference_loss(v_views, a_views, z_v, z_a, cfg, threshold, temperature_mask):
    """Plain-loop transcription of METHOD.md: for every view pair, InfoNCE over the batch with
    s_L = sum(w S) / sum(w), w = sigmoid((S - 0.65) / 0.03), S = cos(a_j, v_i[:, cell]), and with
    s_A = z_v . z_a; summed over pairs: (the s_L terms, the s_A terms)."""
    def nce(score):   # score(i, j), rows are images
        b = len(v_views[0])
        total = 0.0
        for i in range(b):
            logits = [score(i, j) / cfg.temperature for j in range(b)]
            total += -logits[i] + math.log(sum(math.exp(x) for x in logits))
        i2a = total / b
        if cfg.direction == "image_to_audio":
            return i2a
        total = 0.0
        for j in range(b):
            logits = [score(i, j) / cfg.temperature for i in range(b)]
            total += -logits[j] + math.log(sum(math.exp(x) for x in logits))
        return (i2a + total / b) / 2

    def s_L(v, a):   # v (C, h, w), a (C,)
        num = den = 0.0
        for y in range(v.shape[1]):
            for x in range(v.shape[2]):
                cell = v[:, y, x]
                s = float(cell @ a) / (float(cell.norm()) * float(a.norm()))
                w = 1 / (1 + math.exp(-(s - threshold) / temperature_mask))
                num, den = num + w * s, den + w
        return num / den

    loss_L = loss_A = 0.0
    for p, v in enumerate(v_views):
        for q, a in enumerate(a_views):
            loss_L += nce(lambda i, j: s_L(v[i], a[j]))
            loss_A += nce(lambda i, j: float(z_v[p][i] @ z_a[q][j]))
    return loss_L, loss_A


@pytest.mark.parametrize("direction", ["image_to_audio", "symmetric"])
def test_multi_positive_loss_equals_a_plain_loop_transcription(direction):
    torch.manual_seed(0)
    b, c = 4, 6
    cfg = dataclasses.replace(TINY, direction=direction)
    v = torch.randn(2 * b, c, 3, 3)                     # 2 image views
    a = torch.randn(3 * b, c)                           # 3 audio views
    z_v = torch.nn.functional.normalize(torch.randn(2 * b, 5), dim=-1)
    z_a = torch.nn.functional.normalize(torch.randn(3 * b, 5), dim=-1)
    # a looser soft mask than the model's, so that the random cosines give mixed weights
    model_cfg = dataclasses.replace(cfg.model, mask_threshold=0.1, mask_temperature=0.3)
    loss, parts = multi_positive_loss(v, a, z_v, z_a, b, model_cfg, cfg)
    sum_L, sum_A = reference_loss(v.split(b), a.split(b), z_v.split(b), z_a.split(b), cfg, 0.1, 0.3)
    assert loss.item() == pytest.approx(sum_L + sum_A, rel=1e-5)
    # the logged parts are the mean term of each kind over the 2 x 3 view pairs
    assert parts["loss_L"].item() == pytest.approx(sum_L / 6, rel=1e-5)
    assert parts["loss_A"].item() == pytest.approx(sum_A / 6, rel=1e-5)


def test_aligned_features_give_a_lower_loss_than_shuffled_ones():
    torch.manual_seed(1)
    b, c = 8, 16
    audio = torch.randn(b, c)
    visual = torch.randn(b, c, 4, 4) * 0.1
    visual[:, :, 1, 2] = audio * 5                      # each image has its own sound in one cell
    emb = torch.nn.functional.normalize(torch.randn(b, 8), dim=-1)
    aligned, _ = multi_positive_loss(visual, audio, emb, emb, b, TINY.model, TINY)
    perm = torch.roll(torch.arange(b), 1)
    shuffled, _ = multi_positive_loss(visual, audio[perm], emb, emb[perm], b, TINY.model, TINY)
    assert aligned.item() < shuffled.item() - 1.0


def test_localization_only_loss_has_no_alignment_terms():
    cfg = ablation(TINY, "single_positive")
    v, a = torch.randn(4, 8, 2, 2), torch.randn(4, 8)
    loss, parts = multi_positive_loss(v, a, None, None, 4, cfg.model, cfg)
    assert parts["loss_A"].item() == 0 and loss.item() == pytest.approx(parts["loss_L"].item())


def test_side_by_side_puts_each_frame_beside_the_previous_one_on_a_random_side():
    images = torch.arange(4, dtype=torch.float32)[:, None, None, None].expand(4, 3, 8, 8).contiguous()
    composites, own_left = side_by_side(images, torch.Generator().manual_seed(0))
    assert composites.shape == (4, 3, 8, 8) and own_left.any() and not own_left.all()
    for i in range(4):
        own, partner = composites[i, :, :, :4], composites[i, :, :, 4:]
        if not own_left[i]:
            own, partner = partner, own
        assert torch.all(own == i) and torch.all(partner == (i - 1) % 4)


def test_switch_loss_is_low_when_each_sound_lights_its_own_half_and_high_when_swapped(tiny_config):
    rng = torch.Generator().manual_seed(0)
    audio = torch.nn.functional.normalize(torch.randn(6, 16, generator=rng), dim=1)
    own_left = torch.tensor([True, False, True, True, False, False])
    left = torch.where(own_left[:, None], audio, audio.roll(1, dims=0))              # whose frame is left
    right = torch.where(own_left[:, None], audio.roll(1, dims=0), audio)
    maps = torch.cat([left[:, :, None, None].expand(6, 16, 4, 2), right[:, :, None, None].expand(6, 16, 4, 2)], -1)
    good = switch_loss(maps, audio, own_left, tiny_config, 0.07)
    bad = switch_loss(maps, audio, ~own_left, tiny_config, 0.07)
    assert good < 0.1 < math.log(2) < bad


def test_knn_matches_brute_force_and_excludes_self():
    rng = np.random.default_rng(0)
    feats = rng.standard_normal((200, 12)).astype(np.float32)
    nn = knn(feats, 7)
    unit = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    sims = unit @ unit.T
    np.fill_diagonal(sims, -np.inf)
    brute = np.argsort(-sims, axis=1)[:, :7]
    assert nn.shape == (200, 7)
    assert not (nn == np.arange(200)[:, None]).any()
    np.testing.assert_array_equal(np.sort(nn, axis=1), np.sort(brute, axis=1))


def test_knn_with_duplicate_rows_still_excludes_self():
    feats = np.repeat(np.eye(3, dtype=np.float32), 4, axis=0)      # 3 groups of 4 identical rows
    nn = knn(feats, 3)
    assert not (nn == np.arange(12)[:, None]).any()
    assert (nn // 4 == np.arange(12)[:, None] // 4).all()           # the other members of its group


def test_embedding_bank_fills_then_gives_kNN_tables():
    bank = EmbeddingBank(6, 4)
    feats = torch.nn.functional.normalize(torch.randn(6, 4), dim=-1)
    bank.update(torch.tensor([0, 1, 2]), feats[:3], feats[:3].flip(0))
    assert not bank.complete
    bank.update(torch.tensor([3, 4, 5]), feats[3:], feats[3:].flip(0))
    assert bank.complete
    table = bank.table(2)
    np.testing.assert_array_equal(table.image, knn(feats.half().float().numpy(), 2))


def test_batch_sampler_is_deterministic_resumable_and_splits_ranks():
    table = NeighbourTable(np.tile(np.arange(10), (10, 1))[:, 1:4], np.tile(np.arange(10), (10, 1))[:, 4:7])
    sampler = TrainBatchSampler(10, 2, seed=3)
    sampler.neighbours = table
    sampler.start(1, 0)
    full = list(sampler)
    sampler.start(1, 2)
    assert list(sampler) == full[2:]
    sampler.start(1, 0)
    assert list(sampler) == full
    sampler.start(2, 0)
    assert list(sampler) != full
    items = [item for batch in full for item in batch]
    assert sorted(i for i, *_ in items) == list(range(10))
    assert all(table.image[i].tolist().count(j) and table.audio[i].tolist().count(k) for i, j, k, _ in items)
    ranks = [TrainBatchSampler(10, 2, seed=3, rank=r, world_size=2) for r in (0, 1)]
    seen = [[item for batch in r for item in batch] for r in ranks]
    assert not {i for i, *_ in seen[0]} & {i for i, *_ in seen[1]}
    by_index = {item[0]: item for item in items}              # same seed per sample whatever the world size
    ranks[0].start(1, 0)
    assert all(by_index[i][3] == s for batch in ranks[0] for i, _, _, s in batch)


def test_audio_views_original_is_the_centred_window_and_augmented_is_shifted():
    cfg = TINY.model.audio
    wav = torch.randn(3 * cfg.sample_rate)
    aug = AudioAugConfig(max_shift_s=0.5)
    views = audio_views(wav, ["original", "augmented"], cfg, aug, torch.Generator().manual_seed(3))
    shift = 0.5 * (2 * float(torch.rand((), generator=torch.Generator().manual_seed(3))) - 1)
    np.testing.assert_array_equal(views[0], audio_windows(wav, [1.5], cfg)[0])
    np.testing.assert_array_equal(views[1], audio_windows(wav, [1.5 + shift], cfg)[0])


def dominant_hz(x: torch.Tensor, sample_rate: int) -> float:
    spectrum = torch.fft.rfft(x).abs()
    return float(torch.fft.rfftfreq(x.shape[-1], 1 / sample_rate)[spectrum.argmax()])


def test_audio_augmentations_change_what_they_claim():
    cfg = AudioConfig(sample_rate=16000, window_s=1.0, nperseg=256, noverlap=96)
    t = torch.arange(3 * 16000) / 16000
    tone = 0.5 * torch.sin(2 * torch.pi * 1000 * t)
    g = lambda seed: torch.Generator().manual_seed(seed)
    off = AudioAugConfig(max_shift_s=0.0)
    np.testing.assert_allclose(augment_window(tone, 1.5, cfg, off, g(0)), audio_windows(tone, [1.5], cfg)[0],
                               atol=1e-6)
    pitched = [dominant_hz(augment_window(tone, 1.5, cfg, dataclasses.replace(off, pitch_semitones=2.0), g(s)),
                           16000) for s in range(8)]
    assert all(1000 * 2 ** (-2 / 12) - 2 <= hz <= 1000 * 2 ** (2 / 12) + 2 for hz in pitched)
    assert max(pitched) - min(pitched) > 20                             # the pitch really moves
    gains = [float(augment_window(tone, 1.5, cfg, dataclasses.replace(off, gain_db=6.0), g(s)).abs().max())
             for s in range(8)]
    assert 0.5 * 10 ** (-6 / 20) - 1e-3 <= min(gains) < max(gains) <= 0.5 * 10 ** (6 / 20) + 1e-3
    low = augment_window(tone, 1.5, cfg, dataclasses.replace(off, bandlimit_p=1.0), g(1))
    assert float(low.abs().max()) < 0.51 and dominant_hz(low, 16000) == 1000.0   # 1 kHz lies in every band
    hiss = 0.5 * torch.sin(2 * torch.pi * 7500 * t)                               # above every low-pass cut
    assert float(augment_window(hiss, 1.5, cfg, dataclasses.replace(off, bandlimit_p=1.0), g(1)).abs().max()) < 0.05
    noisy = augment_window(tone, 1.5, cfg, dataclasses.replace(off, noise_p=1.0, noise_snr_db=(10.0, 10.0)), g(2))
    residual = noisy - audio_windows(tone, [1.5], cfg)[0]
    assert float(residual.square().mean() / audio_windows(tone, [1.5], cfg)[0].square().mean()) == \
        pytest.approx(0.1, rel=0.05)                                   # 10 dB below the signal
    other = 0.5 * torch.sin(2 * torch.pi * 300 * t)
    mixed = augment_window(tone, 1.5, cfg, dataclasses.replace(off, mix_p=1.0, mix_db=(-12.0, -12.0)), g(3), other)
    spectrum = torch.fft.rfft(mixed).abs()
    hz = torch.fft.rfftfreq(mixed.shape[-1], 1 / 16000)
    ratio = float(spectrum[(hz - 300).abs().argmin()] / spectrum[(hz - 1000).abs().argmin()])
    assert ratio == pytest.approx(10 ** (-12 / 20), rel=0.05)         # the second source, 12 dB quieter
    np.testing.assert_array_equal(augment_window(tone, 1.5, cfg, dataclasses.replace(off, noise_p=1.0), g(5)),
                                  augment_window(tone, 1.5, cfg, dataclasses.replace(off, noise_p=1.0), g(5)))


def test_lr_warms_up_then_decays_to_the_final_ratio():
    cfg = dataclasses.replace(TINY, steps=100, warmup_steps=10, final_lr_ratio=0.1)
    assert lr_factor(0, cfg) == pytest.approx(0.1) and lr_factor(9, cfg) == pytest.approx(1.0)
    assert lr_factor(10, cfg) == pytest.approx(1.0) and lr_factor(100, cfg) == pytest.approx(0.1)
    assert lr_factor(55, cfg) == pytest.approx(0.55)


def test_overrides_and_json_configs(tmp_path):
    cfg = apply_overrides(PRESETS["cpu"], ["lr=1e-3", "model.image_size=96", "image_aug.blur_p=0",
                                           'image_views=["original"]', "train_ids=ids.txt"])
    assert (cfg.lr, cfg.model.image_size, cfg.image_aug.blur_p, cfg.image_views) == (1e-3, 96, 0, ("original",))
    assert cfg.train_ids == "ids.txt"
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"preset": "tiny", "steps": 9, "model": {"audio": {"window_s": 0.25}}}))
    cfg = load_config(str(path), ["seed=4"])
    assert (cfg.steps, cfg.model.audio.window_s, cfg.seed, cfg.batch_size) == (9, 0.25, 4, TINY.batch_size)
    with pytest.raises(AVDemoError, match="unknown key"):
        apply_overrides(TINY, ["learning_rate=1"])
    with pytest.raises(AVDemoError, match="image_views"):
        apply_overrides(TINY, ['image_views=["rotated"]'])


def test_ablation_presets_switch_the_documented_parts():
    for name in ABLATIONS:
        assert PRESETS[name].model == PRESETS["cpu"].model
    sp, aug, nn, al, full = (PRESETS[n] for n in ("single_positive", "aug_views", "neighbours", "alignment", "full"))
    assert sp.image_views == ("original",) and not sp.loss_alignment and not sp.model_config.alignment_head
    assert aug.audio_views == ("original", "augmented") and not aug.uses_neighbours
    assert nn.uses_neighbours and not nn.loss_alignment
    assert al.image_views == ("original",) and al.loss_alignment
    assert dataclasses.replace(full, out_dir="x") == dataclasses.replace(PRESETS["cpu"], out_dir="x")


def test_default_preset_is_the_shipped_models_recorded_training_config():
    """Every setting of the card's ``train_config`` but where that run lived (data root, output paths)."""
    card = json.loads((Path(__file__).resolve().parents[1] / "checkpoints" / "default.json").read_text())
    places = {"data_root": None, "out_dir": "x", "final_path": None}
    shipped = dataclasses.replace(TrainConfig.from_dict(card["provenance"]["train_config"]), **places)
    assert dataclasses.replace(PRESETS["default"], **places) == shipped
    assert PRESETS["default"] == dataclasses.replace(ablation(PRESETS["lite"], "lite_finetuned"), steps=1250,
                                                     seed=1, val_split=None, out_dir="runs/default")


def test_shuffled_audio_control_gives_every_sounding_image_another_clips_audio():
    from avdemo.benchmarks import BenchmarkSample
    from avdemo.evaluate import shuffled_audio

    samples = [BenchmarkSample(f"s{i}", Path(f"f{i}.jpg"), Path(f"a{i}.wav"), "c", np.zeros((2, 2)), [[0, 0, 1, 1]],
                               True, "sounding") for i in range(7)]
    samples.append(BenchmarkSample("neg", Path("f.jpg"), Path("a.wav"), "", None, [], False, "silence"))
    control = shuffled_audio(samples)
    assert [s.id for s in control] == [f"s{i}" for i in range(7)]
    assert sorted(s.audio_path.name for s in control) == [f"a{i}.wav" for i in range(7)]
    assert all(s.audio_path.name != f"a{s.id[1:]}.wav" for s in control)


def test_extra_negatives_join_every_images_candidates_and_are_never_positives():
    from train.losses import info_nce

    torch.manual_seed(0)
    b, e, t = 5, 3, 0.07
    scores = torch.rand(b, b + e) * 2 - 1
    rows = [-scores[i, i] / t + torch.logsumexp(scores[i] / t, 0) for i in range(b)]
    cols = [-scores[j, j] / t + torch.logsumexp(scores[:, j] / t, 0) for j in range(b)]
    assert float(info_nce(scores, t, "image_to_audio")) == pytest.approx(float(sum(rows) / b), rel=1e-5)
    assert float(info_nce(scores, t, "symmetric")) == pytest.approx(float((sum(rows) + sum(cols)) / (2 * b)), rel=1e-5)
    # a negative that outscores the positives raises the loss; one that scores far below changes nothing
    base = info_nce(scores[:, :b], t, "image_to_audio")
    assert info_nce(torch.cat([scores[:, :b], torch.ones(b, 1)], 1), t, "image_to_audio") > base + 1
    assert float(info_nce(torch.cat([scores[:, :b], -torch.ones(b, 1) * 50], 1), t, "image_to_audio")) == \
        pytest.approx(float(base), rel=1e-6)


def test_negative_windows_are_half_silence_half_noise_and_seeded():
    from train.views import negative_windows

    windows = negative_windows(6, 16000, torch.Generator().manual_seed(1))
    levels = windows.square().mean(1).sqrt()
    assert windows.shape == (6, 16000) and torch.all(levels[:3] < 10 ** (-60 / 20) * 1.01)
    assert torch.all(levels[3:] > 10 ** (-45 / 20) * 0.99) and torch.all(levels[3:] < 10 ** (-10 / 20) * 1.01)
    assert torch.equal(windows, negative_windows(6, 16000, torch.Generator().manual_seed(1)))


def test_metric_log_without_tensorboard_writes_the_csv_and_says_how_to_get_events(tmp_path, monkeypatch, capsys):
    import sys

    from train.metric_log import MetricLog

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)       # as if it were not installed
    log = MetricLog(tmp_path, resume_step=None)
    log.log(10, {"loss": 1.5})
    log.close()
    assert (tmp_path / "metrics.csv").read_text() == "step,tag,value\n10,loss,1.5\n"
    assert not (tmp_path / "tb").exists()
    assert "requirements-train.txt" in capsys.readouterr().err
