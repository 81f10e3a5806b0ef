"""The real app, started on a free port, driven through every named endpoint with gradio_client; what a
user would see (tables, exports, cards, figures, pictures) checked against the index's own numbers.

One app serves the module (started by the ``app`` fixture, stopped at its end); every test has its own
client, so its own session and session state. The clean-up test starts and stops an app of its own."""
from __future__ import annotations

import base64
import csv
import io
import json
import re
import threading
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
from appdata import files_in, start_app, stop_app, three_models
from gradio_client import Client, handle_file
from PIL import Image

from avdemo import metrics as M
from avdemo.benchmarks import read_frame, read_wav
from avdemo.compare import disagreements, summary_rows
from avdemo.index import load_index
from avdemo.perclass import COLUMNS, SIDES, per_class
from avdemo.ui.embedding_tab import ALL_CLASSES
from avdemo.media import frame_at, write_mp4

ENDPOINTS = {"/upload_checkpoint", "/model_cards", "/retrieve", "/retrieval_pick_1", "/retrieval_result",
             "/retrieval_export_csv", "/retrieval_export_json", "/retrieval_refresh", "/embedding_plot",
             "/embedding_sample", "/embedding_pick_image_1", "/embedding_pick_sound_1", "/embedding_export_card",
             "/embedding_refresh", "/fp_measure", "/fp_analyse", "/fp_pick_1", "/fp_card", "/fp_export_csv",
             "/fp_export_json", "/fp_export_card", "/localize_video", "/video_frame", "/per_class", "/compare",
             "/compare_pick", "/compare_card", "/compare_export_csv", "/compare_export_json", "/compare_numbers",
             "/retrieval_pick_3", "/embedding_pick_image_3", "/fp_pick_3"}
PANELS = 4                     # avdemo.ui.models.MAX_MODELS: each tab's outputs per model
SOUND_TO_PICTURES, PICTURE_TO_SOUNDS = "sound → pictures", "picture → sounds"
NON_SOUNDING_FIRST, LOWEST_CIOU_FIRST, FALSE_POSITIVES = ("non-sounding, most confident first",
                                                         "sounding, lowest cIoU first",
                                                         "false positives at the threshold")


# --- fixtures -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def index(data):
    return load_index(data.index)


@pytest.fixture(scope="module")
def app(data, tmp_path_factory):
    """The app of this module's tests, stopped when they are done."""
    running = start_app(data, tmp_path_factory.mktemp("gradio-temp"))
    yield running
    stop_app(running)


@pytest.fixture
def client(app):
    """A new session on the module's app; files it gets are downloaded."""
    c = Client(app.url, verbose=False, download_files=str(app.temp_dir.parent / "downloads"))
    yield c
    c.close()


@pytest.fixture
def ask(data) -> tuple[list[str], str]:
    """The models' and dataset pickers' values (one model): by name, never a server path."""
    return [data.checkpoint.name], data.split.name


@pytest.fixture(scope="module")
def models3(data, tmp_path_factory):
    """The tiny model, the shipped default and an authors'-layout file, with their indexes (built here)."""
    return three_models(data, tmp_path_factory.mktemp("three"))


@pytest.fixture
def three(client, data, models3) -> list[str]:
    """Three models picked in the client's session: the authors'-layout file uploaded; their names."""
    update = client.predict([handle_file(str(models3.authors_file))], api_name="/upload_checkpoint")
    names = [data.checkpoint.name, "default.safetensors", update["value"][-1]]
    assert update["value"] == [data.checkpoint.name, names[2]]     # the upload joins the picked models
    return names


# --- helpers ------------------------------------------------------------------------------------

def select(client: Client, api_name: str, item: int, value=None):
    """Call a ``.select`` endpoint as a click on gallery item ``item`` (0-based) does. A browser sends the
    clicked item as the event's data; ``Client.predict`` has no way to, so this sends it the same way
    (``event_data`` in the queued request), in the client's session (its state)."""
    fn_index = client._infer_fn_index(api_name, None)
    helper = client.new_helper(fn_index, headers={"x-gradio-user": "api"})
    return client.endpoints[fn_index].make_end_to_end_fn(helper)(event_data={"index": item, "value": value})


def _decode(value):
    """Plotly's JSON with its typed arrays ({"dtype", "bdata"[, "shape"]}) decoded to numpy."""
    if isinstance(value, dict):
        if {"dtype", "bdata"} <= set(value):
            array = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
            return array.reshape(value["shape"]) if "shape" in value else array
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def figure(plot: dict) -> tuple[list[dict], dict]:
    """A ``gr.Plot`` value as gradio_client returns it: (traces, layout), arrays as numpy."""
    assert plot["type"] == "plotly"
    fig = _decode(json.loads(plot["plot"]))
    return fig["data"], fig["layout"]


def markers(traces: list[dict]) -> list[dict]:
    """The non-empty scatter-marker traces (points of samples), without the selected sample's star."""
    return [t for t in traces if t.get("mode") == "markers" and len(t["x"])]


def pixels(path: str) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


def as_served(frame: np.ndarray) -> np.ndarray:
    """``frame`` as the app serves an output picture: gr.Image's default format, lossy WebP, written by the
    same Pillow (this virtual environment's) as here, so equal pixels mean an equal picture."""
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, "webp")
    return pixels(io.BytesIO(buffer.getvalue()))


def shown(update: dict, label: str | None = None):
    """The value of a model panel's output, checked to be shown (and labelled with its model)."""
    assert update["visible"], update
    if label is not None:
        assert update["label"].startswith(label + ":"), update
    return update["value"]


def hidden(updates: list[dict]) -> bool:
    return all(u["visible"] is False for u in updates)


def caption_sample(item: dict) -> int:
    return int(re.match(r"#(\d+) ", item["caption"]).group(1))


def make_clip(index, folder: Path) -> Path:
    """2 s at 10 fps: sample 0's picture scrolling right by 4 px a frame, with its sound."""
    frame = read_frame(index.image_paths[0])
    wav, rate = read_wav(index.audio_paths[0])
    return write_mp4(folder / "clip.mp4", [np.roll(frame, 4 * k, axis=1) for k in range(20)], fps=10,
                     audio=wav[: 2 * rate], sample_rate=rate)


# --- tests --------------------------------------------------------------------------------------

def test_every_event_of_the_tabs_is_a_named_endpoint_called_here(client):
    assert ENDPOINTS <= set(client.view_api(return_format="dict", print_info=False)["named_endpoints"])
    source = Path(__file__).read_text()
    calls = set(re.findall(r'api_name="(/\w+)"', source)) | set(re.findall(r'select\(\w+, "(/\w+)"', source))
    assert ENDPOINTS <= calls, f"never called: {sorted(ENDPOINTS - calls)}"


def test_model_card_and_dataset_numbers(client, ask, index):
    out = client.predict(*ask, api_name="/model_cards")
    cards, jsons, summaries = out[:PANELS], out[PANELS:2 * PANELS], out[2 * PANELS:]
    card, card_json, summary = shown(cards[0]), shown(jsons[0]), shown(summaries[0])
    assert hidden(cards[1:] + jsons[1:] + summaries[1:])
    assert "custom (64 px frames, 0.5 s of 8000 Hz audio" in card and "tiny test model" in card
    assert card_json["config"]["image_size"] == 64
    loc = index.info["summary"]["localization"]
    assert f"cIoU@0.5 {loc['ciou_success']:.1f}" in summary and "16 sounding, 16 non-sounding" in summary


def test_three_models_cards_each_with_its_own_numbers(client, three, ask, models3):
    out = client.predict(three, ask[1], api_name="/model_cards")
    cards, summaries = out[:PANELS], out[2 * PANELS:]
    assert "tiny test model" in shown(cards[0]) and "default.safetensors" in shown(cards[1])
    assert "authors_tiny.pth.tar" in shown(cards[2]) and hidden([cards[3], summaries[3]])
    for summary, index in zip(summaries, models3.indexes):
        assert f"cIoU@0.5 {index.info['summary']['localization']['ciou_success']:.1f}" in shown(summary)


def test_retrieval_by_an_indexed_sound_ranks_k_pictures_by_s_A(client, ask, index):
    *panels, table, about, picture, sound = client.predict(
        *ask, SOUND_TO_PICTURES, "indexed sample", 3, None, None, 5, api_name="/retrieve")
    gallery, partner = shown(panels[0]), shown(panels[PANELS])
    assert hidden(panels[1:PANELS] + panels[PANELS + 1:])
    assert len(gallery) == 5 and all(Image.open(item["image"]).size == (224, 224) for item in gallery)
    sims = index.image_emb[index.gallery] @ index.audio_emb[3]
    best = index.gallery[np.argsort(-sims, kind="stable")[:5]]
    assert [row[3] for row in table["data"]] == best.tolist() and {row[0] for row in table["data"]} == {1}
    np.testing.assert_allclose([row[7] for row in table["data"]], np.sort(sims)[::-1][:5], atol=1e-4)
    assert f"ranks **{1 + (sims > sims[3]).sum()}** of 16" in partner and about.startswith(f"**#3 {index.ids[3]}**")
    assert Path(sound).name == index.audio_paths[3].name and Path(picture).name == index.image_paths[3].name
    heard, info = client.predict(*ask, 2, api_name="/retrieval_result")
    assert Path(heard).name == index.audio_paths[best[1]].name and f"#{best[1]} " in info
    exported = client.predict(api_name="/retrieval_export_csv")
    assert [int(r["sample"]) for r in csv.DictReader(open(exported))] == best.tolist()


def test_three_models_rank_the_same_query_each_from_its_own_index(client, three, ask, models3):
    *panels, table, about, picture, sound = client.predict(
        three, ask[1], SOUND_TO_PICTURES, "indexed sample", 3, None, None, 4, api_name="/retrieve")
    assert hidden([panels[3], panels[PANELS + 3]])
    for n, index in enumerate(models3.indexes):
        sims = index.image_emb[index.gallery] @ index.audio_emb[3]
        best = index.gallery[np.argsort(-sims, kind="stable")[:4]]
        gallery = shown(panels[n], Path(three[n]).name)
        assert [item["caption"].split(". ", 1)[1].split("  ")[0].rstrip(" ✓✗") for item in gallery] == \
            [str(index.class_names[i]) for i in best]
        assert [row[3] for row in table["data"] if row[0] == n + 1] == best.tolist()
        assert f"ranks **{1 + (sims > sims[3]).sum()}** of 16" in shown(panels[PANELS + n])
    assert select(client, "/retrieval_pick_3", 1) == 10                # model 3's second picture: row 4 + 4 + 2
    heard, info = client.predict(three, ask[1], 10, api_name="/retrieval_result")
    assert info.startswith("authors_tiny.pth.tar, result 2: ")
    recall = client.predict(three, ask[1], api_name="/retrieval_refresh")[1]
    assert recall["headers"][:4] == ["metric", "tiny.safetensors", "default.safetensors", "authors_tiny.pth.tar"]


def test_a_click_on_a_retrieval_result_plays_it_and_the_json_export_has_the_table(client, ask, index):
    *_, table, _, _, _ = client.predict(*ask, SOUND_TO_PICTURES, "indexed sample", 6, None, None, 4,
                                         api_name="/retrieve")
    sims = index.image_emb[index.gallery] @ index.audio_emb[6]
    best = index.gallery[np.argsort(-sims, kind="stable")[:4]]
    assert select(client, "/retrieval_pick_1", 2) == 3                 # the third picture: result 3
    heard, info = client.predict(*ask, 3, api_name="/retrieval_result")
    assert Path(heard).name == index.audio_paths[best[2]].name
    assert info.startswith(f"tiny.safetensors, result 3: **#{best[2]} {index.ids[best[2]]}**")
    rows = json.load(open(client.predict(api_name="/retrieval_export_json")))
    assert [list(r.values()) for r in rows] == table["data"]          # what the table showed, as JSON
    assert [r["rank"] for r in rows] == [1, 2, 3, 4] and [r["sample"] for r in rows] == best.tolist()
    assert [r["id"] for r in rows] == [index.ids[i] for i in best]
    np.testing.assert_allclose([r["s_A"] for r in rows], sims[np.argsort(-sims, kind="stable")[:4]], atol=1e-4)
    query_class = index.class_names[6]
    assert [r["class match"] for r in rows] == ["yes" if index.class_names[i] == query_class else "no" for i in best]


def test_changing_the_model_or_dataset_resets_the_retrieval_tab(client, ask, index):
    with pytest.raises(Exception, match="search first"):
        client.predict(api_name="/retrieval_export_json")             # a new session has nothing to export
    client.predict(*ask, SOUND_TO_PICTURES, "indexed sample", 5, None, None, 3, api_name="/retrieve")
    assert len(json.load(open(client.predict(api_name="/retrieval_export_json")))) == 3
    picker, recall, *panels = client.predict(*ask, api_name="/retrieval_refresh")
    order = np.concatenate([np.flatnonzero(index.sounding), np.flatnonzero(~index.sounding)])
    assert picker["choices"] == [[index.label(int(i)), int(i)] for i in order]       # sounding pairs first
    assert picker["value"] == order[0] and shown(panels[0]) == [] and hidden(panels[1:PANELS])
    r = index.info["summary"]["retrieval"]
    rows = {row[0]: row[1] for row in recall["data"]}
    for level, direction, name in (("instance", "audio_to_image", "audio→image"), ("class", "image_to_audio", "image→audio")):
        for k in (1, 5, 10):
            assert rows[f"{level} R@{k} {name}"] == round(r[level][direction][f"R@{k}"], 1)
    with pytest.raises(Exception, match="search first"):
        client.predict(api_name="/retrieval_export_json")             # the old results are gone


def test_retrieval_by_uploaded_sound_and_picture(client, ask, index, tmp_path):
    wav, rate = read_wav(index.audio_paths[7])
    sf.write(tmp_path / "query.wav", wav, rate)
    *panels, table, about, _, _ = client.predict(
        *ask, SOUND_TO_PICTURES, "upload", None, handle_file(str(tmp_path / "query.wav")), None, 4,
        api_name="/retrieve")
    sims = index.image_emb[index.gallery] @ index.audio_emb[7]
    assert [row[3] for row in table["data"]] == index.gallery[np.argsort(-sims, kind="stable")[:4]].tolist()
    assert "no partner" in shown(panels[PANELS]) and len(shown(panels[0])) == 4 and "uploaded" in about
    Image.fromarray(read_frame(index.image_paths[2])).save(tmp_path / "query.png")
    *panels, table, _, _, _ = client.predict(
        *ask, PICTURE_TO_SOUNDS, "upload", None, None, handle_file(str(tmp_path / "query.png")), 6,
        api_name="/retrieve")
    sims = index.audio_emb[index.gallery] @ index.image_emb[2]
    assert len(shown(panels[0])) == 6
    np.testing.assert_allclose([row[7] for row in table["data"]], np.sort(sims)[::-1][:6], atol=1e-3)


def embedding_sample(client, ask, *args):
    """The embedding tab's outputs for a chosen sample, grouped: plots, cards, sound, info, image and
    sound neighbours (per panel lists)."""
    out = client.predict(*ask, *args, api_name="/embedding_sample")
    return (out[:PANELS], out[PANELS:2 * PANELS], out[2 * PANELS], out[2 * PANELS + 1],
            out[2 * PANELS + 2:3 * PANELS + 2], out[3 * PANELS + 2:])


def test_embedding_sample_shows_its_card_sound_and_neighbours(client, ask, index):
    plots, cards, sound, info, images, sounds = embedding_sample(client, ask, 4, "ciou", True, True, ALL_CLASSES)
    plot, card, images, sounds = shown(plots[0]), shown(cards[0]), shown(images[0]), shown(sounds[0])
    assert hidden(plots[1:] + cards[1:])
    assert Image.open(card).width > Image.open(card).height
    assert Path(sound).name == index.audio_paths[4].name and info.startswith(f"**#4 {index.ids[4]}**")
    assert len(images) == len(sounds) == 8
    sims = index.image_emb[index.gallery] @ index.image_emb[4]
    others = [i for i in index.gallery[np.argsort(-sims, kind="stable")] if i != 4][:8]
    assert [caption_sample(item) for item in images] == others
    assert all(index.audio_paths[caption_sample(item)] != index.audio_paths[4] for item in sounds)
    traces, _ = figure(plot)
    star = [t for t in traces if t["name"] == "#4"]                    # the chosen sample, starred
    assert len(star) == 1 and star[0]["marker"]["symbol"] == "star"
    np.testing.assert_allclose(np.c_[star[0]["x"], star[0]["y"]], [index.umap_image[4], index.umap_audio[4]],
                               rtol=1e-6)
    png = client.predict(*ask, 4, api_name="/embedding_export_card")
    assert Image.open(png).format == "PNG" and Image.open(png).size == Image.open(card).size


def test_three_models_embedding_spaces_and_cards_come_from_their_own_indexes(client, three, ask, models3):
    plots, cards, _, _, images, _ = embedding_sample(client, [three, ask[1]], 5, "modality", False, True, ALL_CLASSES)
    assert hidden([plots[3], cards[3]])
    for n, index in enumerate(models3.indexes):
        traces, _ = figure(shown(plots[n], Path(three[n]).name))
        dots = next(t for t in markers(traces) if t["name"] == "image")
        np.testing.assert_allclose(np.c_[dots["x"], dots["y"]], index.umap_image[dots["customdata"]], rtol=1e-6)
        star = next(t for t in traces if t["name"] == "#5")
        np.testing.assert_allclose(np.c_[star["x"], star["y"]], [index.umap_image[5], index.umap_audio[5]], rtol=1e-6)
    assert select(client, "/embedding_pick_image_3", 0) == caption_sample(shown(images[2])[0])
    assert not np.array_equal(pixels(shown(cards[0])), pixels(shown(cards[1])))     # each model's own map
    png = client.predict(three, ask[1], 5, api_name="/embedding_export_card")
    assert Image.open(png).height == sum(Image.open(shown(c)).height for c in cards[:3])   # the three cards


def test_a_click_on_a_neighbour_selects_that_sample(client, ask, index):
    _, _, _, _, images, sounds = embedding_sample(client, ask, 9, "class", True, True, ALL_CLASSES)
    images, sounds = shown(images[0]), shown(sounds[0])
    assert select(client, "/embedding_pick_image_1", 2) == caption_sample(images[2])
    assert select(client, "/embedding_pick_sound_1", 5) == caption_sample(sounds[5])
    assert select(client, "/embedding_pick_sound_1", 0) == caption_sample(sounds[0])


def plot_of(client, ask, *args):
    """Model 1's embedding plot, as (traces, layout)."""
    return figure(shown(client.predict(*ask, *args, api_name="/embedding_plot")[0]))


def test_embedding_plot_has_every_image_and_sound_coloured_as_asked(client, ask, index):
    n, images = len(index), len(np.unique(index.thumb_row))
    traces, layout = plot_of(client, ask, None, "modality", True, True, ALL_CLASSES)
    points = markers(traces)
    names = {"circle": "image", "diamond": "sound", "x": "non-sounding sound"}
    assert {t["name"] for t in points} == set(names.values())
    for t in points:          # circles are images at their image's UMAP place, diamonds and crosses sounds
        where = index.umap_image if t["marker"]["symbol"] == "circle" else index.umap_audio
        assert t["name"] == names[t["marker"]["symbol"]]
        np.testing.assert_allclose(np.c_[t["x"], t["y"]], where[t["customdata"]], rtol=1e-6)
        assert (t["marker"]["opacity"] == 1).all()                               # no class highlighted
    drawn = {name: np.concatenate([t["customdata"] for t in points if t["name"] == name]) for name in names.values()}
    assert sorted(index.thumb_row[drawn["image"]]) == list(range(images))       # each picture once
    assert sorted(drawn["sound"]) == np.flatnonzero(index.sounding).tolist()    # every sound, crosses for
    assert sorted(drawn["non-sounding sound"]) == np.flatnonzero(~index.sounding).tolist()   # non-sounding
    colours = {name: {t["marker"]["color"] for t in points if t["name"] == name} for name in names.values()}
    assert all(len(c) == 1 for c in colours.values()) and len(set.union(*colours.values())) == 3
    assert not [t for t in traces if t["name"] == "pairs"]                      # no class chosen: no lines
    assert layout["title"]["text"].startswith(f"UMAP of {n} pairs")

    focus = index.class_names[index.gallery[0]]       # a class highlighted: its pairs joined, others faded
    members = np.flatnonzero(index.class_names == focus)
    traces, layout = plot_of(client, ask, None, "class", True, True, focus)
    pairs = [t for t in traces if t["name"] == "pairs"]
    assert len(pairs) == 1 and len(pairs[0]["x"]) == 3 * len(members) and np.isnan(pairs[0]["x"][2::3]).all()
    np.testing.assert_allclose(pairs[0]["x"][0::3], index.umap_image[members, 0], rtol=1e-6)
    for t in markers(traces):
        np.testing.assert_array_equal(t["marker"]["opacity"] == 1, index.class_names[t["customdata"]] == focus)
    assert f"class {focus} highlighted" in layout["title"]["text"]

    traces, layout = plot_of(client, ask, None, "kind", False, False, ALL_CLASSES)
    points = markers(traces)
    sounding = np.flatnonzero(index.sounding)
    assert {t["name"] for t in points} == {"sounding"} and not [t for t in traces if t["name"] == "pairs"]
    assert sorted(np.concatenate([t["customdata"] for t in points if t["marker"]["symbol"] == "diamond"])) \
        == sounding.tolist()
    assert layout["title"]["text"].startswith(f"UMAP of {len(sounding)} pairs")

    traces, _ = plot_of(client, ask, None, "ciou", False, True, ALL_CLASSES)
    cious = index.scores["ciou"]
    grey = np.concatenate([t["customdata"] for t in markers(traces) if t["name"] == "undefined"])
    assert sorted(grey) == np.flatnonzero(np.isnan(cious)).tolist()             # no cIoU: drawn grey
    scored = [t for t in markers(traces) if t["name"] == "cIoU"]
    for t in scored:
        np.testing.assert_allclose(t["marker"]["color"], cious[t["customdata"]], rtol=1e-6)
        assert t["marker"]["cmin"] == pytest.approx(np.nanmin(cious)) and t["marker"]["cmax"] == pytest.approx(
            np.nanmax(cious))
    assert sum(len(t["x"]) for t in scored) + len(grey) == n + images


def test_changing_the_model_or_dataset_redraws_the_embedding_tab(client, ask, index):
    client.predict(*ask, 4, "class", True, True, ALL_CLASSES, api_name="/embedding_sample")
    picker, *plots, focus = client.predict(*ask, "kind", True, False, api_name="/embedding_refresh")
    plot = shown(plots[0])
    assert hidden(plots[1:])
    assert focus["value"] == ALL_CLASSES and focus["choices"][1:] == [[c, c] for c in sorted(set(index.class_names) - {""})]
    order = np.concatenate([np.flatnonzero(index.sounding), np.flatnonzero(~index.sounding)])
    assert picker["value"] is None and picker["choices"] == [[index.label(int(i)), int(i)] for i in order]
    traces, _ = figure(plot)
    assert not [t for t in traces if t["name"].startswith("#")]                 # no sample starred
    assert {t["name"] for t in markers(traces)} == {"sounding"}                 # the colouring asked
    same, _ = plot_of(client, ask, None, "kind", True, False, ALL_CLASSES)
    assert [(t["name"], len(t["x"])) for t in traces] == [(t["name"], len(t["x"])) for t in same]


def fp_outputs(out: list) -> tuple[list, list, list, dict, dict]:
    """The false-positive tab's outputs after the sliders: plots, rate lines, galleries (per panel), the
    rates table and the listed samples' table."""
    return out[:PANELS], out[PANELS:2 * PANELS], out[2 * PANELS:3 * PANELS], out[3 * PANELS], out[3 * PANELS + 1]


def test_false_positive_numbers_match_the_metrics(client, ask, index):
    out = client.predict(*ask, "s_A", NON_SOUNDING_FIRST, ALL_CLASSES, api_name="/fp_measure")
    sliders, (plots, lines, galleries, rates, table) = out[:PANELS], fp_outputs(out[PANELS:])
    slider, plot, stats, gallery = sliders[0], shown(plots[0]), shown(lines[0]), shown(galleries[0])
    assert hidden(sliders[1:] + plots[1:] + galleries[1:])
    conf = index.confidence("s_A")
    fp = M.false_positive_metrics(conf, index.sounding, index.scores["ciou"])
    assert slider["value"] == round(fp["best_threshold"], 4) and slider["step"] == 0.0001   # 4 decimals shown
    assert slider["minimum"] <= conf.min() < slider["minimum"] + 1e-4
    assert slider["maximum"] - 1e-4 < conf.max() <= slider["maximum"]
    assert f"AP {fp['AP']:.2f}, max-F1 {fp['max_F1']:.2f}" in stats
    assert rates["data"][0][:3] == ["tiny.safetensors", round(fp["AP"], 2), round(fp["max_F1"], 2)]
    worst = np.flatnonzero(~index.sounding)[np.argsort(-conf[~index.sounding], kind="stable")]
    assert [row[2] for row in table["data"]] == worst.tolist() and len(gallery) == 16
    traces, layout = figure(plot)
    histograms = {t["name"]: np.sort(t["x"]) for t in traces if t["type"] == "histogram"}
    kinds = ["sounding"] + sorted(set(index.kinds[~index.sounding]))
    expected = {f"{k} ({(index.kinds == k).sum()})": np.sort(conf[index.kinds == k]) for k in kinds}
    assert histograms.keys() == expected.keys()
    for name, values in expected.items():
        np.testing.assert_allclose(histograms[name], values, rtol=1e-6)
    assert [s["x0"] for s in layout["shapes"]] == pytest.approx([slider["value"]] * 2)   # the threshold marked
    plots, lines, galleries, rates, table = fp_outputs(client.predict(
        *ask, "s_A", LOWEST_CIOU_FIRST, ALL_CLASSES, slider["minimum"], 0, 0, 0, api_name="/fp_analyse"))
    assert "false-positive rate **100.0 %**" in shown(lines[0]) and len(shown(galleries[0])) == 16
    rows = json.load(open(client.predict(api_name="/fp_export_json")))
    assert [r["cIoU"] for r in rows] == sorted(r["cIoU"] for r in rows) and len(rows) == 16
    card, sound, info = client.predict(*ask, 1, api_name="/fp_card")
    assert Image.open(card).size[0] > 3 * 200 and f"#{rows[0]['sample']} " in info
    png = client.predict(*ask, 1, api_name="/fp_export_card")
    assert Image.open(png).format == "PNG"


def test_false_positives_at_a_threshold_the_csv_export_and_a_click_on_one(client, ask, index):
    conf, cious = index.confidence("s_A"), index.scores["ciou"]
    threshold = float(np.sort(conf)[len(conf) // 2])                  # half the samples are confident
    client.predict(*ask, "s_A", NON_SOUNDING_FIRST, ALL_CLASSES, api_name="/fp_measure")   # the slider's range
    _, lines, galleries, rates, table = fp_outputs(client.predict(
        *ask, "s_A", FALSE_POSITIVES, ALL_CLASSES, threshold, 0, 0, 0, api_name="/fp_analyse"))
    confident = conf >= threshold
    well_placed = index.sounding & (np.nan_to_num(cious, nan=-1.0) >= 0.5)
    false_positives = np.flatnonzero(confident & ~well_placed)        # SLAVC: confident, and silent or misplaced
    false_positives = false_positives[np.argsort(-conf[false_positives], kind="stable")]
    assert len(false_positives) > 2
    rows = list(csv.DictReader(open(client.predict(api_name="/fp_export_csv"))))
    assert [int(r["sample"]) for r in rows] == false_positives.tolist()
    assert [row[2] for row in table["data"]] == false_positives.tolist()
    assert [caption_sample(item) for item in shown(galleries[0])] == false_positives[:24].tolist()
    assert {r["outcome"] for r in rows} == {"FP"} and {r["model"] for r in rows} == {"tiny.safetensors"}
    for r in rows:
        i = int(r["sample"])
        assert (r["id"], r["kind"]) == (index.ids[i], index.kinds[i])
        assert float(r["confidence"]) == pytest.approx(conf[i], abs=1e-5)
        if np.isnan(cious[i]):
            assert r["cIoU"] == "" and not index.sounding[i]
        else:
            assert float(r["cIoU"]) == pytest.approx(cious[i], abs=1e-4) and cious[i] < 0.5
    named = dict(zip(rates["headers"], rates["data"][0]))
    for kind in sorted(set(index.kinds[~index.sounding])):
        assert named[f"FPR {kind} %"] == round(100 * confident[index.kinds == kind].mean(), 1)
    assert named["confident %"] == round(100 * confident[index.sounding].mean(), 1)
    assert select(client, "/fp_pick_1", 2) == 3                        # the third picture: position 3
    card, sound, info = client.predict(*ask, 3, api_name="/fp_card")
    i = false_positives[2]
    assert Path(sound).name == index.audio_paths[i].name and info.startswith(f"**#{i} {index.ids[i]}**")


def test_three_models_false_positives_each_at_its_own_threshold(client, three, ask, models3):
    out = client.predict(three, ask[1], "s_A", NON_SOUNDING_FIRST, ALL_CLASSES, api_name="/fp_measure")
    sliders, (plots, lines, galleries, rates, table) = out[:PANELS], fp_outputs(out[PANELS:])
    assert hidden([sliders[3], plots[3], galleries[3]])
    for n, index in enumerate(models3.indexes):
        fp = M.false_positive_metrics(index.confidence("s_A"), index.sounding, index.scores["ciou"])
        assert sliders[n]["value"] == round(fp["best_threshold"], 4) and sliders[n]["visible"]
        assert shown(lines[n]).startswith(f"**{Path(three[n]).name}** at threshold **{sliders[n]['value']:.4f}**")
        assert rates["data"][n][:3] == [Path(three[n]).name, round(fp["AP"], 2), round(fp["max_F1"], 2)]
        traces, _ = figure(shown(plots[n]))
        recall = next(t for t in traces if t["name"] == "recall")
        np.testing.assert_allclose(recall["y"], 100 * np.asarray(fp["curves"]["recall"]), atol=1e-6)
    assert [row[0] for row in table["data"]] == [1] * 16 + [2] * 16 + [3] * 16
    assert select(client, "/fp_pick_3", 0) == 33                       # model 3's first listed sample
    card, _, info = client.predict(three, ask[1], 33, api_name="/fp_card")
    assert info.startswith(f"**#{table['data'][32][2]} ")


def map_video(client, models, clip: Path, *controls) -> tuple[list, list, dict, str, dict]:
    """``/localize_video``'s outputs grouped: videos and frames (per panel), strip, summary, slider."""
    out = client.predict(models, handle_file(str(clip)), *controls, api_name="/localize_video")
    return out[:PANELS], out[PANELS:2 * PANELS], *out[2 * PANELS:]


def video_file(value) -> str:
    return value["video"]["path"] if isinstance(value, dict) else value


def test_video_heat_map_is_an_mp4_with_sound_and_every_frame(client, data, index, tmp_path):
    clip = make_clip(index, tmp_path)
    controls = ("clip", "jet", 0.5, 0.0, 1, "original", None, None)
    videos, frames, strip, info, slider = map_video(client, data.checkpoint.name, clip, *controls)
    assert hidden(videos[1:] + frames[1:])
    with av.open(video_file(shown(videos[0]))) as container:
        assert container.streams.audio and container.streams.video
        assert sum(1 for _ in container.decode(video=0)) == 20
    assert "**Sound heard:** original." in info and "**20 frames** mapped at 224x224, 10 fps" in info
    assert Image.open(shown(frames[0])).size == (224, 224)
    assert (slider["minimum"], slider["maximum"], slider["value"]) == pytest.approx((0.0, 1.9, 0.0))
    traces, layout = figure(strip)
    label = "tiny.safetensors, original"
    assert [t["name"] for t in traces] == [f"peak ({label})", f"mean ({label})", f"s_A ({label})", f"loudness ({label})"]
    for t in traces:
        np.testing.assert_allclose(t["x"], np.arange(20) / 10, atol=1e-3)
        assert len(t["y"]) == 20
    assert np.mean(traces[3]["y"]) > -40                                 # the clip's sound is heard
    assert [s["x0"] for s in layout["shapes"]] == [0.0, 0.0]             # the inspected time marked

    # Fast mode: the same frames, scores close to the exact pipeline's.
    _, _, fast_strip, fast_info, _ = map_video(client, data.checkpoint.name, clip, *controls, True)
    assert "**20 frames** mapped" in fast_info
    fast_traces, _ = figure(fast_strip)
    np.testing.assert_allclose(fast_traces[0]["y"], traces[0]["y"], atol=0.1)         # peak over time

    # The silence counterfactual on the same video: its curves drawn full, the original's kept, thin.
    _, _, strip, info, _ = map_video(client, data.checkpoint.name, clip, "clip", "jet", 0.5, 0.0, 1, "silence",
                                     None, None)
    assert "**Sound heard:** silence." in info
    traces, _ = figure(strip)
    width = {t["name"]: t["line"]["width"] for t in traces}
    curves = ("peak", "mean", "s_A", "loudness")
    assert width == {**{f"{c} (tiny.safetensors, original)": 1 for c in curves},
                     **{f"{c} (tiny.safetensors, silence)": 2 for c in curves}}
    silent = next(t for t in traces if t["name"] == "loudness (tiny.safetensors, silence)")
    assert max(silent["y"]) < -60


def test_three_models_map_the_same_video_side_by_side(client, three, index, tmp_path):
    clip = make_clip(index, tmp_path)
    videos, frames, strip, info, _ = map_video(client, three, clip, "clip", "jet", 0.5, 0.0, 1, "original", None, None)
    assert hidden([videos[3], frames[3]])
    for n in range(3):
        with av.open(video_file(shown(videos[n], Path(three[n]).name))) as container:
            assert sum(1 for _ in container.decode(video=0)) == 20
        assert f"**{Path(three[n]).name}**: **20 frames**" in info
    pictures = [pixels(shown(f)) for f in frames[:3]]
    assert not np.array_equal(pictures[0], pictures[1]) and not np.array_equal(pictures[1], pictures[2])
    traces, _ = figure(strip)
    dashes = {t["name"]: t["line"]["dash"] for t in traces if t["name"].startswith("peak")}
    assert dashes == {"peak (tiny.safetensors, original)": "solid", "peak (default.safetensors, original)": "dash",
                      "peak (authors_tiny.pth.tar, original)": "dashdot"}
    *later, strip = client.predict(1.0, "clip", "jet", 0.5, 0.0, api_name="/video_frame")
    assert all(not np.array_equal(pixels(f), p) for f, p in zip(later[:3], pictures))   # another time, another frame
    assert [s["x0"] for s in figure(strip)[1]["shapes"]] == pytest.approx([1.0, 1.0])


def test_video_frame_controls_draw_as_documented(client, data, index, tmp_path):
    assert client.predict(1.0, "frame", "jet", 0.5, 0.0, api_name="/video_frame") == (
        ({"__type__": "update"},) * (PANELS + 1))                      # nothing mapped yet: nothing changes
    clip = make_clip(index, tmp_path)
    _, _, _, info, _ = map_video(client, data.checkpoint.name, clip, "frame", "jet", 0.5, 0.0, 1, "original", None,
                                 None)
    lo, hi = map(float, re.search(r"S ranges over ([\d.]+)\.\.([\d.]+) in this clip", info).groups())

    def frame(time_s: float, normalisation: str, cmap: str, opacity: float, contour: float = 0.0):
        large, *_, strip = client.predict(time_s, normalisation, cmap, opacity, contour, api_name="/video_frame")
        traces, layout = figure(strip)
        assert [s["x0"] for s in layout["shapes"]] == pytest.approx([time_s] * 2)   # the inspected time marked
        return pixels(large)

    t, original = frame_at(clip, 1.0)
    assert t == pytest.approx(1.0)
    assert np.array_equal(frame(1.0, "frame", "jet", 0.0), as_served(original))  # opacity 0: the frame itself
    assert np.array_equal(frame(1.0, "absolute", "inferno", 0.0), as_served(original))
    assert not np.array_equal(frame(0.5, "frame", "jet", 0.0), as_served(original))  # another time, another frame

    jet, inferno = frame(1.0, "frame", "jet", 0.5), frame(1.0, "frame", "inferno", 0.5)
    assert np.abs(jet - inferno).mean() > 10                               # another colour map, other colours
    assert np.abs(jet - as_served(original)).mean() > 10                   # opacity 0.5 colours the frame
    gray = {n: frame(1.0, n, "gray", 1.0) for n in ("frame", "clip", "absolute")}
    for picture in gray.values():                                          # opacity 1, gray: only the map, grey
        assert np.abs(picture[..., 0] - picture[..., 1]).max() <= 3
        assert np.abs(picture[..., 1] - picture[..., 2]).max() <= 3
    level = {n: picture[..., 1] for n, picture in gray.items()}
    assert level["frame"].min() <= 5 and level["frame"].max() >= 250        # per frame: always 0..1
    assert 255 * lo - 4 <= level["absolute"].min() and level["absolute"].max() <= 255 * hi + 4   # cosine S as is
    assert np.ptp(level["absolute"]) < np.ptp(level["clip"]) <= np.ptp(level["frame"])
    for n in ("clip", "absolute"):                                          # one map, three scales
        assert np.corrcoef(level["frame"].ravel(), level[n].ravel())[0, 1] > 0.98
    assert np.abs(level["frame"] - level["absolute"]).mean() > 20
    white = lambda p: int(((p >= 235).all(-1)).sum())
    assert white(frame(1.0, "frame", "inferno", 0.5, 0.5)) > white(inferno) + 50    # the contour, in white


def test_an_uploaded_checkpoint_is_offered_by_name_and_a_broken_one_is_refused(app, client, ask, data, tmp_path):
    uploads = app.cache_dir / "uploads"
    before = files_in(uploads) if uploads.exists() else set()
    for name, text in (("not-json", "{config"), ("no-config", '{"format": "avdemo/1"}')):
        (tmp_path / name).mkdir()
        (tmp_path / name / "tiny.json").write_text(text)
        with pytest.raises(Exception, match="tiny.json: the model card"):      # said, and nothing kept
            client.predict([handle_file(str(data.checkpoint)), handle_file(str(tmp_path / name / "tiny.json"))],
                           api_name="/upload_checkpoint")
        assert (files_in(uploads) if uploads.exists() else set()) == before
    update = client.predict([handle_file(str(data.checkpoint)), handle_file(str(data.checkpoint.with_suffix(".json")))],
                            api_name="/upload_checkpoint")
    choice = update["value"][-1]
    assert update["value"] == [data.checkpoint.name, choice]            # picked beside the model already picked
    assert re.fullmatch(r"upload/[0-9a-f]{16}/tiny\.safetensors", choice)      # a name, not a server folder
    assert ["uploaded: tiny.safetensors", choice] in update["choices"]
    assert all(not c[1].startswith("/") for c in update["choices"])
    card = shown(client.predict([choice], ask[1], api_name="/model_cards")[0])
    assert "custom (64 px frames" in card
    kept = files_in(uploads)
    (tmp_path / "broken.pth.tar").write_bytes(b"not a checkpoint")
    with pytest.raises(Exception, match="weights-only PyTorch checkpoint"):
        client.predict([handle_file(str(tmp_path / "broken.pth.tar"))], api_name="/upload_checkpoint")
    assert files_in(uploads) == kept                                   # the broken file was not kept
    for bad in ("/etc/passwd", "../data_cache/x.safetensors", "upload/0123456789abcdef/../../x.pth"):
        with pytest.raises(Exception, match="is not one of the choices"):
            client.predict([ask[0][0], bad], ask[1], api_name="/model_cards")
    with pytest.raises(Exception, match="pick at least one model"):
        client.predict([], ask[1], api_name="/model_cards")
    with pytest.raises(Exception, match="a model is picked twice"):
        client.predict([choice, choice], ask[1], api_name="/model_cards")
    with pytest.raises(Exception, match="at most 4 side by side"):
        client.predict([ask[0][0], choice, "default.safetensors", ask[0][0], choice], ask[1], api_name="/model_cards")


def test_two_sessions_at_once_get_their_own_results(app, ask):
    clients = [Client(app.url, verbose=False, download_files=False) for _ in range(2)]
    queries, answers = {0: (3, 3), 1: (9, 4)}, {}

    def session(k: int) -> None:
        sample, n = queries[k]
        *_, table, _, _, _ = clients[k].predict(*ask, SOUND_TO_PICTURES, "indexed sample", sample, None, None, n,
                                                api_name="/retrieve")
        _, info = clients[k].predict(*ask, n, api_name="/retrieval_result")
        answers[k] = (table["data"], info)

    threads = [threading.Thread(target=session, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for c in clients:
        c.close()
    for k, (sample, n) in queries.items():
        rows, info = answers[k]
        assert len(rows) == n and f"result {n}: **#{rows[-1][3]} " in info


@pytest.fixture
def own_app(data, tmp_path):
    """An app for one test, stopped at its end (if the test did not stop it)."""
    temp_dir = tmp_path / "gradio-temp"
    temp_dir.mkdir()
    running = start_app(data, temp_dir)
    yield running
    stop_app(running)


def test_the_sessions_temporary_files_are_deleted_when_the_app_stops(own_app, ask, index, tmp_path):
    app = own_app
    client = Client(app.url, verbose=False, download_files=False)      # file outputs as the server's paths
    wav, rate = read_wav(index.audio_paths[7])
    sf.write(tmp_path / "query.wav", wav, rate)
    gallery = client.predict(*ask, SOUND_TO_PICTURES, "upload", None, handle_file(str(tmp_path / "query.wav")),
                             None, 4, api_name="/retrieve")[0]["value"]
    exported = client.predict(api_name="/retrieval_export_json")
    card = client.predict(*ask, 4, api_name="/embedding_export_card")
    client.close()
    made = [Path(item["image"]["path"]) for item in gallery] + [Path(exported["path"]), Path(card["path"])]
    assert all(p.is_file() and app.temp_dir in p.parents for p in made), made
    assert files_in(app.temp_dir) - app.startup_files - set(made)     # and the uploaded sound
    assert stop_app(app) in (0, 1, -2, 130)
    assert [p for p in made if p.exists()] == []
    left = files_in(app.temp_dir) - app.startup_files                 # the page's initial pictures stay
    # Gradio 6.31's File/UploadButton preprocess opens one NamedTemporaryFile per uploaded file and never
    # uses it (gradio/components/upload_button.py, _process_single_file): empty files, not ours.
    assert [p for p in left if not (p.parent == app.temp_dir and p.stat().st_size == 0)] == []


def test_the_per_class_table_and_chart_of_one_model(client, ask, index):
    table, plot, *sides = client.predict(*ask, None, api_name="/per_class")
    rows = per_class(index)
    assert table["headers"][:7] == list(COLUMNS)
    assert table["headers"][7:] == list(SIDES)                          # our data: switch, ear, eye, bridge
    assert hidden(sides[1:])
    grid, _ = figure(shown(sides[0]))
    assert list(grid[0]["x"]) == list(SIDES) and list(grid[0]["y"]) == [r["class"] for r in rows]
    np.testing.assert_array_equal(np.array(grid[0]["z"], dtype=float),
                                  np.array([[np.nan if r[c] is None else r[c] for c in SIDES] for r in rows]))
    assert [r[0] for r in table["data"]] == [r["class"] for r in rows]
    assert [r[2] for r in table["data"]] == [r["cIoU success"] for r in rows]
    traces, _ = figure(plot)
    assert [t["name"] for t in traces] == ["cIoU success", "pointing game", "R@1 audio→image", "R@1 image→audio"]
    assert list(traces[0]["y"]) == [r["class"] for r in rows]


def test_the_per_class_table_of_three_models_has_a_column_per_model(client, three, ask, models3):
    table, plot, *sides = client.predict(three, ask[1], 0.5, api_name="/per_class")
    labels = [Path(name).name for name in three]
    assert hidden(sides[3:]) and all(s["visible"] for s in sides[:3])
    order = [r["class"] for r in per_class(models3.indexes[0], "s_A", 0.5)]
    assert [r[0] for r in table["data"]] == order                      # the first model's worst first
    for label, index in zip(labels, models3.indexes):
        by_class = {r["class"]: r for r in per_class(index, "s_A", 0.5)}
        for metric in ("cIoU success", "false positives at threshold"):
            column = table["headers"].index(f"{metric} · {label}")
            assert [r[column] for r in table["data"]] == [by_class[c][metric] for c in order]
    assert [t["name"] for t in figure(plot)[0]] == [f"{label}: {m}" for label in labels
                                                    for m in ("cIoU success", "pointing game")]


def test_comparing_models_lists_the_disagreements_of_the_two_picked_both_ways(client, three, ask, models3):
    numbers, side_a, side_b = client.predict(three, ask[1], api_name="/compare_numbers")
    assert (side_a["value"], side_b["value"]) == (1, 2) and [c[1] for c in side_a["choices"]] == [1, 2, 3]
    labels = [Path(name).name for name in three]
    assert numbers["headers"] == ["metric", *labels, f"{labels[1]} - {labels[0]}", f"{labels[2]} - {labels[0]}"]
    assert numbers["data"] == [list(r.values()) for r in summary_rows(models3.indexes, labels)]
    with pytest.raises(Exception, match="pick at least two models"):
        client.predict(*ask, 1, 2, "ciou", "B fixes A", ALL_CLASSES, api_name="/compare")
    with pytest.raises(Exception, match="two different models"):
        client.predict(three, ask[1], 2, 2, "ciou", "B fixes A", ALL_CLASSES, api_name="/compare")
    first, third = models3.indexes[0], models3.indexes[2]
    for direction in ("B fixes A", "B breaks A"):
        _, gallery, table, headline = client.predict(three, ask[1], 1, 3, "ciou", direction, ALL_CLASSES,
                                                     api_name="/compare")
        expected = disagreements(first, third, "ciou", direction)
        assert [r[0] for r in table["data"]] == expected.samples.tolist()
        assert f"{len(expected.samples)} samples" in headline and "B = **authors_tiny.pth.tar**" in headline
        assert [caption_sample(item) for item in gallery] == expected.samples[:24].tolist()
    rows = json.load(open(client.predict(api_name="/compare_export_json")))
    assert [r["sample"] for r in rows] == expected.samples.tolist()
    assert [int(r["sample"]) for r in csv.DictReader(open(client.predict(api_name="/compare_export_csv")))] == \
        expected.samples.tolist()
    if len(expected.samples) >= 2:
        assert select(client, "/compare_pick", 1) == 2
        card_a, card_b, about = client.predict(three, ask[1], 1, 3, 2, api_name="/compare_card")
        assert about.startswith(f"**#{expected.samples[1]} ") and pixels(card_a).shape[0] == pixels(card_b).shape[0]
        assert not np.array_equal(pixels(card_a), pixels(card_b))             # two models, two maps
