"""Retrieval over the index: ranking by s_A, the partner's rank, and maps equal to localize's."""
from __future__ import annotations

import numpy as np
import pytest
from appdata import app_data

from avdemo import metrics as M
from avdemo.benchmarks import read_frame, read_wav
from avdemo.checkpoints import load_model
from avdemo.errors import AVDemoError
from avdemo.index import load_index
from avdemo import retrieval
from avdemo.retrieval import MAX_SIDE, SAVED_FEATURES, FeatureCache, Query, rank_of, retrieve, sample_window


@pytest.fixture
def setup(tmp_path_factory, tiny_config):
    data = app_data(tmp_path_factory.mktemp("appdata"), tiny_config)
    return load_model(data.checkpoint), load_index(data.index)


def test_a_sound_ranks_pictures_by_s_A_with_the_sounds_maps_on_them(setup):
    model, index = setup
    result = retrieve(model, index, Query("audio", sample=3), k=5)
    sims = index.image_emb[index.gallery] @ index.audio_emb[3]
    np.testing.assert_array_equal(result.samples, index.gallery[np.argsort(-sims, kind="stable")[:5]])
    assert result.partner_rank == 1 + (sims > sims[3]).sum()
    assert result.class_match.tolist() == [index.class_names[i] == index.class_names[3] for i in result.samples]
    window = sample_window(index, 3, model)
    for j, i in enumerate(result.samples):
        one = model.localize(read_frame(index.image_paths[i]), window[None])
        np.testing.assert_allclose(result.maps[j], one.maps[0], atol=1e-5)
        np.testing.assert_allclose(result.similarity[j], one.s_A[0], atol=1e-5)


def test_a_picture_ranks_sounds_and_each_sounds_map_lies_on_the_query_picture(setup):
    model, index = setup
    result = retrieve(model, index, Query("image", sample=5), k=4)
    sims = index.audio_emb[index.gallery] @ index.image_emb[5]
    np.testing.assert_array_equal(result.samples, index.gallery[np.argsort(-sims, kind="stable")[:4]])
    frame = read_frame(index.image_paths[5])
    assert all(f is frame or np.array_equal(f, frame) for f in result.frames)
    one = model.localize(frame, sample_window(index, result.samples[2], model)[None])
    np.testing.assert_allclose(result.maps[2], one.maps[0], atol=1e-5)


def test_an_uploaded_copy_of_an_indexed_sound_finds_the_same_pictures(setup):
    model, index = setup
    wav, sample_rate = read_wav(index.audio_paths[7])
    uploaded = retrieve(model, index, Query("audio", wav=wav, sample_rate=sample_rate), k=6)
    indexed = retrieve(model, index, Query("audio", sample=7), k=6)
    np.testing.assert_array_equal(uploaded.samples, indexed.samples)
    np.testing.assert_allclose(uploaded.similarity, indexed.similarity, atol=1e-5)
    assert uploaded.partner_rank is None and uploaded.class_match is None


def test_a_large_uploaded_picture_is_shrunk_and_keeps_its_aspect(setup):
    model, index = setup
    picture = np.random.default_rng(0).integers(0, 255, (900, 1200, 3), dtype=np.uint8)
    result = retrieve(model, index, Query("image", frame=picture), k=3)
    assert result.maps[0].shape == (MAX_SIDE * 3 // 4, MAX_SIDE) and len(result.samples) == 3


def test_queries_without_input_are_refused_with_a_message(setup):
    model, index = setup
    with pytest.raises(AVDemoError, match="upload a sound"):
        retrieve(model, index, Query("audio"))
    with pytest.raises(AVDemoError, match="not in the index"):
        retrieve(model, index, Query("image", sample=len(index)))


def test_a_warm_gallery_answers_without_the_towers_and_the_next_run_reads_it_from_the_index(setup, monkeypatch):
    model, index = setup
    (index.folder / SAVED_FEATURES).unlink(missing_ok=True)
    monkeypatch.setattr(retrieval, "FEATURES", FeatureCache(2**30))
    retrieval.FEATURES.warm(model, index)
    assert (index.folder / SAVED_FEATURES).is_file()
    sample = int(index.gallery[2])                                      # a sounding pair: its features were warmed
    computed = [retrieve(model, index, Query(modality, sample=sample), k=4) for modality in ("audio", "image")]

    def no_tower(*args):
        raise AssertionError("a tower ran")

    monkeypatch.setattr(retrieval, "encode_samples", no_tower)
    monkeypatch.setattr(retrieval, "FEATURES", FeatureCache(2**30))      # a new run of the app
    retrieval.FEATURES.warm(model, index)
    for want, modality in zip(computed, ("audio", "image")):
        got = retrieve(model, index, Query(modality, sample=sample), k=4)
        np.testing.assert_array_equal(got.samples, want.samples)
        np.testing.assert_allclose(np.stack(got.maps), np.stack(want.maps), atol=1e-6)


def test_the_feature_cache_drops_the_least_recently_used_past_its_budget(setup):
    model, index = setup
    one = retrieval.encode_samples(model, index, "image", [0]).nbytes
    cache = FeatureCache(3 * one)
    cache(model, index, "image", [0, 1, 2])
    cache(model, index, "image", [0])                                   # 0 is now the most recent
    cache(model, index, "image", [3])
    held = {key[2] for key in cache._items}
    assert held == {0, 2, 3}


def test_partner_rank_agrees_with_instance_level_recall_on_ties():
    rng = np.random.default_rng(0)
    query = rng.integers(0, 3, (40, 4)).astype(np.float64)        # few distinct values: many ties
    gallery = rng.integers(0, 3, (40, 4)).astype(np.float64)
    sims = query @ gallery.T
    ranks = np.array([rank_of(sims[q], q) for q in range(40)])
    ids = np.arange(40)
    for k in (1, 5, 10):
        recall = M.retrieval_recall(query, gallery, ids, ids, ks=(k,))[f"R@{k}"]
        assert recall == pytest.approx(100 * np.mean(ranks <= k))
