"""Cross-modal retrieval over an index: a sound ranks the indexed images, a picture ranks the indexed sounds.

Every result comes with its s_A similarity, whether its class matches the query's, and the heat map of the
query sound on the retrieved image (or of the retrieved sound on the query picture), from ``localize``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from .audio import clip_window, to_model_rate
from .benchmarks import dataset_audio_centre_s, read_frame, read_wav
from .errors import AVDemoError
from .index import SampleIndex
from .media import scaled_size
from .metrics import best_match_rank
from .model import AVLocalizer

MODALITIES = ("audio", "image")   # what the query is: a sound ranks images, a picture ranks sounds
MAX_SIDE = 512                    # uploaded pictures are shrunk to this longest side


@dataclass
class Query:
    """A sound or a picture to search with: an indexed sample's, or an uploaded one."""

    modality: str                      # "audio" or "image"
    sample: int | None = None          # an index row, or
    frame: np.ndarray | None = None    # an uploaded picture, uint8 (H, W, 3), or
    wav: np.ndarray | None = None      # an uploaded sound (T,) or (T, C) at ``sample_rate``
    sample_rate: int | None = None


@dataclass
class Retrieval:
    """The top K results of a query, best first."""

    query: Query
    samples: np.ndarray          # (K,) index rows of the results
    similarity: np.ndarray       # (K,) s_A between the query and each result
    class_match: np.ndarray | None  # (K,) bool; None when the query has no class (an upload)
    partner_rank: int | None     # 1-based rank of the query's own partner among all sounding pairs
    gallery_size: int
    frames: list[np.ndarray]     # the picture under each map: the retrieved image, or the query picture
    maps: list[np.ndarray]       # K raw cosine maps S (H, W) of each result's (sound, image) pair
    s_L: np.ndarray              # (K,)


def sample_window(index: SampleIndex, i: int, model: AVLocalizer) -> np.ndarray:
    """The audio window the index used for sample ``i`` (its dataset's, at the model's rate)."""
    wav = to_model_rate(*read_wav(index.audio_paths[i]), model.cfg.audio)
    return clip_window(wav, model.cfg.audio, dataset_audio_centre_s(index.root)).numpy()


def shrink(frame_uint8: np.ndarray, max_side: int) -> np.ndarray:
    """The picture scaled down (aspect kept) so that its longest side is at most ``max_side``."""
    h, w = frame_uint8.shape[:2]
    size = scaled_size(w, h, max_side)
    return frame_uint8 if size == (w, h) else np.array(Image.fromarray(frame_uint8).resize(size, Image.BICUBIC))


def rank_of(similarities: np.ndarray, target: int) -> int:
    """1-based rank of item ``target`` when items are sorted by similarity (ties by position, the rule
    of ``avdemo.metrics.retrieval_recall``)."""
    return 1 + int(best_match_rank(similarities, np.arange(len(similarities)) == target)[0])


def query_inputs(query: Query, index: SampleIndex, model: AVLocalizer) -> tuple[np.ndarray, np.ndarray]:
    """(embedding (D,), the query's frame or window): the index's embedding for a sample, or the
    model's for an upload (paired with a blank window or picture, which does not change it)."""
    if query.modality not in MODALITIES:
        raise AVDemoError(f"unknown query modality {query.modality!r}; use 'audio' or 'image'")
    if query.sample is not None:
        if not 0 <= query.sample < len(index):
            raise AVDemoError(f"sample {query.sample} is not in the index (0..{len(index) - 1})")
        if query.modality == "audio":
            return index.audio_emb[query.sample], sample_window(index, query.sample, model)
        return index.image_emb[query.sample], read_frame(index.image_paths[query.sample])
    size = model.cfg.image_size
    if query.modality == "audio":
        if query.wav is None or query.sample_rate is None:
            raise AVDemoError("upload a sound (or choose an indexed sample) to search with")
        window = clip_window(to_model_rate(query.wav, query.sample_rate, model.cfg.audio), model.cfg.audio).numpy()
        loc = model.localize(np.zeros((size, size, 3), np.uint8), window[None])
        return loc.audio_emb[0], window
    if query.frame is None:
        raise AVDemoError("upload a picture (or choose an indexed sample) to search with")
    frame = shrink(query.frame, MAX_SIDE)
    loc = model.localize(frame, np.zeros((1, model.cfg.audio.window_samples), np.float32))
    return loc.image_emb[0], frame


def retrieve(model: AVLocalizer, index: SampleIndex, query: Query, k: int = 8) -> Retrieval:
    """The ``k`` sounding pairs of the index nearest to ``query`` in the other modality, with maps."""
    emb, own = query_inputs(query, index, model)
    target = "image" if query.modality == "audio" else "audio"
    similarity, samples = index.search(target, emb[None], k)
    similarity, samples = similarity[0], samples[0]
    query_class = index.class_names[query.sample] if query.sample is not None else ""
    class_match = index.class_names[samples] == query_class if query_class else None
    partner_rank = None
    if query.sample is not None and index.sounding[query.sample]:
        gallery_emb = (index.image_emb if target == "image" else index.audio_emb)[index.gallery]
        partner_rank = rank_of(gallery_emb @ emb, int(np.searchsorted(index.gallery, query.sample)))
    if query.modality == "audio":
        frames = [read_frame(index.image_paths[i]) for i in samples]
        if len({f.shape for f in frames}) == 1:
            loc = model.localize(np.stack(frames), own[None])
            maps, s_L = list(loc.maps), loc.s_L
        else:                    # frames of other sizes: each map at its own frame's size
            locs = [model.localize(frame, own[None]) for frame in frames]
            maps, s_L = [loc.maps[0] for loc in locs], np.array([loc.s_L[0] for loc in locs])
    else:
        windows = np.stack([sample_window(index, i, model) for i in samples])
        frames = [own] * len(samples)
        loc = model.localize(np.repeat(own[None], len(samples), axis=0), windows)
        maps, s_L = list(loc.maps), loc.s_L
    return Retrieval(query=query, samples=samples, similarity=similarity, class_match=class_match,
                     partner_rank=partner_rank, gallery_size=len(index.gallery), frames=frames, maps=maps, s_L=s_L)
