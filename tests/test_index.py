"""The dataset index: what it stores equals the model and the metrics, its cache key, search, shards."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from appdata import app_data

from avdemo import index as I
from avdemo import metrics as M
from avdemo.benchmarks import load_vggss
from avdemo.checkpoints import load_model, save_model
from avdemo.errors import AVDemoError
from avdemo.evaluate import run_model
from avdemo.model import AVLocalizer


@pytest.fixture
def data(tmp_path_factory, tiny_config):
    return app_data(tmp_path_factory.mktemp("appdata"), tiny_config)


@pytest.fixture
def index(data):
    return I.load_index(data.index)


def test_index_holds_the_model_outputs_and_metrics_of_every_sounding_and_non_sounding_pair(data, index):
    samples = load_vggss(data.split, negatives=data.split / "test_plus_silent.csv")
    assert index.ids == [s.id for s in samples] and len(index) == 2 * 16
    assert set(index.kinds[~index.sounding]) == {"silence", "noise", "offscreen"}
    model = load_model(data.checkpoint)
    preds = run_model(model, samples, progress=False)
    np.testing.assert_allclose(index.image_emb, preds.image_emb, atol=1e-5)
    np.testing.assert_allclose(index.audio_emb, preds.audio_emb, atol=1e-5)
    np.testing.assert_allclose(index.maps_lowres, preds.maps_lowres, atol=1e-5)
    np.testing.assert_allclose(index.scores["s_A"], preds.s_A, atol=1e-5)
    np.testing.assert_allclose(index.confidence("top25"), M.map_confidence(preds.maps, "top25"), atol=1e-5)
    np.testing.assert_allclose(index.confidence("peak"), M.map_confidence(preds.maps, "peak"), atol=1e-5)
    pos = np.flatnonzero(index.sounding)
    gt = np.stack([index.gt_map(i) for i in pos])
    np.testing.assert_allclose(index.scores["ciou"][pos], M.ciou(preds.maps[pos], gt), atol=1e-6)
    assert np.isnan(index.scores["ciou"][~index.sounding]).all()


def test_summary_numbers_equal_the_metrics_on_the_stored_arrays(index):
    summary, pos = index.info["summary"], np.flatnonzero(index.sounding)
    labels = index.class_names[pos]
    expected = M.retrieval_recall(index.audio_emb[pos], index.image_emb[pos], labels, labels)
    assert summary["retrieval"]["class"]["audio_to_image"] == pytest.approx(expected)
    fp = M.false_positive_metrics(index.confidence("s_A"), index.sounding, index.scores["ciou"])
    assert summary["false_positives"]["s_A"]["AP"] == pytest.approx(fp["AP"])
    assert summary["localization"]["ciou_success"] == pytest.approx(M.success_rate(index.scores["ciou"][pos]))


def test_umap_places_each_image_once_and_every_sound(index):
    assert index.umap_image.shape == index.umap_audio.shape == (len(index), 2)
    assert np.isfinite(index.umap_image).all() and np.isfinite(index.umap_audio).all()
    partner = {index.image_paths[i]: i for i in np.flatnonzero(index.sounding)}
    for i in np.flatnonzero(~index.sounding):       # a non-sounding pair shows its partner's picture
        np.testing.assert_array_equal(index.umap_image[i], index.umap_image[partner[index.image_paths[i]]])
        assert index.thumb_row[i] == index.thumb_row[partner[index.image_paths[i]]]
    assert index.thumbs.shape == (16, I.THUMB_SIZE, I.THUMB_SIZE, 3) and index.thumbs.dtype == np.uint8


def test_search_returns_the_brute_force_nearest_sounding_pairs(index):
    query = index.audio_emb[[0, 20]]
    sims, found = index.search("image", query, 5)
    brute = query @ index.image_emb[index.gallery].T
    for q in range(2):
        order = index.gallery[np.argsort(-brute[q], kind="stable")[:5]]
        np.testing.assert_array_equal(found[q], order)
        np.testing.assert_allclose(sims[q], np.sort(brute[q])[::-1][:5], atol=1e-5)
    assert index.sounding[found].all()


def test_the_cache_is_reused_and_a_new_checkpoint_gets_its_own_folder(data, tmp_path, tiny_config, monkeypatch):
    def no_build(*args, **kwargs):
        raise AssertionError("the cached index was rebuilt")

    monkeypatch.setattr(I, "build_index", no_build)
    assert I.ensure_index(data.checkpoint, data.split, data.index_dir).folder == data.index
    torch.manual_seed(1)
    other = save_model(AVLocalizer(tiny_config), tmp_path / "tiny.safetensors")
    assert I.index_folder_name(other, data.split) != data.index.name
    assert I.index_folder_name(data.checkpoint, data.split) == data.index.name


def test_shards_computed_rank_by_rank_merge_into_the_single_process_arrays(data):
    samples = load_vggss(data.split, negatives=data.split / "test_plus_silent.csv")[:11]
    model = load_model(data.checkpoint)
    whole = I.compute_samples(model, samples, batch_size=4, progress=False)
    shards = [I.compute_samples(model, samples[r::3], batch_size=4, progress=False) for r in range(3)]
    merged = I.merge_shards(shards, len(samples))
    for name in I.ARRAYS:
        np.testing.assert_allclose(merged[name], whole[name], atol=1e-5, equal_nan=True)


def test_searcher_is_flat_for_small_galleries_and_ivf_above_the_limit(monkeypatch):
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(300, 16)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    assert type(I.make_searcher(emb)).__name__ == "IndexFlatIP"
    monkeypatch.setattr(I, "FLAT_MAX", 100)
    ivf = I.make_searcher(emb)
    assert type(ivf).__name__ == "IndexIVFFlat" and ivf.ntotal == 300
    _, rows = ivf.search(emb[:20], 1)
    assert (rows[:, 0] == np.arange(20)).mean() >= 0.9


def test_load_index_refuses_a_folder_that_is_not_an_index(tmp_path):
    with pytest.raises(AVDemoError, match="not an index folder"):
        I.load_index(tmp_path)
