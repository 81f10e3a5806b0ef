"""Training clips (one frame + its audio), their views, and the order in which batches visit them.

Two layouts: the VGG-SS layout (``frames/<id>.jpg``, ``audio/<id>.wav``, ids from ``vggss.json``, as the
embedded scenes are written) and VGGSound-style folders (``frames/`` + ``audio/`` with an id list such as
``vggss_144k.txt``). Only ids and media paths are read: training never sees class labels or boxes.
"""
from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler
from tqdm import tqdm

from avdemo.audio import to_model_rate
from avdemo.benchmarks import frame_path, read_frame, read_ids, read_wav
from avdemo.config import AudioConfig
from avdemo.errors import AVDemoError

from .config import TrainConfig
from .augment import augment_frame, frame_transform, resize_square
from .distributed import Dist
from .views import NeighbourTable, audio_views, cached_side


@dataclass(frozen=True)
class Clip:
    id: str
    image_path: Path
    audio_path: Path


def list_clips(root: Path, ids_file: str | None = None) -> list[Clip]:
    """The clips of a training folder: ids from an id list (first column; any label column is ignored)
    or from ``vggss.json`` (its ``file`` fields only). Names the first missing file, if any."""
    if ids_file is not None:
        ids = [clip_id for clip_id, _ in read_ids(root / ids_file)]
    elif (root / "vggss.json").is_file():
        ids = [entry["file"] for entry in json.loads((root / "vggss.json").read_text())]
    else:
        raise AVDemoError(f"{root}: no vggss.json; name an id list file with train_ids=...")
    if not ids:
        raise AVDemoError(f"{root}: no training clips")
    clips = [Clip(i, frame_path(root, i), root / "audio" / f"{i}.wav") for i in ids]
    missing = [p for c in clips for p in (c.image_path, c.audio_path) if not p.is_file()]
    if missing:
        raise AVDemoError(f"{len(missing)} training files are missing; the first is {missing[0]} (expected "
                          f"frames/<id>.jpg and audio/<id>.wav under {root})")
    return clips


class ClipStore:
    """Decoded media: frames as uint8 (3, side, side), audio as int16 at the model rate.

    With ``cache=True`` everything is decoded once (a thread per core, up to 8) and kept in memory; data
    loader workers share it copy-on-write. Without it each access decodes from disk (for data that does not fit).
    """

    def __init__(self, clips: list[Clip], side: int, audio_cfg: AudioConfig, cache: bool, progress: bool = False):
        self.clips, self.side, self.audio_cfg = clips, side, audio_cfg
        self.frames: list[torch.Tensor] | None = None
        self.wavs: list[torch.Tensor] | None = None
        if cache:
            with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
                decoded = list(tqdm(pool.map(self._decode, range(len(clips))), total=len(clips),
                                    desc="decoding clips", disable=not progress, leave=False))
            self.frames, self.wavs = [f for f, _ in decoded], [w for _, w in decoded]

    def __len__(self) -> int:
        return len(self.clips)

    def _decode(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        clip = self.clips[i]
        frame = torch.from_numpy(read_frame(clip.image_path).copy()).permute(2, 0, 1)
        wav, sr = read_wav(clip.audio_path)
        wav = to_model_rate(wav, sr, self.audio_cfg).clamp(-1, 1)
        return resize_square(frame, self.side).contiguous(), (wav * 32767).round().to(torch.int16)

    def get(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(frame uint8 (3, side, side), waveform float32 (T,))."""
        frame, wav = (self.frames[i], self.wavs[i]) if self.frames is not None else self._decode(i)
        return frame, wav.float() / 32767


class ViewDataset(Dataset):
    """Item ``(i, image_neighbour, audio_neighbour, seed)`` -> the configured views of sample i: images
    uint8 (V_img, 3, S, S), or with ``images_on_device`` the cached frames (V_img, 3, s, s) that the
    training step resizes and augments batched (``train.augment``); audio windows float32 (V_aud, T);
    and i. A neighbour of -1 (no kNN table yet) leaves the neighbour view out. All randomness comes from
    ``seed``."""

    def __init__(self, store: ClipStore, cfg: TrainConfig, images_on_device: bool = False):
        self.store, self.cfg, self.images_on_device = store, cfg, images_on_device
        self.size = cfg.model.image_size
        self.augment = frame_transform(cfg.image_aug, self.size)

    def __len__(self) -> int:
        return len(self.store)

    def __getitem__(self, item: tuple[int, int, int, int]) -> tuple[torch.Tensor, torch.Tensor, int]:
        i, image_nn, audio_nn, seed = item
        g = torch.Generator().manual_seed(seed)
        frame, wav = self.store.get(i)
        kinds = [k for k in self.cfg.image_views if k != "neighbour" or image_nn >= 0]
        frames = [self.store.get(image_nn)[0] if kind == "neighbour" else frame for kind in kinds]
        if not self.images_on_device:
            frames = [augment_frame(self.augment, f, int(torch.randint(2**62, (), generator=g)))
                      if kind == "augmented" else resize_square(f, self.size) for kind, f in zip(kinds, frames)]
        kinds = [k for k in self.cfg.audio_views if k != "neighbour"]
        mix_wav = self.store.get(int(torch.randint(len(self.store), (), generator=g)))[1] \
            if self.cfg.audio_aug.mix_p > 0 and "augmented" in kinds else None
        windows = [audio_views(wav, kinds, self.cfg.model.audio, self.cfg.audio_aug, g, mix_wav)]
        if "neighbour" in self.cfg.audio_views and audio_nn >= 0:
            windows.append(audio_views(self.store.get(audio_nn)[1], ["original"], self.cfg.model.audio,
                                       self.cfg.audio_aug, g))
        return torch.stack(frames), torch.cat(windows), i


class TrainBatchSampler(Sampler):
    """Batches of items for this process: the order of ``DistributedSampler`` (shuffled per epoch, split
    across ranks), each item with its neighbour picks and augmentation seed drawn from
    ``(seed, epoch, sample index)``. The same batches come out whatever the number of loader workers,
    and iteration can start at any (epoch, batch): this is the sampler position a checkpoint stores."""

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1):
        self.order = DistributedSampler(range(n), num_replicas=world_size, rank=rank, shuffle=True, seed=seed,
                                        drop_last=True)
        self.batch_size, self.seed = batch_size, seed
        self.epoch, self.first_batch = 0, 0
        self.neighbours: NeighbourTable | None = None
        if len(self) == 0:
            raise AVDemoError(f"{n} training clips are fewer than one batch of {batch_size} per process "
                              f"({world_size} processes)")

    def __len__(self) -> int:
        return len(self.order) // self.batch_size

    def start(self, epoch: int, batch: int) -> None:
        """The next iteration yields batches ``batch, batch + 1, ...`` of ``epoch``."""
        self.epoch, self.first_batch = epoch, batch

    def __iter__(self):
        self.order.set_epoch(self.epoch)
        order = list(self.order)
        for b in range(self.first_batch, len(self)):
            batch = []
            for i in order[b * self.batch_size:(b + 1) * self.batch_size]:
                rng = np.random.default_rng([self.seed, self.epoch, i])
                item_seed = int(rng.integers(2**62))
                image_nn, audio_nn = self.neighbours.pick(i, rng) if self.neighbours is not None else (-1, -1)
                batch.append((i, image_nn, audio_nn, item_seed))
            yield batch


class TrainData(NamedTuple):
    clips: list[Clip]
    store: ClipStore
    sampler: TrainBatchSampler
    loader: DataLoader           # (images or cached frames, audio windows, sample indices) per batch


def build_data(cfg: TrainConfig, place: Dist, images_on_device: bool) -> TrainData:
    """This process's training data: the clips of the training split, decoded (and cached when
    ``cfg.cache_frames``), and their batches in the sampler's order."""
    clips = list_clips(cfg.split_dir(cfg.train_split), cfg.train_ids)
    store = ClipStore(clips, cached_side(cfg.model.image_size, cfg.image_aug), cfg.model.audio, cfg.cache_frames,
                      progress=place.is_main)
    sampler = TrainBatchSampler(len(store), cfg.batch_size, cfg.seed, place.rank, place.world)
    loader = DataLoader(ViewDataset(store, cfg, images_on_device), batch_sampler=sampler,
                        num_workers=cfg.num_workers, pin_memory=place.device.type == "cuda",
                        persistent_workers=cfg.num_workers > 0, generator=torch.Generator())
    return TrainData(clips, store, sampler, loader)
