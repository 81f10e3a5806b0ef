"""The real app, started on a free port, driven through every endpoint with gradio_client."""
from __future__ import annotations

import csv
import json
import re
import threading
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
from appdata import app_data, files_in, start_app, stop_app
from gradio_client import Client, handle_file
from PIL import Image

from avdemo import metrics as M
from avdemo.benchmarks import read_frame, read_wav
from avdemo.index import load_index
from avdemo.media import write_mp4

ENDPOINTS = {"/upload_checkpoint", "/model_card", "/retrieve", "/retrieval_pick", "/retrieval_result",
             "/retrieval_export_csv", "/retrieval_export_json", "/retrieval_refresh", "/embedding_plot",
             "/embedding_sample", "/embedding_pick_image", "/embedding_pick_sound", "/embedding_export_card",
             "/embedding_refresh", "/fp_measure", "/fp_analyse", "/fp_pick", "/fp_card", "/fp_export_csv",
             "/fp_export_json", "/fp_export_card", "/localize_video", "/video_frame"}
SOUND_TO_PICTURES, PICTURE_TO_SOUNDS = "sound → pictures", "picture → sounds"
_SERVER: dict = {}


@pytest.fixture(scope="module", autouse=True)
def _stop_server_after_the_module():
    yield
    if "app" in _SERVER:
        stop_app(_SERVER.pop("app"))


@pytest.fixture
def data(tmp_path_factory, tiny_config):
    return app_data(tmp_path_factory.mktemp("appdata"), tiny_config)


@pytest.fixture
def app(data, tmp_path_factory):
    if "app" not in _SERVER:
        _SERVER["app"] = start_app(data, tmp_path_factory.mktemp("gradio-temp"))
    return _SERVER["app"]


@pytest.fixture
def client(app):
    return Client(app.url, verbose=False, download_files=str(app.temp_dir.parent / "downloads"))


@pytest.fixture
def index(data):
    return load_index(data.index)


def test_every_event_of_the_four_tabs_is_a_named_endpoint(client):
    assert ENDPOINTS <= set(client.view_api(return_format="dict", print_info=False)["named_endpoints"])


def test_model_card_and_dataset_numbers(client, data, index):
    card, card_json, summary = client.predict(data.checkpoint.name, str(data.split), api_name="/model_card")
    assert "custom (64 px frames, 0.5 s of 8000 Hz audio" in card and "tiny test model" in card
    assert card_json["config"]["image_size"] == 64
    loc = index.info["summary"]["localization"]
    assert f"cIoU@0.5 {loc['ciou_success']:.1f} %" in summary and "16 sounding, 16 non-sounding" in summary


def test_retrieval_by_an_indexed_sound_ranks_k_pictures_by_s_A(client, data, index):
    gallery, table, partner, picture, sound = client.predict(
        data.checkpoint.name, str(data.split), SOUND_TO_PICTURES, "indexed sample", 3, None, None, 5,
        api_name="/retrieve")
    assert len(gallery) == 5 and all(Image.open(item["image"]).size == (224, 224) for item in gallery)
    sims = index.image_emb[index.gallery] @ index.audio_emb[3]
    best = index.gallery[np.argsort(-sims, kind="stable")[:5]]
    assert [row[1] for row in table["data"]] == best.tolist()
    np.testing.assert_allclose([row[5] for row in table["data"]], np.sort(sims)[::-1][:5], atol=1e-4)
    assert f"ranks **{1 + (sims > sims[3]).sum()}** of 16" in partner
    assert Path(sound).name == index.audio_paths[3].name
    heard, info = client.predict(data.checkpoint.name, str(data.split), 2, api_name="/retrieval_result")
    assert Path(heard).name == index.audio_paths[best[1]].name and f"#{best[1]} " in info
    exported = client.predict(api_name="/retrieval_export_csv")
    assert [int(r["sample"]) for r in csv.DictReader(open(exported))] == best.tolist()


def test_retrieval_by_uploaded_sound_and_picture(client, data, index, tmp_path):
    wav, rate = read_wav(index.audio_paths[7])
    sf.write(tmp_path / "query.wav", wav, rate)
    gallery, table, partner, *_ = client.predict(
        data.checkpoint.name, str(data.split), SOUND_TO_PICTURES, "upload", None,
        handle_file(str(tmp_path / "query.wav")), None, 4, api_name="/retrieve")
    sims = index.image_emb[index.gallery] @ index.audio_emb[7]
    assert [row[1] for row in table["data"]] == index.gallery[np.argsort(-sims, kind="stable")[:4]].tolist()
    assert "no partner" in partner and len(gallery) == 4
    Image.fromarray(read_frame(index.image_paths[2])).save(tmp_path / "query.png")
    gallery, table, *_ = client.predict(
        data.checkpoint.name, str(data.split), PICTURE_TO_SOUNDS, "upload", None, None,
        handle_file(str(tmp_path / "query.png")), 6, api_name="/retrieve")
    sims = index.audio_emb[index.gallery] @ index.image_emb[2]
    assert len(gallery) == 6
    np.testing.assert_allclose([row[5] for row in table["data"]], np.sort(sims)[::-1][:6], atol=1e-3)


def test_embedding_sample_shows_its_card_sound_and_neighbours(client, data, index):
    plot, card, sound, info, images, sounds = client.predict(
        data.checkpoint.name, str(data.split), 4, "ciou", True, True, api_name="/embedding_sample")
    assert plot is not None and Image.open(card).width > Image.open(card).height
    assert Path(sound).name == index.audio_paths[4].name and "**#4 " in info
    assert len(images) == len(sounds) == 8
    sims = index.image_emb[index.gallery] @ index.image_emb[4]
    others = [i for i in index.gallery[np.argsort(-sims, kind="stable")] if i != 4][:8]
    assert [int(re.match(r"#(\d+)", item["caption"]).group(1)) for item in images] == others
    png = client.predict(data.checkpoint.name, str(data.split), 4, api_name="/embedding_export_card")
    assert Image.open(png).format == "PNG"
    assert client.predict(data.checkpoint.name, str(data.split), None, "kind", False, False,
                          api_name="/embedding_plot") is not None


def test_false_positive_numbers_match_the_metrics(client, data, index):
    slider, plot, stats, gallery, table = client.predict(
        data.checkpoint.name, str(data.split), "s_A", "non-sounding, most confident first", api_name="/fp_measure")
    fp = M.false_positive_metrics(index.confidence("s_A"), index.sounding, index.scores["ciou"])
    assert slider["value"] == pytest.approx(fp["best_threshold"])
    assert f"AP {fp['AP']:.2f} · max-F1 {fp['max_F1']:.2f}" in stats
    worst = np.flatnonzero(~index.sounding)[np.argsort(-index.confidence("s_A")[~index.sounding], kind="stable")]
    assert [row[0] for row in table["data"]] == worst.tolist() and len(gallery) == 16
    plot, stats, gallery, table = client.predict(
        data.checkpoint.name, str(data.split), "s_A", slider["minimum"], "sounding, lowest cIoU first",
        api_name="/fp_analyse")
    assert "false-positive rate **100.0 %**" in stats and len(gallery) == 16
    rows = json.load(open(client.predict(api_name="/fp_export_json")))
    assert [r["cIoU"] for r in rows] == sorted(r["cIoU"] for r in rows) and len(rows) == 16
    card, sound, info = client.predict(data.checkpoint.name, str(data.split), 1, api_name="/fp_card")
    assert Image.open(card).size[0] > 3 * 200 and f"#{rows[0]['sample']} " in info
    png = client.predict(data.checkpoint.name, str(data.split), 1, api_name="/fp_export_card")
    assert Image.open(png).format == "PNG"


def test_video_heat_map_is_an_mp4_with_sound_and_every_frame(client, data, index, tmp_path):
    frame = read_frame(index.image_paths[0])
    wav, rate = read_wav(index.audio_paths[0])
    frames = [np.roll(frame, 4 * k, axis=1) for k in range(20)]
    clip = write_mp4(tmp_path / "clip.mp4", frames, fps=10, audio=wav[: 2 * rate], sample_rate=rate)
    video, strip, info, slider, large = client.predict(
        data.checkpoint.name, handle_file(str(clip)), "clip", "jet", 0.5, 0.0, 1, "original", None, None,
        api_name="/localize_video")
    with av.open(video) as container:
        assert container.streams.audio and container.streams.video
        assert sum(1 for _ in container.decode(video=0)) == 20
    assert "20 frames" in info and Image.open(large).size == (224, 224)
    large, strip = client.predict(1.0, "absolute", "inferno", 0.7, 0.5, api_name="/video_frame")
    assert Image.open(large).size == (224, 224)


def test_an_uploaded_checkpoint_is_offered_by_name_and_a_broken_one_is_refused(app, client, data, tmp_path):
    update = client.predict([handle_file(str(data.checkpoint)), handle_file(str(data.checkpoint.with_suffix(".json")))],
                            api_name="/upload_checkpoint")
    choice = update["value"]
    assert re.fullmatch(r"upload/[0-9a-f]{16}/tiny\.safetensors", choice)      # a name, not a server folder
    assert ["uploaded: tiny.safetensors", choice] in update["choices"]
    assert all(not c[1].startswith("/") for c in update["choices"])
    card, _, _ = client.predict(choice, str(data.split), api_name="/model_card")
    assert "custom (64 px frames" in card
    uploads = app.cache_dir / "uploads"
    kept = files_in(uploads)
    (tmp_path / "broken.pth.tar").write_bytes(b"not a checkpoint")
    with pytest.raises(Exception, match="weights-only PyTorch checkpoint"):
        client.predict([handle_file(str(tmp_path / "broken.pth.tar"))], api_name="/upload_checkpoint")
    assert files_in(uploads) == kept                                   # the broken file was not kept
    for bad in ("/etc/passwd", "../data_cache/x.safetensors", "upload/0123456789abcdef/../../x.pth"):
        with pytest.raises(Exception, match="not in the list of choices|unknown model"):
            client.predict(bad, str(data.split), api_name="/model_card")


def test_two_sessions_at_once_get_their_own_results(app, data):
    clients = [Client(app.url, verbose=False, download_files=False) for _ in range(2)]
    queries, answers = {0: (3, 3), 1: (9, 4)}, {}

    def session(k: int) -> None:
        sample, n = queries[k]
        _, table, *_ = clients[k].predict(data.checkpoint.name, str(data.split), SOUND_TO_PICTURES, "indexed sample",
                                          sample, None, None, n, api_name="/retrieve")
        _, info = clients[k].predict(data.checkpoint.name, str(data.split), n, api_name="/retrieval_result")
        answers[k] = (table["data"], info)

    threads = [threading.Thread(target=session, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for k, (sample, n) in queries.items():
        rows, info = answers[k]
        assert len(rows) == n and f"Result {n}: **#{rows[-1][1]} " in info


def test_the_sessions_temporary_files_are_deleted_when_the_app_stops(app):
    assert files_in(app.temp_dir) - app.startup_files            # the tests above made some
    assert stop_app(_SERVER.pop("app")) in (0, 1, -2, 130)
    left = files_in(app.temp_dir) - app.startup_files             # the page's initial pictures stay
    # Gradio 6.31's File/UploadButton preprocess opens one NamedTemporaryFile per uploaded file and never
    # uses it (gradio/components/upload_button.py, _process_single_file): empty files, not ours.
    assert [p for p in left if not (p.parent == app.temp_dir and p.stat().st_size == 0)] == []
