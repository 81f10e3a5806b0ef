"""Cross-modal retrieval over an index: a sound ranks the indexed images, a picture ranks the indexed sounds.

Every result comes with its s_A similarity, whether its class matches the query's, and the heat map of the
query sound on the retrieved image (or of the retrieved sound on the query picture), made as ``localize``
makes it but from the towers' outputs of the indexed samples, which ``FEATURES`` keeps between queries.
"""
from __future__ import annotations

import atexit
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from PIL import Image

from .audio import clip_window, to_model_rate
from .benchmarks import dataset_audio_centre_s, read_frame, read_wav
from .cache import atomic_write
from .errors import AVDemoError
from .index import SampleIndex
from .media import scaled_size
from .metrics import best_match_rank
from .model import AVLocalizer, upsample_maps

MODALITIES = ("audio", "image")   # what the query is: a sound ranks images, a picture ranks sounds
MAX_SIDE = 512                    # uploaded pictures are shrunk to this longest side
FEATURE_CACHE_BYTES = 192 * 2**20  # tower outputs kept for later queries: the default model's f_v of
                                  # 1,500 pictures (128 KiB each) or its f_a of 96,000 sounds
SAVED_FEATURES = "retrieval-features.npz"   # the whole gallery's, in the index folder (next runs read them)


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


class FeatureCache:
    """The towers' outputs for indexed samples, computed on first use and kept for later queries: the visual
    cells f_v (C, h, w) of a sample's picture and the audio vector f_a (C,) of its sound, from which the map
    of any indexed pair is one product. Keyed by the index folder (its name pins the checkpoint and the
    dataset); the least recently used are dropped past ``max_bytes``. Shared by the app's sessions."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[str, str, int], torch.Tensor] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._warming: set[str] = set()       # index folders whose gallery is encoded (or being encoded)
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()

    def __call__(self, model: AVLocalizer, index: SampleIndex, modality: str, samples: Sequence[int]) -> torch.Tensor:
        """f_v (K, C, h, w) of the samples' pictures (``modality="image"``) or f_a (K, C) of their sounds."""
        keys = [(str(index.folder), modality, int(i)) for i in samples]
        with self._lock:
            found = {key: self._items[key] for key in keys if key in self._items}
            for key in found:
                self._items.move_to_end(key)
        missing = [key for key in dict.fromkeys(keys) if key not in found]
        if missing:
            computed = encode_samples(model, index, modality, [key[2] for key in missing])
            found.update(zip(missing, computed))
            self._keep(zip(missing, computed))
        return torch.stack([found[key] for key in keys])

    def warm(self, model: AVLocalizer, index: SampleIndex, batch_size: int = 32) -> None:
        """The gallery's sounds, then its pictures, while they fit in the budget: read from the index folder
        when an earlier run saved them there, else encoded batch by batch (and saved when all fit).
        Afterwards a query by an indexed sample runs no tower."""
        saved = index.folder / SAVED_FEATURES
        if saved.is_file():
            with np.load(saved) as arrays:
                for modality in ("audio", "image"):
                    rows = torch.from_numpy(arrays[modality])
                    self._keep(((str(index.folder), modality, int(i)), row) for i, row in zip(index.gallery, rows))
            return
        for modality in ("audio", "image"):
            item_bytes = 0                          # known after the first batch
            for start in range(0, len(index.gallery), batch_size):
                if self._stop.is_set() or self._bytes + batch_size * item_bytes > self.max_bytes:
                    return
                item_bytes = self(model, index, modality, index.gallery[start:start + batch_size])[0].nbytes
        with self._lock:
            complete = all((str(index.folder), modality, int(i)) in self._items
                           for modality in ("audio", "image") for i in index.gallery)
        if complete:
            arrays = {modality: self(model, index, modality, index.gallery).numpy() for modality in ("audio", "image")}
            try:
                atomic_write(saved, lambda tmp: save_arrays(tmp, arrays))
            except OSError:              # a read-only index folder: they stay in memory only
                pass

    def warm_in_background(self, model: AVLocalizer, index: SampleIndex) -> None:
        """``warm`` in a daemon thread, once per index folder."""
        with self._lock:
            if str(index.folder) in self._warming:
                return
            self._warming.add(str(index.folder))
            thread = threading.Thread(target=self.warm, args=(model, index), daemon=True, name="retrieval-features")
            self._threads.append(thread)
        thread.start()

    def close(self) -> None:
        """Stop warming after the current batch and wait for it (registered to run at exit: a thread still
        inside torch when the interpreter goes down aborts the process)."""
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _keep(self, items: Iterable[tuple[tuple[str, str, int], torch.Tensor]]) -> None:
        with self._lock:
            for key, value in items:
                if key not in self._items:
                    self._items[key] = value.clone()          # not a view that pins its whole batch
                    self._bytes += value.nbytes
            while self._bytes > self.max_bytes and self._items:
                self._bytes -= self._items.popitem(last=False)[1].nbytes


def save_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with open(path, "wb") as f:
        np.savez(f, **arrays)


FEATURES = FeatureCache(FEATURE_CACHE_BYTES)
atexit.register(FEATURES.close)


@torch.inference_mode()
def encode_samples(model: AVLocalizer, index: SampleIndex, modality: str, samples: list[int]) -> torch.Tensor:
    """One batch through one tower: f_v (K, C, h, w) of the samples' pictures or f_a (K, C) of their
    sounds (each heard as the index heard it)."""
    if modality == "image":
        images = torch.cat([model.preprocess_frames(read_frame(index.image_paths[i])) for i in samples])
        return model.encode_image(images.contiguous(memory_format=torch.channels_last)).float().cpu()
    windows = torch.from_numpy(np.stack([sample_window(index, i, model) for i in samples]))
    specs = model.spectrogram(windows.to(model.pixel_mean.device))
    return model.encode_audio(specs.contiguous(memory_format=torch.channels_last)).float().cpu()


@torch.inference_mode()
def query_features(query: Query, index: SampleIndex, model: AVLocalizer) -> tuple[torch.Tensor, np.ndarray]:
    """(the query's tower output: f_a (1, C) of a sound or f_v (1, C, h, w) of a picture; its embedding
    (D,)): the index's embedding for an indexed sample, the model's for an upload."""
    if query.modality not in MODALITIES:
        raise AVDemoError(f"unknown query modality {query.modality!r}; use 'audio' or 'image'")
    if query.sample is not None:
        if not 0 <= query.sample < len(index):
            raise AVDemoError(f"sample {query.sample} is not in the index (0..{len(index) - 1})")
        emb = index.audio_emb if query.modality == "audio" else index.image_emb
        return FEATURES(model, index, query.modality, [query.sample]), emb[query.sample]
    if query.modality == "audio":
        if query.wav is None or query.sample_rate is None:
            raise AVDemoError("upload a sound (or choose an indexed sample) to search with")
        window = clip_window(to_model_rate(query.wav, query.sample_rate, model.cfg.audio), model.cfg.audio)
        specs = model.spectrogram(window[None].to(model.pixel_mean.device))
        audio_vec = model.encode_audio(specs.contiguous(memory_format=torch.channels_last)).float()
        return audio_vec.cpu(), model.embed(audio_vec.new_zeros(1, audio_vec.shape[1], 1, 1), audio_vec)[1][0].cpu().numpy()
    if query.frame is None:
        raise AVDemoError("upload a picture (or choose an indexed sample) to search with")
    images = model.preprocess_frames(query.frame).contiguous(memory_format=torch.channels_last)
    visual_map = model.encode_image(images).float()
    return visual_map.cpu(), model.embed(visual_map, visual_map.new_zeros(1, visual_map.shape[1]))[0][0].cpu().numpy()


@torch.inference_mode()
def pair_maps(model: AVLocalizer, visual_map: torch.Tensor, audio_vec: torch.Tensor,
              frames: list[np.ndarray]) -> tuple[list[np.ndarray], np.ndarray]:
    """The maps S of K (picture, sound) pairs from their features, each at its frame's size, as
    ``localize`` makes them: (K maps (H, W), s_L (K,))."""
    scores = model.scores(visual_map.to(model.pixel_mean.device), audio_vec.to(model.pixel_mean.device))
    maps = scores["maps"].float().cpu()
    if len({f.shape for f in frames}) == 1:
        maps_up = list(upsample_maps(maps, frames[0].shape[:2]).numpy())
    else:                        # frames of other sizes: each map at its own frame's size
        maps_up = [upsample_maps(m[None], f.shape[:2])[0].numpy() for m, f in zip(maps, frames)]
    return maps_up, scores["s_L"].float().cpu().numpy()


def retrieve(model: AVLocalizer, index: SampleIndex, query: Query, k: int = 8) -> Retrieval:
    """The ``k`` sounding pairs of the index nearest to ``query`` in the other modality, with maps. The
    towers run only on what ``FEATURES`` does not hold yet (for an upload: once, on the upload)."""
    if query.sample is None and query.frame is not None:
        query = replace(query, frame=shrink(query.frame, MAX_SIDE))
    own, emb = query_features(query, index, model)
    target = "image" if query.modality == "audio" else "audio"
    similarity, samples = index.search(target, emb[None], k)
    similarity, samples = similarity[0], samples[0]
    query_class = index.class_names[query.sample] if query.sample is not None else ""
    class_match = index.class_names[samples] == query_class if query_class else None
    partner_rank = None
    if query.sample is not None and index.sounding[query.sample]:
        similarities = ((index.image_emb if target == "image" else index.audio_emb) @ emb)[index.gallery]
        partner_rank = rank_of(similarities, int(np.searchsorted(index.gallery, query.sample)))
    found = FEATURES(model, index, target, samples)
    if query.modality == "audio":
        frames = [read_frame(index.image_paths[i]) for i in samples]
        visual_map, audio_vec = found, own.expand(len(samples), -1)
    else:
        frame = read_frame(index.image_paths[query.sample]) if query.sample is not None else query.frame
        frames = [frame] * len(samples)
        visual_map, audio_vec = own.expand(len(samples), -1, -1, -1), found
    maps, s_L = pair_maps(model, visual_map, audio_vec, frames)
    return Retrieval(query=query, samples=samples, similarity=similarity, class_match=class_match,
                     partner_rank=partner_rank, gallery_size=len(index.gallery), frames=frames, maps=maps, s_L=s_L)
