"""The limits of a public Space through the real app (gradio_client): uploads past the budget evict the
least recently used one and its indexes (never the default model's), whose user is told; an upload too
large for the memory budget is refused with the figures; four clients mapping videos while one retrieves
all get answers (the retrieval latencies are written to ``test-artifacts/``)."""
from __future__ import annotations

import json
import shutil
import statistics
import threading
import time
from pathlib import Path

import pytest
import torch
from appdata import ROOT, start_app, stop_app
from gradio_client import Client, handle_file

from avdemo.index import index_folder_name
from avdemo.uploads import MB

PAIRS = 8                 # of the test split's 32 pairs, for an upload's index
MEMORY_MB = 200           # the tiny default model takes 87 MB (float32)
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture(scope="module")
def app(data, tmp_path_factory):
    """An app with room for two uploads, over its own copy of the test index (evictions stay here)."""
    index_dir = tmp_path_factory.mktemp("index")
    shutil.copytree(data.index, index_dir / data.index.name)
    room = 2.5 * (data.checkpoint.stat().st_size + data.checkpoint.with_suffix(".json").stat().st_size) / MB
    env = {"AVDEMO_MAX_UPLOADS_MB": f"{room:.1f}", "AVDEMO_UPLOAD_INDEX_PAIRS": str(PAIRS),
           "AVDEMO_MODEL_MEMORY_MB": str(MEMORY_MB)}
    running = start_app(data, tmp_path_factory.mktemp("gradio-temp"), env=env, index_dir=index_dir)
    running.index_dir = index_dir
    yield running
    stop_app(running)


def client_of(app) -> Client:
    return Client(app.url, verbose=False, download_files=str(app.temp_dir.parent / "downloads"))


def upload(client: Client, weights: Path, card: Path) -> str:
    """Upload a checkpoint; its picker name (it joins the picked models, last)."""
    update = client.predict([handle_file(str(weights)), handle_file(str(card))], api_name="/upload_checkpoint")
    return update["value"][-1]


def card_and_summary(client: Client, model: str, split: str) -> tuple[str, str]:
    """The model's card and its numbers on the split (the first model panel of ``/model_cards``)."""
    out = client.predict([model], split, api_name="/model_cards")
    return out[0]["value"], out[8]["value"]


def copy_with_note(data, folder: Path, note: str) -> tuple[Path, Path]:
    """The test checkpoint's weights with a card of its own (so another upload, with its own indexes)."""
    folder.mkdir()
    (folder / data.checkpoint.name).symlink_to(data.checkpoint)
    card = json.loads(data.checkpoint.with_suffix(".json").read_text())
    (folder / "tiny.json").write_text(json.dumps({**card, "notes": note}))
    return folder / data.checkpoint.name, folder / "tiny.json"


def test_uploads_past_the_budget_evict_the_least_recently_used_and_its_indexes_not_the_default(app, data, tmp_path):
    user, other, split = client_of(app), client_of(app), data.split.name          # two visitors
    default_index = app.index_dir / data.index.name
    same = upload(user, data.checkpoint, data.checkpoint.with_suffix(".json"))      # the default's own bytes
    _, summary = card_and_summary(user, same, split)                              # builds its index: 8 pairs
    assert f"an uploaded model: indexed on {PAIRS} of the dataset's 32 pairs" in summary
    uploads = app.cache_dir / "uploads"
    same_file = uploads / same.removeprefix("upload/")
    same_index = app.index_dir / index_folder_name(same_file, data.split, PAIRS)
    assert same_index.is_dir() and same_index != default_index

    second = upload(other, *copy_with_note(data, tmp_path / "second", "second"))
    card_and_summary(other, second, split)
    second_index = app.index_dir / index_folder_name(uploads / second.removeprefix("upload/"), data.split, PAIRS)
    assert second_index.is_dir()

    third = upload(other, *copy_with_note(data, tmp_path / "third", "third"))     # over the budget
    assert not same_file.parent.exists() and not same_index.exists()             # the oldest, with its index
    assert default_index.is_dir() and data.checkpoint.is_file()                  # the default model's: kept
    assert second_index.is_dir() and (uploads / second.removeprefix("upload/")).is_file()
    assert (uploads / third.removeprefix("upload/")).is_file()
    with pytest.raises(Exception, match=r"tiny.safetensors was removed \(the uploads folder was full and it was "
                                        r"the least recently used; uploads are kept up to [\d.]+ MB in all and 24 h "
                                        r"unused\); upload it again"):
        card_and_summary(user, same, split)                                       # its user is told
    card, _ = card_and_summary(user, data.checkpoint.name, split)                # the default still works
    assert "tiny test model" in card


def test_an_upload_too_large_for_the_memory_budget_is_refused_with_the_figures(app, data, tmp_path):
    from safetensors.torch import load_file

    state = {**load_file(str(data.checkpoint)), "extra.weight": torch.zeros(10 * 2**20)}   # + 40 MB
    torch.save({"model_state_dict": state}, tmp_path / "big.pth.tar")
    client = client_of(app)
    with pytest.raises(Exception, match=r"big.pth.tar: its parameters need 127 MB of memory \(float32\), but only "
                                        r"\d+ MB of the 200 MB model budget is left beside the default model's 87 MB"):
        client.predict([handle_file(str(tmp_path / "big.pth.tar"))], api_name="/upload_checkpoint")
    assert not [p for p in (app.cache_dir / "uploads").iterdir() if p.name.startswith(".staging")]


def test_four_clients_map_videos_while_one_retrieves_and_every_call_is_answered(app, data):
    clip, name, split = ROOT / "examples" / "pair.mp4", data.checkpoint.name, data.split.name
    answers, latencies = {}, []

    def map_video(k: int) -> None:
        client = client_of(app)
        start = time.perf_counter()
        video, *_ = client.predict(name, handle_file(str(clip)), "clip", "jet", 0.5, 0.0, 1, "original", None,
                                   None, api_name="/localize_video")
        path = video["value"]["video"]["path"] if isinstance(video["value"], dict) else video["value"]
        answers[k] = (Path(path).suffix, time.perf_counter() - start)

    mappers = [threading.Thread(target=map_video, args=(k,)) for k in range(4)]
    retriever = client_of(app)
    retriever.predict(name, split, "sound → pictures", "indexed sample", 0, None, None, 4, api_name="/retrieve")
    for thread in mappers:
        thread.start()
    while any(t.is_alive() for t in mappers):
        start = time.perf_counter()
        table = retriever.predict(name, split, "sound → pictures", "indexed sample", len(latencies) % 16,
                                  None, None, 4, api_name="/retrieve")[8]
        latencies.append(time.perf_counter() - start)
        assert len(table["data"]) == 4
        time.sleep(0.2)
    for thread in mappers:
        thread.join()
    assert sorted(answers) == [0, 1, 2, 3] and all(suffix == ".mp4" for suffix, _ in answers.values())
    assert latencies
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "retrieval-under-video-load.json").write_text(json.dumps({
        "load": "4 clients map examples/pair.mp4 (8 s, 120 frames) with the test model; 1 client retrieves",
        "retrieval_s": [round(s, 3) for s in latencies], "median_s": round(statistics.median(latencies), 3),
        "max_s": round(max(latencies), 3),
        "video_s": {str(k): round(s, 2) for k, (_, s) in sorted(answers.items())}}, indent=2))
