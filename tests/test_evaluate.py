"""The evaluator: run_model on a tiny dataset, the report's numbers, the CLI and its missing-file error."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_benchmarks import write_vggss_layout

from avdemo import metrics as M
import torch

from avdemo.audio import REFERENCE_CENTRE_S, clip_window, to_model_rate
from avdemo.benchmarks import BenchmarkSample, load_vggss, read_frame, read_wav
from avdemo.checkpoints import load_model, save_model
from avdemo.errors import AVDemoError
from avdemo.data.splits import build_split
from avdemo.evaluate import load_benchmark, localization_by_media, main, run_model, score
from avdemo.model import Localization

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def dataset(tmp_path):
    write_vggss_layout(tmp_path / "data")
    return tmp_path / "data"


@pytest.fixture
def checkpoint(tmp_path, tiny_model):
    return save_model(tiny_model, tmp_path / "tiny.safetensors", card={"data": "random init"})


def test_run_model_batches_mixed_frame_sizes_and_keeps_sample_order(dataset, tiny_model):
    samples = load_vggss(dataset, negatives=dataset / "ours_test_plus_silent.csv")
    preds = run_model(tiny_model, samples, batch_size=4, progress=False)
    assert preds.maps.shape == (6, 224, 224) and preds.maps_lowres.shape == (6, 4, 4)
    assert preds.image_emb.shape == (6, 512) and preds.s_A.shape == (6,)
    cfg = tiny_model.cfg.audio
    for i in (2, 3, 5):      # 80x60 and 64x64 frames in one batch; a negative pair
        window = clip_window(to_model_rate(*read_wav(samples[i].audio_path), cfg), cfg, samples[i].audio_centre_s)
        one = tiny_model.localize(read_frame(samples[i].image_path), window[None], output_size=(224, 224))
        np.testing.assert_allclose(preds.maps[i], one.maps[0], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(preds.s_A[i], one.s_A[0], rtol=1e-4, atol=1e-5)


def test_the_evaluator_hears_our_scenes_as_training_does_and_vggss_as_the_reference(tmp_path, dataset, tiny_model):
    from train.config import AudioAugConfig
    from train.views import audio_views

    folder = build_split("test", 3, tmp_path / "ours", workers=1, progress=False)
    samples = load_benchmark("embedded", folder)
    assert {s.audio_centre_s for s in samples} == {None}
    assert {s.audio_centre_s for s in load_vggss(dataset)} == {REFERENCE_CENTRE_S}
    preds = run_model(tiny_model, samples[:3], progress=False)
    cfg = tiny_model.cfg.audio
    for i in range(3):
        wav = to_model_rate(*read_wav(samples[i].audio_path), cfg)
        heard = audio_views(wav, ["original"], cfg, AudioAugConfig(), torch.Generator())     # training's window
        frame = read_frame(samples[i].image_path)
        np.testing.assert_allclose(preds.s_L[i], tiny_model.localize(frame, heard).s_L[0], rtol=1e-4, atol=1e-5)
        reference = clip_window(wav, cfg, REFERENCE_CENTRE_S)[None]                          # 2 s of 3: not it
        assert abs(preds.s_L[i] - tiny_model.localize(frame, reference).s_L[0]) > 1e-4


def test_score_reports_each_block_and_per_sample_values(dataset, tiny_model):
    samples = load_vggss(dataset, negatives=dataset / "ours_test_plus_silent.csv")
    preds = run_model(tiny_model, samples, progress=False)
    report = score(preds, samples, confidence="peak")
    gt = np.stack([s.gt_map for s in samples[:4]])
    cious = M.ciou(preds.maps[:4], gt)
    assert report["localization"]["ciou_success"] == M.success_rate(cious)
    assert report["localization"]["pointing_game"] == 100 * M.pointing_game(preds.maps[:4], gt).mean()
    assert set(report["retrieval"]) == {"instance", "class"}
    assert report["per_sample"]["ciou"][:4] == pytest.approx(cious.tolist())
    assert report["per_sample"]["ciou"][4:] == [None, None]
    assert report["per_sample"]["confidence"] == pytest.approx(preds.maps.reshape(6, -1).max(1).tolist())
    fp = report["false_positives"]
    assert {k: v["n"] for k, v in fp["by_kind"].items()} == {"offscreen": 1, "silence": 1}
    assert fp["roc_auc"] == M.roc_auc(M.map_confidence(preds.maps, "peak"), [s.sounding for s in samples])
    assert "false_positives" not in score(run_model(tiny_model, samples[:4], progress=False), samples[:4])


def test_a_ciou_of_exactly_the_threshold_is_a_success_and_a_true_positive_in_the_report():
    ramp = np.arange(224 * 224, dtype=np.float32).reshape(224, 224)   # the median rule keeps 25,087 pixels
    gt = (ramp >= 2).astype(np.float32)                               # 50,174 pixels holding all of them
    samples = [BenchmarkSample("a", Path("a.jpg"), Path("a.wav"), "dog", gt, [], True, "sounding"),
               BenchmarkSample("b", Path("b.jpg"), Path("b.wav"), "", None, [], False, "silence")]
    emb = np.eye(2, 8, dtype=np.float32)
    preds = Localization(maps=np.stack([ramp, ramp]), maps_lowres=np.zeros((2, 4, 4), np.float32),
                         s_L=np.zeros(2, np.float32), s_A=np.array([0.9, 0.1], np.float32), image_emb=emb,
                         audio_emb=emb)
    report = score(preds, samples, confidence="s_A")
    assert report["per_sample"]["ciou"] == [0.5, None]                # 25,087 / 50,174
    assert report["localization"]["ciou_success"] == 100.0
    fp = report["false_positives"]
    assert fp["precision_sounding"] == 100.0 and fp["max_F1"] == 100.0 and fp["best_threshold"] == pytest.approx(0.9)


def test_cli_writes_a_report_that_matches_the_metrics_recomputed(dataset, checkpoint, tmp_path, capsys):
    out = tmp_path / "reports" / "embedded.json"
    assert main(["--checkpoint", str(checkpoint), "--benchmark", "embedded", "--root", str(dataset),
                 "--out", str(out), "--batch-size", "4"]) == 0
    printed = capsys.readouterr().out
    assert "cIoU" in printed and "R@1" in printed and "AP" in printed and str(out) in printed
    report = json.loads(out.read_text())
    assert report["n_sounding"] == 4 and report["n_non_sounding"] == 2
    assert report["model_card"]["data"] == "random init"
    assert [p.name for p in out.parent.iterdir()] == ["embedded.json"]          # no temp files left

    samples = load_vggss(dataset, negatives=dataset / "ours_test_plus_silent.csv")
    preds = run_model(load_model(checkpoint), samples, progress=False)
    gt = np.stack([s.gt_map for s in samples[:4]])
    cious, adaptive = M.ciou(preds.maps[:4], gt), M.adaptive_ciou(preds.maps[:4], gt)
    loc = report["localization"]
    assert loc["ciou_success"] == pytest.approx(M.success_rate(cious))
    assert loc["ciou_auc"] == pytest.approx(M.ciou_auc(cious))
    assert loc["adaptive_ciou_success"] == pytest.approx(M.success_rate(adaptive))
    assert loc["mean_ciou"] == pytest.approx(cious.mean())
    labels = np.array([s.class_name for s in samples[:4]])
    assert report["retrieval"]["class"]["audio_to_image"] == pytest.approx(
        M.retrieval_recall(preds.audio_emb[:4], preds.image_emb[:4], labels, labels))
    assert report["retrieval"]["instance"]["image_to_audio"] == pytest.approx(
        M.retrieval_recall(preds.image_emb[:4], preds.audio_emb[:4], np.arange(4), np.arange(4)))
    conf = M.map_confidence(preds.maps)
    expected = M.false_positive_metrics(conf, [s.sounding for s in samples], np.r_[cious, np.nan, np.nan])
    assert report["false_positives"]["AP"] == pytest.approx(expected["AP"])
    assert report["false_positives"]["max_F1"] == pytest.approx(expected["max_F1"])


@pytest.mark.parametrize("card, message", [("{oops", "the model card is not valid JSON"),
                                           ('{"notes": 1}', 'the model card has no "config" object')])
def test_cli_names_a_bad_model_card_without_a_traceback(dataset, checkpoint, tmp_path, capsys, card, message):
    checkpoint.with_suffix(".json").write_text(card)
    assert main(["--checkpoint", str(checkpoint), "--benchmark", "embedded", "--root", str(dataset),
                 "--out", str(tmp_path / "r.json")]) == 2
    assert capsys.readouterr().err.startswith(f"error: tiny.json: {message}")


def test_cli_names_the_first_missing_file_and_exits_nonzero(dataset, checkpoint, tmp_path):
    (dataset / "audio" / "ccccccccccc_000030.wav").unlink()
    out = tmp_path / "report.json"
    run = subprocess.run([sys.executable, "-m", "avdemo.evaluate", "--checkpoint", str(checkpoint),
                          "--benchmark", "vggss", "--root", str(dataset), "--out", str(out)],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode != 0
    assert "error: 1 of 8 benchmark files are missing; the first is" in run.stderr
    assert "ccccccccccc_000030.wav" in run.stderr and "Traceback" not in run.stderr
    assert not out.exists()


def test_localization_by_media_groups_sounding_samples_by_what_training_saw(tmp_path):
    (tmp_path / "train.json").write_text(json.dumps([
        {"file": "t0", "picture_media": "pictures/dog", "audio_media": "sounds/dog"},
        {"file": "t1", "picture_media": "pictures/cat", "audio_media": "sounds/cat_b"}]))
    new_style = "pictures/twemoji_bear"                        # a held-out style of the pack (Twemoji)
    media = [("pictures/dog", "sounds/dog"), ("pictures/dog", "sounds/dog_2"), ("pictures/cow", "sounds/cow"),
             ("pictures/cow", "sounds/cow"), ("pictures/cat", "sounds/dog"), (new_style, "sounds/dog"), (None, None)]
    samples = [BenchmarkSample(id=f"s{i}", image_path=Path("x.jpg"), audio_path=Path("x.wav"), class_name="c",
                               gt_map=None, boxes=[], sounding=pic is not None,
                               kind="sounding" if pic else "silence",
                               meta={"picture_media": pic, "audio_media": aud})
               for i, (pic, aud) in enumerate(media)]
    report = {"ciou_threshold": 0.5, "per_sample": {"ciou": [0.9, 0.2, 0.6, 0.1, 0.7, 0.5, None],
                                                    "pointing_hit": [True, False, True, False, True, True, None]}}
    groups = localization_by_media(report, samples, tmp_path / "train.json")
    assert groups == {
        "picture held-out, audio held-out": {"n": 2, "ciou_success": 50.0, "pointing_game": 50.0},
        "picture new style, audio seen": {"n": 1, "ciou_success": 100.0, "pointing_game": 100.0},
        "picture not seen (held-out or new style), any audio": {"n": 3, "ciou_success": 2 / 3 * 100,
                                                                "pointing_game": 2 / 3 * 100},
        "picture seen, audio held-out": {"n": 1, "ciou_success": 0.0, "pointing_game": 0.0},
        "picture seen, audio seen": {"n": 2, "ciou_success": 100.0, "pointing_game": 100.0}}
    samples[0].meta.clear()
    with pytest.raises(AVDemoError, match="s0 names no picture_media"):
        localization_by_media(report, samples, tmp_path / "train.json")


def test_localization_by_media_puts_the_blind_baselines_and_oracle_of_the_same_scenes_beside_each_group(tmp_path):
    """Two scenes, each with the sounding object over the centre and a larger silent one on the right: the
    centre prior hits both (as "all objects" does), "largest object" misses; the oracle box succeeds."""
    (tmp_path / "train.json").write_text(json.dumps([{"file": "t0", "picture_media": "p0", "audio_media": "a0"}]))
    left, right = [0.0, 0.0, 0.52, 1.0], [0.55, 0.1, 1.0, 0.9]      # the sounding box holds the centre
    objects = [{"category": "c", "picture": "p1", "bbox": left, "area": 0.12, "sounding": True},
               {"category": "d", "picture": "p2", "bbox": right, "area": 0.36, "sounding": False}]
    samples = [BenchmarkSample(id=f"s{i}", image_path=Path("x.jpg"), audio_path=Path("x.wav"), class_name="c",
                               gt_map=None, boxes=[left], sounding=True, kind="sounding",
                               meta={"picture_media": "p1", "audio_media": "a1", "objects": objects,
                                     "is_largest": False, "is_most_central": False}) for i in range(2)]
    report = {"ciou_threshold": 0.5, "per_sample": {"ciou": [0.6, 0.1], "pointing_hit": [True, False]}}
    group = localization_by_media(report, samples, tmp_path / "train.json")["picture held-out, audio held-out"]
    assert group["pointing_game"] == 50.0 and group["ciou_success"] == 50.0
    assert group["blind_method"] == "centre prior" and group["blind_pointing_game"] == 100.0
    assert group["oracle_ciou_success"] == 100.0
