"""The shipped model and the plain start: checkpoints/default.safetensors loads with its card, the README's
numbers are the card's, and ``python app.py`` with no arguments serves that model."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from appdata import interrupt
from gradio_client import Client

from avdemo import load_model
from avdemo.config import PRESETS, ModelConfig
from avdemo.data.splits import build_split
from avdemo.ui.model_tab import card_markdown

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "checkpoints" / "default.safetensors"
CARD = DEFAULT.with_suffix(".json")
DEFAULT_ROW = "lite_finetuned"          # the recipe (train/config.py) that made the shipped default


@pytest.fixture(scope="module")
def card() -> dict:
    return json.loads(CARD.read_text())


def test_the_default_checkpoint_loads_with_its_card_and_localizes(card):
    model = load_model(DEFAULT)
    assert card["format"] == "avdemo/1"
    assert model.cfg == ModelConfig.from_dict(card["config"]) == PRESETS["lite"]
    assert {k: v for k, v in model.card.items() if k not in ("path", "config")} == \
        {k: v for k, v in card.items() if k != "config"}
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)
    wav = rng.uniform(-0.3, 0.3, 3 * model.cfg.audio.sample_rate).astype(np.float32)
    out = model.localize(frame, wav, sample_rate=model.cfg.audio.sample_rate)
    assert out.maps.shape == (1, 90, 120) and out.maps_lowres.shape == (1, 8, 8)
    assert np.isfinite(out.maps).all() and out.maps.max() > out.maps.min()


def test_the_card_has_every_field_the_app_shows(card):
    prov, test = card["provenance"], card["metrics"]["test"]
    loc = test["localization"]
    text = card_markdown({**card, "path": str(DEFAULT)})
    assert "**Preset:** lite" in text and "**File:** `default.safetensors`" in text
    assert f"**Notes:** {card['notes']}" in text and card["notes"].startswith("The lite recipe")
    assert (f"**Training:** {prov['steps']} steps, seed {prov['seed']}, {prov['data']['train_clips']} clips from "
            f"`{prov['data']['train']}`, commit `{prov['git_commit'][:10]}`") in text
    assert f"cIoU@0.5 {loc['ciou_success']:.1f} %, AUC {loc['ciou_auc']:.1f}" in text
    switch = test["switch"]
    assert (f"**Switch test** ({switch['n_trials']} trials): peak on the played object {switch['pixels']:.1f} % "
            f"(chance {switch['chance_pixels']:.1f}") in text
    assert {"ear", "eye", "sound_to_object", "object_to_sound"} <= set(test["diagnosis"])
    assert "?" not in text.replace(card["notes"], "")               # no field missing
    assert (prov["steps"], prov["selected_step"], prov["labels_used_for_training"]) == (1250, 1250, False)
    assert test["n_sounding"] == test["n_non_sounding"] == 1000


def test_the_readme_reports_the_cards_test_numbers(card):
    test = card["metrics"]["test"]
    loc, cls, fp = test["localization"], test["retrieval"]["class"], test["false_positives"]
    both = test["switch"]["by_media"]["picture not seen, recording not seen"]
    row = (f"| default model (`{DEFAULT_ROW}`) | {both['pixels']:.1f} | {test['switch']['sound_dependence']:.2f} | "
           f"{loc['pointing_game']:.1f} | {loc['ciou_success']:.1f} | "
           f"{loc['ciou_auc']:.1f} | {loc['adaptive_ciou_success']:.1f} | "
           f"{cls['audio_to_image']['R@1']:.1f} / {cls['image_to_audio']['R@1']:.1f} | "
           f"{fp['AP']:.1f} / {fp['max_F1']:.1f} / {fp['roc_auc']:.1f} | "
           f"{fp['at_recall_90']['fpr_by_kind']['offscreen']:.1f} |")
    assert row in (ROOT / "README.md").read_text().splitlines()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, timeout: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


@pytest.mark.timeout(900)
def test_python_app_py_without_arguments_serves_the_default_checkpoint(tmp_path):
    """The plain start: no --checkpoint, no $AVDEMO_CHECKPOINT; the dataset from $AVDEMO_DATA (8 scenes),
    caches in temporary folders. The page names the default model, shows its card, and SIGINT stops it."""
    split = build_split("test", 8, out=tmp_path / "data", workers=1, progress=False)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("AVDEMO_CHECKPOINT", "GRADIO_SERVER_NAME")}
    env |= {"AVDEMO_DATA": str(split), "AVDEMO_CACHE": str(tmp_path / "cache"),
            "AVDEMO_INDEX_DIR": str(tmp_path / "index"), "GRADIO_SERVER_PORT": str(port),
            "GRADIO_TEMP_DIR": str(tmp_path / "gradio"), "GRADIO_ANALYTICS_ENABLED": "False",
            "OMP_NUM_THREADS": "2", "PYTHONUNBUFFERED": "1"}
    log = tmp_path / "app.log"
    with open(log, "w") as out:
        process = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=out,
                                   stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline, page = time.monotonic() + 780, None
        while page is None and time.monotonic() < deadline:
            assert process.poll() is None, f"the app exited with {process.returncode}: " + log.read_text()[-3000:]
            try:
                page = get(url)
            except OSError:
                time.sleep(1)
        assert page is not None, "the app did not answer in time: " + log.read_text()[-3000:]
        config = json.loads(get(url + "config"))
        props = {c["props"]["elem_id"]: c["props"] for c in config["components"] if c.get("props", {}).get("elem_id")}
        model = props["model-choice"]
        assert model["value"] == ["default.safetensors"]
        assert model["choices"][0] == ["default.safetensors", "default.safetensors"]
        assert props["dataset-choice"]["value"] == split.name                  # a name, never a server folder
        client = Client(url, verbose=False, download_files=False)             # the card, once the index is ready
        out = client.predict(["default.safetensors"], split.name, api_name="/model_cards")
        card, summary = out[0]["value"], out[8]["value"]
        assert "**File:** `default.safetensors`" in card and "**Preset:** lite" in card and "On this dataset" in summary
        indexes = [p.name.split("-")[0] for p in (tmp_path / "index").iterdir() if p.name != "examples"]
        assert indexes == ["default"]                                          # indexed there
    finally:
        interrupt(process, timeout_s=60)
    assert process.returncode == 0, log.read_text()[-3000:]
