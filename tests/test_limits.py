"""The app's limits as a library, without a server: settings, rate limits, model memory, the build queue
and the upload store (tiny synthetic checkpoints)."""
from __future__ import annotations

import hashlib
import os
import threading
import time

import pytest
import torch
from tqdm import tqdm

from avdemo.budget import ModelCache, parameter_bytes
from avdemo.buildqueue import BuildQueue, Cancelled, check_cancelled
from avdemo.checkpoints import save_model
from avdemo.errors import AVDemoError
from avdemo.index import checkpoint_key, subset
from avdemo.limits import Limits
from avdemo.ratelimit import RateLimiter
from avdemo.ui.indexes import running_bars
from avdemo.uploads import MB, UploadStore, derived_prefixes


def test_limits_come_from_the_environment_with_documented_defaults(monkeypatch):
    assert Limits.from_env() == Limits()
    monkeypatch.setenv("AVDEMO_MAX_UPLOADS_MB", "0.5")
    monkeypatch.setenv("AVDEMO_UPLOAD_INDEX_PAIRS", "50")
    assert (Limits.from_env().max_uploads_mb, Limits.from_env().upload_index_pairs) == (0.5, 50)
    monkeypatch.setenv("AVDEMO_UPLOAD_TTL_H", "soon")
    with pytest.raises(AVDemoError, match="AVDEMO_UPLOAD_TTL_H='soon' is not a number"):
        Limits.from_env()


def test_rate_limit_is_per_visitor_over_a_sliding_window():
    now = [0.0]
    limiter = RateLimiter("uploads", 2, window_s=60, clock=lambda: now[0])
    limiter.check("a"), limiter.check("a"), limiter.check("b")
    with pytest.raises(AVDemoError, match=r"too many uploads: 2 per visitor in 1 minutes; try again in 1 min 0 s"):
        limiter.check("a")
    now[0] = 60.5
    limiter.check("a")


# --- memory ---

def test_parameter_bytes_are_read_without_loading(tmp_path, tiny_model):
    n = sum(t.numel() for t in tiny_model.state_dict().values() if t.is_floating_point())
    ints = sum(t.numel() for t in tiny_model.state_dict().values() if not t.is_floating_point())
    half = save_model(tiny_model, tmp_path / "half.safetensors", dtype=torch.float16)
    assert parameter_bytes(half) == 4 * n + 8 * ints                # float16 on the disk, float32 in memory
    torch.save({"model_state_dict": tiny_model.state_dict(), "optimizer": {"m": torch.zeros(10**6)}},
               tmp_path / "x.pth.tar")
    assert parameter_bytes(tmp_path / "x.pth.tar") == 4 * n + 8 * ints   # the optimizer's state is not loaded


def test_model_cache_keeps_a_few_models_within_the_budget_and_refuses_a_too_large_one():
    sizes = {"default": 40 * MB, "a": 30 * MB, "b": 30 * MB, "c": 50 * MB, "huge": 70 * MB}
    loads = []
    cache = ModelCache(lambda p: loads.append(p) or p, max_models=3, budget_bytes=100 * MB, size=sizes.__getitem__)
    cache.get("default"), cache.pin("default")
    cache.get("a"), cache.get("b")
    assert len(cache) == 3
    cache.get("c")                                       # 40 + 30 + 30 + 50 > 100: a and b go, default stays
    assert list(cache._models) == ["default", "c"] and cache.loaded_bytes() == 90 * MB
    with pytest.raises(AVDemoError, match=r"huge: its parameters need 70 MB of memory \(float32\), but only 60 MB "
                                          r"of the 100 MB model budget is left beside the default model's 40 MB"):
        cache.get("huge")
    assert loads == ["default", "a", "b", "c"]           # refused before it was loaded


# --- build queue ---

def test_builds_run_one_at_a_time_visitors_in_turn_with_their_place_and_cancel():
    gate, order = threading.Event(), []

    def job(name):
        gate.wait(5)
        order.append(name)
        return name

    queue = BuildQueue()
    first = queue.submit("a1", job, "a1", owner="a")
    while queue.position("a1") != 0:
        time.sleep(0.01)
    jobs = {key: queue.submit(key, job, key, owner=owner) for key, owner in (("a2", "a"), ("a3", "a"), ("b1", "b"),
                                                                              ("c1", "c"))}
    assert [queue.position(k) for k in ("a2", "a3", "b1", "c1")] == [3, 4, 1, 2]   # a was served already
    assert queue.submit("b1", job, "other", owner="z") is queue.submit("b1", job, "b1", owner="b")  # one job a key
    with pytest.raises(AVDemoError, match="started by another visitor"):
        queue.cancel("c1", "b")
    assert queue.cancel("b1", "b")
    gate.set()
    assert first.result(5) == "a1"
    with pytest.raises(Cancelled, match="cancelled before it started"):
        jobs["b1"].result(5)
    jobs["a3"].result(5)
    assert order == ["a1", "c1", "a2", "a3"] and queue.position("a3") is None


def test_a_running_build_stops_at_its_next_check_and_is_tried_again_when_asked():
    started = threading.Event()

    def build():
        started.set()
        for _ in range(500):
            time.sleep(0.01)
            check_cancelled()
        return "done"

    queue, refused = BuildQueue(), []
    job = queue.submit("k", build, owner="v")
    assert started.wait(5) and queue.cancel("k", "v")
    with pytest.raises(Cancelled):
        job.result(5)
    check_cancelled()                                  # outside a job: nothing
    again = queue.submit("k", lambda: "again", owner="v", admit=lambda: refused.append("counted"))
    assert again.result(5) == "again" and refused == ["counted"]


def test_the_build_status_reads_the_running_bars_and_skips_one_still_being_constructed():
    """tqdm registers a bar before its ``__init__`` sets ``total``: a status poll from another thread then
    saw a bar without attributes (an AttributeError, found by the browser test)."""
    half_made = tqdm.__new__(tqdm)
    try:
        with open(os.devnull, "w") as sink, tqdm(total=5, desc="indexing", file=sink) as bar:
            bar.update(2)
            assert ("indexing", 2, 5) in running_bars()          # and the half-made bar raised nothing
    finally:
        tqdm._instances.discard(half_made)


def test_an_upload_index_covers_an_evenly_spaced_subset():
    samples = [f"s{i}" if i < 10 else f"n{i}" for i in range(20)]
    picked = subset(samples, 8)
    assert len(picked) == 8 and sum(s.startswith("s") for s in picked) == 4
    assert subset(samples, None) == samples == subset(samples, 50)


# --- uploads ---

def _upload(store: UploadStore, model, name: str, note: str, mb: float = 0.0):
    """An upload folder like the app's, its file ``mb`` MB larger than the model (the card differs by note)."""
    folder = store.root / hashlib.sha256(note.encode()).hexdigest()[:16]
    folder.mkdir(parents=True)
    weights = save_model(model, folder / f"{name}.safetensors", card={"notes": note})
    with open(weights.with_suffix(".json"), "a") as f:
        f.write(" " * int(mb * MB))
    return weights


def test_uploads_past_the_budget_evict_the_least_recently_used_with_its_indexes_not_the_default(tmp_path, tiny_model):
    now = [1000.0]
    index_dir = tmp_path / "index"
    default = save_model(tiny_model, tmp_path / "checkpoints" / "tiny.safetensors", card={"notes": "default"})
    limits = Limits(max_uploads_mb=2.5 * (default.stat().st_size / MB + 0.2), upload_ttl_h=1)   # room for 2
    store = UploadStore(tmp_path / "uploads", index_dir, limits, clock=lambda: now[0])
    store.protect(default)

    def derived(weights, name="test-0123"):           # an index and a mapped example, as the app names them
        index, example = derived_prefixes(weights)
        folders = index_dir / f"{index}{name}", index_dir / "examples" / f"{example}farm"
        for folder in folders:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "index.json").write_text("{}")
        return folders

    same_as_default = _upload(store, tiny_model, "tiny", "default", 0.2)   # same weights and card: same index
    default_indexes = derived(default)
    upload_subset_index, _ = derived(same_as_default, "test-0123-p8")     # an upload's own index of 8 pairs
    assert store.added(same_as_default.parent) == []
    now[0] += 10
    first = _upload(store, tiny_model, "first", "one", 0.2)
    first_indexes = derived(first)
    store.added(first.parent)
    now[0] += 10
    key = f"{first.parent.name}/{first.name}"
    assert store.use(key) == first                      # first used after same_as_default
    now[0] += 10
    second = _upload(store, tiny_model, "second", "two", 0.2)
    removed = store.added(second.parent)
    assert removed == [f"{same_as_default.parent.name}/tiny.safetensors"]
    assert all(p.is_dir() for p in default_indexes)     # shared with the default model: kept
    assert not upload_subset_index.exists()
    assert default.is_file() and first.is_file() and second.is_file()
    now[0] += 10
    third = _upload(store, tiny_model, "third", "three", 0.2)
    assert store.added(third.parent) == [key]           # now the least recently used
    assert not first.parent.exists() and not any(p.exists() for p in first_indexes)
    assert store.total_bytes() <= limits.max_uploads_mb * MB
    with pytest.raises(AVDemoError, match=r"model: first.safetensors was removed \(the uploads folder was full and "
                                          r"it was the least recently used; uploads are kept up to [\d.]+ MB in all "
                                          r"and 1 h unused\); upload it again"):
        store.use(key)
    assert store.use("0123456789abcdef/never.safetensors") is None
    now[0] += 3601 + 10
    store.use(f"{third.parent.name}/{third.name}")
    assert store.enforce() == [f"{second.parent.name}/{second.name}"]    # unused for over an hour
    with pytest.raises(AVDemoError, match=r"second.safetensors was removed \(unused for more than 1 h"):
        store.use(f"{second.parent.name}/{second.name}")
    assert checkpoint_key(default) != checkpoint_key(third)


def test_a_file_over_the_per_file_cap_is_refused(tmp_path):
    store = UploadStore(tmp_path / "uploads", tmp_path / "index", Limits(max_file_mb=1))
    big = tmp_path / "big.pth.tar"
    big.write_bytes(b"\0" * (MB + 1))
    with pytest.raises(AVDemoError, match=r"big.pth.tar: 1.0 MB is over the upload limit of 1 MB per file"):
        store.check_sizes([big])
