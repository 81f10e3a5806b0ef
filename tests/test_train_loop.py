"""Training runs on a tiny dataset written here: determinism, resume, SIGKILL, DDP with gloo, logging,
the command line, ablations and plots. Tiny preset (64 px, 0.5 s of 8 kHz audio), a few steps."""
from __future__ import annotations

import csv
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from avdemo.cache import PAUSE_BEFORE_RENAME
from avdemo.checkpoints import load_model
from avdemo.errors import AVDemoError
from avdemo.evaluate import evaluate, load_benchmark
from train.__main__ import main as train_main
from train.ablate import main as ablate_main
from train.config import PRESETS
from train.data import ViewDataset
from train.loop import Trainer, train
from train.plot import main as plot_main
from train.validation import flatten
from train.views import cached_side

ROOT = Path(__file__).resolve().parents[1]


def one_thread_env(tmp_path: Path) -> dict[str, str]:
    """A training subprocess's environment: one thread, its temporary files under the test's folder (torchrun's
    log folder, and torch's own temporary folder, which a killed process cannot remove)."""
    temp = tmp_path / "tmp"
    temp.mkdir(exist_ok=True)
    return {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": str(temp)}


COLOURS = [(220, 40, 40), (40, 200, 40), (40, 60, 230)]


def write_split(root: Path, n: int, seed: int, negatives: int = 0) -> None:
    """n scenes in the VGG-SS layout: a coloured square (class = colour) on noise, heard as a tone whose
    pitch is the class; boxes and classes in vggss.json; optional non-sounding pairs."""
    rng = np.random.default_rng(seed)
    (root / "frames").mkdir(parents=True)
    (root / "audio").mkdir()
    entries = []
    for i in range(n):
        c = i % len(COLOURS)
        img = rng.integers(0, 60, (72, 72, 3)).astype(np.uint8)
        x, y = (int(v) for v in rng.integers(0, 36, 2))
        img[y:y + 36, x:x + 36] = COLOURS[c]
        Image.fromarray(img).save(root / "frames" / f"s{i:03d}.jpg", quality=90)
        t = np.arange(16000) / 16000
        wav = 0.5 * np.sin(2 * np.pi * (300 + 500 * c) * t) + 0.05 * rng.standard_normal(16000)
        sf.write(root / "audio" / f"s{i:03d}.wav", wav.astype(np.float32), 16000, subtype="PCM_16")
        entries.append({"file": f"s{i:03d}", "class": f"class {c}",
                        "bbox": [[x / 72, y / 72, (x + 36) / 72, (y + 36) / 72]]})
    (root / "vggss.json").write_text(json.dumps(entries))
    if negatives:
        rows = [f"s{i:03d},s{(i + 1) % n:03d},non-sounding" for i in range(negatives)]
        (root / "test_plus_silent.csv").write_text("video,audio,label\n" + "\n".join(rows) + "\n")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_split(root / "train", 16, 0)
    write_split(root / "val", 9, 1)
    write_split(root / "test", 9, 2, negatives=3)
    return root


@pytest.fixture(autouse=True)
def _one_thread():
    """One thread per process: on a shared 2-core machine, OpenMP threads that spin-wait for a busy
    core make two threads several times slower than one."""
    torch.set_num_threads(1)


def tiny(data: Path, out: Path, **changes):
    return dataclasses.replace(PRESETS["tiny"], data_root=str(data), out_dir=str(out), **changes)


def weights(out: Path) -> dict[str, torch.Tensor]:
    return torch.load(out / "latest.pt", map_location="cpu", weights_only=True)["model"]


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


def tiny_cli(data: Path, out: Path, *extra: str) -> list[str]:
    return ["-m", "train", "--config", "tiny", "--override", f"data_root={data}", f"out_dir={out}", *extra]


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory) -> Path:
    """An uninterrupted 4-step run: 2 batches per epoch; kNN tables from step 2 on (refreshed at 2 and 4),
    so steps 3 and 4 train on all 3 x 3 views; validation at 2 and 4."""
    out = tmp_path_factory.mktemp("reference")
    torch.set_num_threads(1)              # as every run it is compared with (before function fixtures)
    train(tiny(data, out), command="test")
    return out


def test_run_writes_checkpoints_logs_and_a_card_with_test_metrics(reference, data):
    card = json.loads((reference / "model.json").read_text())
    prov = card["provenance"]
    assert prov["steps"] == 4 and prov["seed"] == 0 and prov["labels_used_for_training"] is False
    assert prov["data"]["train_clips"] == 16
    assert prov["selected_step"] in (2, 4) and card["metrics"]["val"]["localization"]["n"] == 9
    test = card["metrics"]["test"]
    assert test["n_sounding"] == 9 and test["n_non_sounding"] == 3 and "false_positives" in test
    assert card["metrics"]["test_shuffled_audio"]["localization"]["n"] == 9
    assert torch.load(reference / "latest.pt", weights_only=True)["neighbours"].shape == (2, 16, 3)
    # the card's test metrics are those of the saved (float16) weights
    model = load_model(reference / "model.safetensors")
    report, _ = evaluate(model, load_benchmark("embedded", data / "test"), progress=False)
    assert flatten(report)["localization.ciou_auc"] == pytest.approx(test["localization"]["ciou_auc"])
    best = load_model(reference / "best.safetensors").card                # the selected step's weights
    assert best["provenance"]["steps"] == prov["selected_step"] and best["metrics"]["val"] == card["metrics"]["val"]
    with (reference / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    tags = {r["tag"] for r in rows}
    assert {"train/loss", "train/loss_L", "train/loss_A", "speed/samples_per_s", "speed/data_wait",
            "val/localization.pointing_game", "test/localization.ciou_success"} <= tags
    assert [int(r["step"]) for r in rows if r["tag"] == "train/loss"] == [1, 2, 3, 4]
    assert list((reference / "tb").glob("events.out.tfevents.*"))
    assert not list(reference.glob(".*.tmp"))


def test_a_second_phase_starts_from_the_given_checkpoint_and_records_it(reference, data, tmp_path):
    first = reference / "model.safetensors"
    trainer = Trainer(tiny(data, tmp_path / "phase2", init_from=str(first), steps=2))
    start = load_model(first).state_dict()
    assert all(torch.equal(v.float(), start[k].float()) for k, v in trainer.model.state_dict().items())
    trainer.run()
    card = json.loads((tmp_path / "phase2" / "model.json").read_text())
    assert card["provenance"]["init_from"]["path"] == str(first)
    assert card["provenance"]["init_from"]["provenance"]["steps"] == 4 and card["provenance"]["steps"] == 2
    moved = load_model(tmp_path / "phase2" / "model.safetensors").state_dict()
    assert any(not torch.equal(moved[k], start[k]) for k in start if start[k].is_floating_point())
    with pytest.raises(AVDemoError, match="model config differs"):
        Trainer(tiny(data, tmp_path / "other", init_from=str(first),
                     model=dataclasses.replace(PRESETS["tiny"].model, image_size=96)))


def test_the_switch_loss_trains_on_side_by_side_frames(data, tmp_path):
    plain = Trainer(tiny(data, tmp_path / "plain", steps=1, test_split=None, val_split=None))
    switched = Trainer(tiny(data, tmp_path / "switch", steps=1, test_split=None, val_split=None, switch_weight=2.0))
    frames, wavs, indices = next(iter(plain.loader))
    out_plain = plain.train_step(frames, wavs, indices)
    out = switched.train_step(frames, wavs, indices)
    assert 0 < out["loss_switch"] < 5 and "loss_switch" not in out_plain
    # the composites join the batch norms' statistics of a trunk that learns them: close, not equal
    assert out["loss"].item() == pytest.approx(out_plain["loss"].item() + 2.0 * out["loss_switch"].item(), rel=1e-2)


def test_same_seed_gives_identical_weights_across_stop_resume_and_worker_counts(reference, data, tmp_path):
    """A second run with the same seed, stopped after step 3 (after the first kNN refresh), its folder
    moved, and resumed there with a data-loader worker, ends with exactly the reference's weights."""
    first, moved = tmp_path / "first", tmp_path / "moved"
    assert train(tiny(data, first), stop_after=3, command="test") is None
    assert torch.load(first / "latest.pt", weights_only=True)["step"] == 3
    shutil.move(first, moved)
    train(tiny(data, moved, num_workers=1), resume=True, command="test --resume")
    assert_same_weights(weights(reference), weights(moved))
    card = json.loads((moved / "model.json").read_text())
    assert card["provenance"]["commands"] == ["test", "test --resume"]
    with (moved / "metrics.csv").open() as f:
        steps = [int(r["step"]) for r in csv.DictReader(f) if r["tag"] == "train/loss"]
    assert steps == [1, 2, 3, 4]


def test_image_views_made_on_the_device_resume_exactly_and_keep_the_loaders_originals(data, tmp_path):
    """image_views_on=device: the loader hands over the cached frames and the training step makes the
    views, the original view exactly the loader's; a run stopped after step 3 and resumed ends with the
    uninterrupted run's weights."""
    cfg = tiny(data, tmp_path / "whole", image_views_on="device")
    trainer = Trainer(cfg, command="test")
    items = next(iter(trainer.sampler))
    frames = torch.stack([trainer.loader.dataset[item][0] for item in items])
    size = cfg.model.image_size
    assert frames.shape[1:] == (2, 3, cached_side(size, cfg.image_aug), cached_side(size, cfg.image_aug))
    views = trainer.image_views(frames)                      # before the first kNN table: no neighbour view
    assert views.shape == (2 * len(items), 3, size, size) and views.dtype == torch.uint8
    in_loader = ViewDataset(trainer.loader.dataset.store, cfg)
    assert torch.equal(views[:len(items)], torch.stack([in_loader[item][0][0] for item in items]))
    assert not torch.equal(views[len(items):], views[:len(items)])
    train(cfg, command="test")
    assert train(tiny(data, tmp_path / "resumed", image_views_on="device"), stop_after=3, command="test") is None
    train(tiny(data, tmp_path / "resumed", image_views_on="device"), resume=True, command="test --resume")
    assert_same_weights(weights(tmp_path / "whole"), weights(tmp_path / "resumed"))


def wait_until_stopped(proc: subprocess.Popen) -> None:
    """Block until ``proc`` stops itself (SIGSTOP); fail if it exits instead."""
    _, status = os.waitpid(proc.pid, os.WUNTRACED)
    if not os.WIFSTOPPED(status):
        proc.returncode = os.waitstatus_to_exitcode(status)          # reaped here: tell Popen
        pytest.fail(f"the run ended (status {proc.returncode}) before the checkpoint write to kill it in")


def test_sigkill_during_a_checkpoint_write_resumes_to_the_same_result(reference, data, tmp_path):
    """The run stops itself before each rename of latest.pt (avdemo.cache's test hook): the first two
    writes (steps 1 and 2) go through, the third is killed with its temp file complete but not renamed."""
    latest = tmp_path / "latest.pt"
    env = {**one_thread_env(tmp_path), PAUSE_BEFORE_RENAME: str(latest)}
    proc = subprocess.Popen([sys.executable, *tiny_cli(data, tmp_path, "save_every=1")], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for write in (1, 2, 3):
            wait_until_stopped(proc)
            assert len(list(tmp_path.glob(".latest.pt.*.tmp"))) == 1      # the write in progress
            assert latest.exists() == (write > 1)
            if write < 3:
                proc.send_signal(signal.SIGCONT)
        proc.send_signal(signal.SIGKILL)
    finally:
        if proc.returncode is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert list(tmp_path.glob(".latest.pt.*.tmp"))                    # the interrupted write left its temp file
    state = torch.load(latest, weights_only=True)                     # the last complete checkpoint
    assert state["step"] == 2
    train(tiny(data, tmp_path, save_every=1), resume=True, command="test")
    assert not list(tmp_path.glob(".*.tmp"))
    assert_same_weights(weights(reference), weights(tmp_path))


def test_ddp_with_two_gloo_processes_writes_one_checkpoint_with_matching_metrics(data, tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           *tiny_cli(data, tmp_path, "batch_size=4", "steps=4")]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=240, env=one_thread_env(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    card = json.loads((tmp_path / "model.json").read_text())
    assert card["provenance"]["processes"] == 2 and card["provenance"]["samples_seen"] == 4 * 4 * 2
    model = load_model(tmp_path / "model.safetensors")
    report, _ = evaluate(model, load_benchmark("embedded", data / "test"), progress=False)
    assert flatten(report) == pytest.approx(flatten(card["metrics"]["test"]), rel=1e-4)
    with (tmp_path / "metrics.csv").open() as f:
        keys = [(r["step"], r["tag"]) for r in csv.DictReader(f)]
    assert len(keys) == len(set(keys)), "more than one process wrote the metrics"
    assert sum(tag == "train/loss" for _, tag in keys) == 4


def test_ablate_plot_and_cli_errors(data, tmp_path, capsys):
    table = tmp_path / "ablation.md"
    assert ablate_main(["--root", str(data), "--steps", "2", "--base", "tiny", "--variants", "single_positive",
                        "--runs", str(tmp_path / "runs"), "--out", str(table)]) == 0
    summary = json.loads(table.with_suffix(".json").read_text())["summary"]
    run = tmp_path / "runs" / "single_positive-seed1"
    card = json.loads((run / "model.json").read_text())
    # one seed: each column is the run's own test metric (std 0), in the table as in the JSON
    test = card["metrics"]["test"]
    loc, ret, fp = test["localization"], test["retrieval"], test["false_positives"]
    assert card["provenance"]["steps"] == 2 and loc["n"] == 9
    expected = {"cIoU@0.5": loc["ciou_success"], "AUC": loc["ciou_auc"],
                "adaptive cIoU@0.5": loc["adaptive_ciou_success"], "pointing game": loc["pointing_game"],
                "R@1 a->i (class)": ret["class"]["audio_to_image"]["R@1"],
                "R@1 i->a (class)": ret["class"]["image_to_audio"]["R@1"],
                "R@1 a->i (inst.)": ret["instance"]["audio_to_image"]["R@1"],
                "FP AP": fp["AP"], "FP max-F1": fp["max_F1"], "sounding ROC-AUC": fp["roc_auc"]}
    assert summary == {"single_positive": {title: [value, 0.0] for title, value in expected.items()}}
    row = "| single_positive | " + " | ".join(f"{value:.1f}" for value in expected.values()) + " |"
    assert row in table.read_text().splitlines()
    assert card["config"]["alignment_head"] is False
    assert card["provenance"]["train_config"]["image_views"] == ["original"]
    assert plot_main([str(run)]) == 0
    assert (run / "curves.png").stat().st_size > 10_000
    assert train_main(["--config", "tiny", "--override", f"data_root={data}", "optimizer=sgd"]) == 2
    assert "optimizer must be" in capsys.readouterr().err


def test_pretrained_lite_run_freezes_what_it_says_and_caches_its_imagenet_neighbours(data, tmp_path, monkeypatch):
    """EfficientNet-Lite0 from ImageNet with frozen batch norms and a tenth of the lr, neighbours from its
    ImageNet features, the full audio augmentation and extra negatives: the batch norms keep the
    ImageNet statistics, the convolutions learn, the feature cache is written once and reused, and the
    saved model loads from its card without the weights package."""
    import importlib.resources

    from avdemo.backbones import EfficientNetLite0Trunk, load_imagenet_weights
    from train.config import LITE_AUDIO_AUG

    monkeypatch.setenv("AVDEMO_CACHE", str(tmp_path / "cache"))
    model_cfg = dataclasses.replace(PRESETS["tiny"].model, visual_backbone="efficientnet_lite0")
    cfg = tiny(data, tmp_path / "run", model=model_cfg, visual_init="imagenet", visual_trunk="frozen_bn",
               trunk_lr_ratio=0.1, neighbour_features="imagenet", audio_aug=LITE_AUDIO_AUG, extra_negatives=2)
    train(cfg, command="test")
    imagenet = load_imagenet_weights(EfficientNetLite0Trunk()).state_dict()
    trained = {k.removeprefix("visual_encoder."): v for k, v in weights(tmp_path / "run").items()
               if k.startswith("visual_encoder.")}
    bn = [k for k in imagenet if "_bn" in k]
    convs = [k for k in imagenet if "conv" in k]
    assert all(torch.equal(trained[k], imagenet[k]) for k in bn)
    assert sum(not torch.equal(trained[k], imagenet[k]) for k in convs) > len(convs) / 2
    cached = list((tmp_path / "cache" / "features").glob("efficientnet_lite0-64px-*.npy"))
    assert len(cached) == 1 and np.load(cached[0]).shape == (16, 1280)
    assert torch.load(tmp_path / "run" / "latest.pt", weights_only=True)["neighbours"].shape == (2, 16, 3)
    stamp = cached[0].stat().st_mtime_ns
    train(dataclasses.replace(cfg, out_dir=str(tmp_path / "again"), steps=1, val_split=None, test_split=None))
    assert cached[0].stat().st_mtime_ns == stamp                      # read back, not recomputed

    def no_package(name):
        raise ModuleNotFoundError(name)
    monkeypatch.setattr(importlib.resources, "files", no_package)
    model = load_model(tmp_path / "run" / "model.safetensors")
    assert model.card["config"]["visual_backbone"] == "efficientnet_lite0" and model.cfg.map_size == 4


def test_frozen_trunk_keeps_every_imagenet_weight(data, tmp_path):
    from avdemo.backbones import EfficientNetLite0Trunk, load_imagenet_weights

    model_cfg = dataclasses.replace(PRESETS["tiny"].model, visual_backbone="efficientnet_lite0")
    cfg = tiny(data, tmp_path, model=model_cfg, visual_init="imagenet", visual_trunk="frozen", steps=2,
               image_views=("original",), audio_views=("original",), val_split=None, test_split=None)
    train(cfg)
    imagenet = load_imagenet_weights(EfficientNetLite0Trunk()).state_dict()
    state = weights(tmp_path)
    assert all(torch.equal(state[f"visual_encoder.{k}"], v) for k, v in imagenet.items())
    assert not torch.equal(state["visual_map_proj.weight"], AVLocalizer_proj_init(model_cfg))


def AVLocalizer_proj_init(model_cfg) -> torch.Tensor:
    """The 1x1 projection's initial weights for seed 0 (as the trainer builds it)."""
    from avdemo.model import AVLocalizer

    torch.manual_seed(0)
    return AVLocalizer(dataclasses.replace(model_cfg, alignment_head=True)).visual_map_proj.weight.detach()
