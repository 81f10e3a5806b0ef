"""IS3, VPO and AVSBench: keys, ground truth, iIoU / iAUC against plain loops, and the evaluator end to end
on tiny fixtures in the exact metadata format of the reference evaluation."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from avdemo import AVDemoError, save_model
from avdemo.benchmarks import BOX_BENCHMARKS, load_box_benchmark, path_key
from avdemo.evaluate import main as evaluate_main
from avdemo.metrics import group_auc, group_success_rate, gt_map_from_pixel_boxes

# one entry of each file as the reference ships it (authors' absolute paths)
PATHS = {
    "is3": ("/mnt/lynx2/users/arda/synthetic3241/visual_frames/{key}.jpg",
            "/mnt/lynx2/users/arda/synthetic3241/audio_wav/{audio}.wav"),
    "vpo_ss": ("/mnt/lynx2/users/arda/SSL_COCO/COCO_AV/visual_frames/{key}.jpg",
               "/mnt/lynx2/users/arda/SSL_COCO/COCO_AV/audio_wav/{audio}.wav"),
    "vpo_ms": ("/mnt/lynx2/users/arda/SSL_COCO/COCO_AV_MS/visual_frames/{key}.jpg",
               "/mnt/lynx2/users/arda/SSL_COCO/COCO_AV_MS/audio_wav/{audio}.wav"),
    "s4": ("/mnt/lynx3/datasets/AVSbench/Single-source/s4_data/visual_frames/test/{key}.png",
           "/mnt/lynx3/datasets/AVSbench/Single-source/s4_data/audio_wav/test/{audio}.wav"),
    "ms3": ("/mnt/lynx3/datasets/AVSbench/Multi-sources/ms3_data/visual_frames/{key}.png",
            "/mnt/lynx3/datasets/AVSbench/Multi-sources/ms3_data/audio_wav/test/{audio}.wav"),
}
KEYS = {  # (image key, audio key) of each sample
    "is3": [("accordion_female_10438_accordion", "accordion_female_10438_accordion"),
            ("accordion_female_10438_female", "accordion_female_10438_female"),
            ("parrot_ukulele_1635_ukulele", "parrot_ukulele_1635_ukulele"),
            ("parrot_ukulele_1635_parrot", "parrot_ukulele_1635_parrot"),
            ("dog_piano_77_dog", "dog_piano_77_dog")],
    "vpo_ss": [("000000062491_432356", "000000062491_432356"), ("000000053484_188901", "000000053484_188901")],
    "vpo_ms": [("000000489267_157452", "000000489267_157452"), ("000000041772_159191", "000000041772_159191")],
    "s4": [("helicopter/0d9u2CymIxc/0d9u2CymIxc_1", "helicopter/0d9u2CymIxc"),
           ("helicopter/0d9u2CymIxc/0d9u2CymIxc_2", "helicopter/0d9u2CymIxc"),
           ("dog/aB3dE5gH7jK/aB3dE5gH7jK_1", "dog/aB3dE5gH7jK")],
    "ms3": [("rq5RDUm2Hnk_1/rq5RDUm2Hnk_1.mp4_1", "rq5RDUm2Hnk_1"), ("rq5RDUm2Hnk_1/rq5RDUm2Hnk_1.mp4_2", "rq5RDUm2Hnk_1")],
}


def test_pixel_boxes_are_cast_to_int_and_filled_rows_first():
    gt = gt_map_from_pixel_boxes([[47.9, 99.2, 154.5, 185.0]])
    expected = np.zeros((224, 224))
    expected[99:185, 47:154] = 1
    np.testing.assert_array_equal(gt, expected)
    assert gt_map_from_pixel_boxes([[0.0, 0.0, 0.0, 0.0]]).sum() == 0          # AVSBench's empty boxes


@pytest.mark.parametrize("name", sorted(BOX_BENCHMARKS))
def test_keys_are_the_last_path_components(name):
    spec = BOX_BENCHMARKS[name]
    image_t, audio_t = PATHS[name]
    for key, audio in KEYS[name]:
        assert path_key(image_t.format(key=key), spec.image_parts) == key
        assert path_key(audio_t.format(audio=audio), spec.audio_parts) == audio


def _fixture(root, name, rng) -> list[dict]:
    image_t, audio_t = PATHS[name]
    entries = []
    for key, audio in KEYS[name]:
        x1, y1 = (int(v) for v in rng.integers(0, 150, 2))
        entries.append({"image": image_t.format(key=key), "audio": audio_t.format(audio=audio),
                        "gt_box": [float(x1), float(y1), float(x1 + 60), float(y1 + 50)]})
        frame = root / "frames" / f"{key}.{image_t.rsplit('.', 1)[1]}"
        frame.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)).save(frame)
        wav = root / "audio" / f"{audio}.wav"
        wav.parent.mkdir(parents=True, exist_ok=True)
        if not wav.exists():
            sf.write(wav, rng.uniform(-0.5, 0.5, 8000 * 2).astype(np.float32), 8000)
    (root / BOX_BENCHMARKS[name].meta).write_text(json.dumps(entries))
    return entries


@pytest.mark.parametrize("name", sorted(BOX_BENCHMARKS))
def test_the_evaluator_runs_each_box_benchmark(tmp_path, tiny_model, name, capsys):
    rng = np.random.default_rng(0)
    root = tmp_path / name
    entries = _fixture(root, name, rng)
    samples = load_box_benchmark(name, root)
    assert [s.id for s in samples] == [k for k, _ in KEYS[name]]
    assert all(s.image_path.is_file() and s.audio_path.is_file() for s in samples)
    for s, e in zip(samples, entries):
        np.testing.assert_array_equal(s.gt_map, gt_map_from_pixel_boxes([e["gt_box"]]))
    if name == "s4":
        assert [s.class_name for s in samples] == ["helicopter", "helicopter", "dog"]
    checkpoint = save_model(tiny_model, tmp_path / "tiny.safetensors")
    out = tmp_path / "report.json"
    assert evaluate_main(["--checkpoint", str(checkpoint), "--benchmark", name, "--root", str(root),
                          "--out", str(out), "--device", "cpu"]) == 0
    report = json.loads(out.read_text())
    assert report["n_sounding"] == len(entries) and report["per_sample"]["id"] == [k for k, _ in KEYS[name]]
    loc = report["localization"]
    if name == "is3":
        groups = [k.rsplit("_", 1)[0] for k, _ in KEYS[name]]
        cious = report["per_sample"]["ciou"]
        assert loc["n_groups"] == 3
        assert loc["iiou"] == pytest.approx(group_success_rate(cious, groups))
        assert loc["iauc"] == pytest.approx(group_auc(cious, groups))
        assert "iIoU, AUC (3 scenes)" in capsys.readouterr().out
    else:
        assert "iiou" not in loc


def test_box_benchmark_errors_name_the_problem(tmp_path):
    with pytest.raises(AVDemoError, match="synthetic3240_bbox.json"):
        load_box_benchmark("is3", tmp_path)
    (tmp_path / "s4_box.json").write_text(json.dumps([{"image": "/a/b/c/d.png", "audio": "/a/b.wav"}]))
    with pytest.raises(AVDemoError, match="not a list of"):
        load_box_benchmark("s4", tmp_path)


def test_a_box_benchmark_folder_can_be_indexed_for_the_app(tmp_path, tiny_model):
    from avdemo.evaluate import detect_benchmark
    from avdemo.index import ensure_index

    rng = np.random.default_rng(1)
    root = tmp_path / "s4"
    _fixture(root, "s4", rng)
    assert detect_benchmark(root) == "s4"
    checkpoint = save_model(tiny_model, tmp_path / "tiny.safetensors")
    index = ensure_index(checkpoint, root, cache_dir=tmp_path / "index", progress=False)
    assert index.ids == [k for k, _ in KEYS["s4"]] and index.sounding.all()
    assert list(index.class_names) == ["helicopter", "helicopter", "dog"]
    report = tmp_path / "report.json"
    assert evaluate_main(["--checkpoint", str(checkpoint), "--benchmark", "s4", "--root", str(root),
                          "--out", str(report), "--device", "cpu"]) == 0
    np.testing.assert_allclose(index.scores["ciou"], json.loads(report.read_text())["per_sample"]["ciou"], atol=1e-6)
    with pytest.raises(AVDemoError, match="expected exactly one of vggss.json"):
        detect_benchmark(tmp_path)
