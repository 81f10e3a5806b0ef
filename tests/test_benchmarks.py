"""Benchmark readers: tiny VGG-SS and Flickr-SoundNet datasets written here, and the public benchmark lists
(generated here in their published formats; fetched from a local server, never the internet)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from avdemo.benchmarks import (PUBLIC_LISTS, PublicList, check_files, load_flickr, load_vggss, public_list,
                               read_flickr_boxes, read_frame, read_ids, read_negatives, read_wav, vggss_key)
from avdemo.errors import AVDemoError
from avdemo.metrics import gt_map_consensus, gt_map_from_boxes


def write_media(root: Path, sample_id: str, seed: int, size=(80, 60), nested: bool = False,
                seconds: float = 1.5) -> None:
    """A real JPEG frame and a 16 kHz WAV (a tone in noise) for ``sample_id`` under ``root``."""
    rng = np.random.default_rng(seed)
    frame = root / "frames" / (f"{sample_id}/image_050.jpg" if nested else f"{sample_id}.jpg")
    frame.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(frame, quality=90)
    t = np.arange(int(16000 * seconds)) / 16000
    wav = 0.3 * np.sin(2 * np.pi * (200 + 100 * seed) * t) + 0.05 * rng.normal(size=t.size)
    (root / "audio").mkdir(exist_ok=True)
    sf.write(root / "audio" / f"{sample_id}.wav", wav.astype(np.float32), 16000)


VGGSS_ENTRIES = [
    {"file": "aaaaaaaaaaa_000010", "class": "dog barking", "bbox": [[0.1, 0.2, 0.5, 0.9]]},
    {"file": "bbbbbbbbbbb_000020", "class": "playing piano", "bbox": [[0.5, 0.5, 1.0, 1.0], [0.0, 0.0, 0.2, 0.2]],
     "source": "synthetic", "scene": 7},
    {"file": "ccccccccccc_000030", "class": "dog barking", "bbox": [[0.0, 0.0, 0.6, 0.5]]},
    {"file": "ddddddddddd_000040", "class": "cat meowing", "bbox": [[0.3, 0.3, 0.7, 0.7]]},
]


def write_vggss_layout(root: Path, negatives_kind: bool = True) -> Path:
    """A tiny VGG-SS layout: 4 sounding clips (one frame in the <id>/image_050.jpg layout, frames of two
    sizes), vggss.json with extra keys, and a non-sounding list with a kind column. Returns the CSV."""
    for i, entry in enumerate(VGGSS_ENTRIES):
        write_media(root, entry["file"], seed=i, nested=(i == 1), size=(80, 60) if i < 3 else (64, 64))
    (root / "vggss.json").write_text(json.dumps(VGGSS_ENTRIES))
    csv_path = root / "ours_test_plus_silent.csv"
    header = "video,audio,label,kind" if negatives_kind else "video,audio,label"
    rows = [("aaaaaaaaaaa_000010", "ccccccccccc_000030", "offscreen"),
            ("ddddddddddd_000040", "silence_1", "silence")]
    write_media(root, "silence_1", seed=9)
    sf.write(root / "audio" / "silence_1.wav", np.zeros(16000, np.float32), 16000)
    lines = [header] + [f"{v},{a},non-sounding" + (f",{k}" if negatives_kind else "") for v, a, k in rows]
    csv_path.write_text("\r\n".join(lines) + "\r\n")
    return csv_path


FLICKR_XML = """<?xml version="1.0"?>
<annotation>
  <filename>{id}.jpg</filename>
  <object><bbox><label>1</label><xmin>0</xmin><ymin>0</ymin><xmax>128</xmax><ymax>128</ymax></bbox></object>
  <object><bbox><label>2</label><xmin>64</xmin><ymin>64</ymin><xmax>256</xmax><ymax>200</ymax></bbox>
          <bbox><label>2</label><xmin>0</xmin><ymin>200</ymin><xmax>40</xmax><ymax>256</ymax></bbox></object>
</annotation>
"""


def write_flickr_layout(root: Path) -> None:
    (root / "Annotations").mkdir(parents=True)
    for i, sample_id in enumerate(["10000130166", "10007936344"]):
        write_media(root, sample_id, seed=i)
        (root / "Annotations" / f"{sample_id}.xml").write_text(FLICKR_XML.format(id=sample_id))


def test_load_vggss_reads_frames_audio_boxes_and_extra_keys(tmp_path):
    negatives = write_vggss_layout(tmp_path)
    samples = load_vggss(tmp_path, negatives=negatives)
    assert [s.id for s in samples[:4]] == [e["file"] for e in VGGSS_ENTRIES]
    check_files(samples)
    s = samples[1]
    assert s.image_path == tmp_path / "frames" / s.id / "image_050.jpg"
    assert s.class_name == "playing piano" and s.sounding and s.kind == "sounding"
    assert s.meta == {"source": "synthetic", "scene": 7}
    np.testing.assert_array_equal(s.gt_map, gt_map_from_boxes(VGGSS_ENTRIES[1]["bbox"]))
    assert s.gt_map.shape == (224, 224) and s.boxes == VGGSS_ENTRIES[1]["bbox"]
    frame = read_frame(s.image_path)
    assert frame.dtype == np.uint8 and frame.shape == (60, 80, 3)
    wav, sr = read_wav(s.audio_path)
    assert sr == 16000 and wav.dtype == np.float32 and wav.shape == (24000,)


def test_non_sounding_pairs_take_frame_of_video_and_audio_of_audio(tmp_path):
    negatives = write_vggss_layout(tmp_path)
    neg = load_vggss(tmp_path, negatives=negatives)[4:]
    assert [(n.kind, n.sounding, n.gt_map) for n in neg] == [("offscreen", False, None), ("silence", False, None)]
    assert neg[0].image_path.name == "aaaaaaaaaaa_000010.jpg" and neg[0].audio_path.stem == "ccccccccccc_000030"
    plain = write_vggss_layout(tmp_path / "plain", negatives_kind=False)
    assert {n.kind for n in read_negatives(tmp_path / "plain", plain)} == {"non-sounding"}


def test_vggss_ids_select_and_order_and_accept_the_official_ms_form(tmp_path):
    write_vggss_layout(tmp_path)
    ids = tmp_path / "ids.txt"
    ids.write_text("ccccccccccc_30000_40000\naaaaaaaaaaa_000010\n")
    assert [s.id for s in load_vggss(tmp_path, ids=ids)] == ["ccccccccccc_000030", "aaaaaaaaaaa_000010"]
    assert vggss_key("Kp3-Drt61_M_000064") == "Kp3-Drt61_M_000064"     # an 11-char id with "_"
    with pytest.raises(AVDemoError, match="1 ids are not in vggss.json; the first is 'zzzzzzzzzzz_000001'"):
        load_vggss(tmp_path, ids=["aaaaaaaaaaa_000010", "zzzzzzzzzzz_000001"])


def test_check_files_names_the_first_missing_file_and_the_count(tmp_path):
    write_vggss_layout(tmp_path)
    (tmp_path / "audio" / "bbbbbbbbbbb_000020.wav").unlink()
    (tmp_path / "frames" / "ddddddddddd_000040.jpg").unlink()
    samples = load_vggss(tmp_path)
    with pytest.raises(AVDemoError, match=r"2 of 8 benchmark files are missing; the first is .*b_000020\.wav"):
        check_files(samples)


def test_load_flickr_parses_annotators_into_the_consensus_map(tmp_path):
    write_flickr_layout(tmp_path)
    samples = load_flickr(tmp_path)
    assert [s.id for s in samples] == ["10000130166", "10007936344"]
    s = samples[0]
    assert s.boxes == [[[0, 0, 128, 128]], [[64, 64, 256, 200], [0, 200, 40, 256]]]
    np.testing.assert_array_equal(s.gt_map, gt_map_consensus(s.boxes))
    assert s.gt_map[70, 70] == 1.0 and s.gt_map[10, 10] == 0.5 and s.gt_map[220, 10] == 0.5
    check_files(samples)
    (tmp_path / "Annotations" / "10007936344.xml").unlink()
    with pytest.raises(AVDemoError, match="1 annotation files are missing; the first is .*10007936344.xml"):
        load_flickr(tmp_path, ids=["10000130166.jpg", "10007936344.jpg"])


def test_flickr_boxes_read_positionally_like_the_reference(tmp_path):
    xml = tmp_path / "a.xml"
    xml.write_text("<annotation><object><bbox><id>0</id><a>1</a><b>2</b><c>30</c><d>40</d></bbox></object>"
                   "<object><bbox><id>1</id><a>5</a><b>6</b></bbox></object></annotation>")
    with pytest.raises(AVDemoError, match="without four numeric coordinates"):
        read_flickr_boxes(xml)
    xml.write_text("<annotation><object><bbox><id>0</id><a>1</a><b>2</b><c>30</c><d>40</d></bbox></object>"
                   "</annotation>")
    assert read_flickr_boxes(xml) == [[[1, 2, 30, 40]]]


PUBLIC_CLASSES = ["dog barking", "female speech, woman speaking", "playing cello", "cat purring"]


def write_public_lists(folder: Path) -> Path:
    """``PUBLIC_LISTS`` in their published formats, small: line ends and final newlines as published
    (CRLF in vggss_test.csv, flickr_test.csv and the *_plus_silent.csv), vggss.json on one line, the
    official list's ``YTID_<start ms>_<end ms>`` ids, Flickr ids with a class index or a .jpg suffix.
    8 VGG-SS clips of 4 classes (heard: the first two classes, unheard: the others), 3 Flickr images."""
    folder.mkdir(parents=True, exist_ok=True)
    youtube_ids = [f"{chr(97 + i) * 5}-{i}_Xy{i}" for i in range(8)]              # 11 characters
    entries = [{"file": f"{y}_{10 * (i + 1):06d}", "class": PUBLIC_CLASSES[i % 4],
                "bbox": [[0.1 * (i % 3), 0.2, 0.6, 0.9]]} for i, y in enumerate(youtube_ids)]
    ids = [e["file"] for e in entries]
    flickr = ["10000130166", "10007936344", "10008553263"]
    heard = [i for i, e in zip(ids, entries) if PUBLIC_CLASSES.index(e["class"]) < 2]
    files = {
        "vggss.json": json.dumps(entries),
        "vggss_test.csv": "\r\n".join(ids) + "\r\n",
        "vggss_heard_test.csv": "\n".join(heard),
        "vggss_unheard_test.csv": "\n".join(i for i in ids if i not in heard),
        "ours_vggss.txt": "\n".join(f"{y}_{10000 * (i + 1)}_{10000 * (i + 2)}" for i, y in enumerate(youtube_ids[:5])),
        "vggss_test_plus_silent.csv": "\r\n".join(["video,audio,label"] + [f"{i},{i},non-sounding" for i in ids]),
        "flickr_test.csv": "".join(f"{f},{k * 100 + 2}\r\n" for k, f in enumerate(flickr)),
        "test_flickr_250.txt": "".join(f"{f}.jpg\n" for f in flickr),
        "flickr_test_plus_silent.csv": "\r\n".join(["video,audio,label"] + [f"{f},{g},non-sounding" for f, g
                                                                             in zip(flickr, flickr[1:] + flickr[:1])]),
    }
    assert set(files) == set(PUBLIC_LISTS)
    for name, text in files.items():
        (folder / name).write_bytes(text.encode())
    return folder


@pytest.fixture
def public_lists(tmp_path, monkeypatch) -> Path:
    folder = write_public_lists(tmp_path / "lists")
    monkeypatch.setenv("AVDEMO_BENCHMARK_LISTS", str(folder))
    return folder


def test_public_vggss_lists_and_negatives_parse(tmp_path, public_lists):
    samples = load_vggss(tmp_path, meta=public_list("vggss.json"))
    assert len(samples) == 8 and {s.class_name for s in samples} == set(PUBLIC_CLASSES)
    assert all(s.sounding and s.gt_map.shape == (224, 224) for s in samples)
    class_of = {s.id: s.class_name for s in samples}
    lists = {name: [vggss_key(i) for i, _ in read_ids(public_list(name))]
             for name in ("ours_vggss.txt", "vggss_test.csv", "vggss_heard_test.csv", "vggss_unheard_test.csv")}
    assert {name: len(ids) for name, ids in lists.items()} == {
        "ours_vggss.txt": 5, "vggss_test.csv": 8, "vggss_heard_test.csv": 4, "vggss_unheard_test.csv": 4}
    assert lists["ours_vggss.txt"] == lists["vggss_test.csv"][:5]          # YTID_20000_30000 -> YTID_000020
    heard, unheard = ({class_of[i] for i in lists[n]} for n in ("vggss_heard_test.csv", "vggss_unheard_test.csv"))
    assert heard.isdisjoint(unheard)
    subset = load_vggss(tmp_path, meta=public_list("vggss.json"), ids=public_list("ours_vggss.txt"),
                        negatives=public_list("vggss_test_plus_silent.csv"))
    assert sum(s.sounding for s in subset) == 5 and sum(not s.sounding for s in subset) == 8
    with pytest.raises(AVDemoError, match=r"benchmark files are missing; the first is .*frames"):
        check_files(subset)


def test_public_flickr_lists_and_negatives_parse(tmp_path, public_lists):
    ids = read_ids(public_list("test_flickr_250.txt"))
    assert ids == [("10000130166", ""), ("10007936344", ""), ("10008553263", "")]
    assert read_ids(public_list("flickr_test.csv"))[1] == ("10007936344", "102")
    negatives = read_negatives(tmp_path, public_list("flickr_test_plus_silent.csv"))
    assert len(negatives) == 3 and negatives[0].meta == {"video": "10000130166", "audio": "10007936344"}


def test_the_evaluator_takes_public_lists_by_name(tmp_path, public_lists):
    from avdemo.evaluate import load_benchmark

    samples = load_benchmark("vggss", tmp_path, ids=Path("ours_vggss.txt"),           # vggss.json: the public one
                             negatives=Path("vggss_test_plus_silent.csv"))
    assert (sum(s.sounding for s in samples), len(samples)) == (5, 13)
    with pytest.raises(AVDemoError, match=r"3 annotation files are missing; the first is .*10000130166.xml"):
        load_benchmark("flickr", tmp_path, ids=Path("test_flickr_250.txt"))      # the list was found by name


def test_public_lists_are_fetched_once_pinned_and_reused_offline(tmp_path, monkeypatch):
    from test_fetch import Server

    folder = write_public_lists(tmp_path / "published")
    monkeypatch.setenv("AVDEMO_CACHE", str(tmp_path / "cache"))
    server = Server()
    for name in PUBLIC_LISTS:
        data = (folder / name).read_bytes()
        server.files[f"/metadata/{name}"] = (data, "text/plain; charset=utf-8")
        monkeypatch.setitem(PUBLIC_LISTS, name, PublicList(f"{server.url}/metadata/{name}",
                                                           hashlib.sha256(data).hexdigest()))
    try:
        path = public_list("vggss_test.csv")
        assert path == tmp_path / "cache" / "benchmark_lists" / "vggss_test.csv"
        assert path.read_bytes() == (folder / "vggss_test.csv").read_bytes()        # CRLF kept
        assert public_list("vggss_test.csv") == path and server.requests == ["GET /metadata/vggss_test.csv"]
        monkeypatch.setitem(PUBLIC_LISTS, "ours_vggss.txt", PublicList(PUBLIC_LISTS["ours_vggss.txt"].url, "0" * 64))
        with pytest.raises(AVDemoError, match="ours_vggss.txt: sha256 mismatch.*not kept"):
            public_list("ours_vggss.txt")                                           # changed upstream: refused
        assert sorted(p.name for p in path.parent.iterdir()) == ["vggss_test.csv"]
    finally:
        server.stop()
    assert public_list("vggss_test.csv") == path                                   # offline: the cached copy
    with pytest.raises(AVDemoError, match="vggss.json: cannot connect"):
        public_list("vggss.json")
    with pytest.raises(AVDemoError, match="vggss_10k.txt: not a public benchmark list"):
        public_list("vggss_10k.txt")


def test_negatives_list_rejects_rows_that_are_not_non_sounding_pairs(tmp_path):
    bad = tmp_path / "bad_plus_silent.csv"
    bad.write_text("video,audio,label\na,b,non-sounding\nc,d,sounding\n")
    with pytest.raises(AVDemoError, match="bad_plus_silent.csv line 3: expected video,audio,non-sounding"):
        read_negatives(tmp_path, bad)
    bad.write_text("image,sound\na,b\n")
    with pytest.raises(AVDemoError, match="expected the columns video,audio,label"):
        read_negatives(tmp_path, bad)
