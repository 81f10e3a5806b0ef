"""The training loop: one process, or DistributedDataParallel under torchrun (NCCL on GPUs, gloo on CPU).

Each step: views of a batch -> normalised images (the model's ``preprocess_frames``) and spectrograms
(``model.spectrogram``) -> both encoders on all views at once under bf16 autocast -> the multi-positive
InfoNCE -> AdamW/Adam with warmup + cosine. Every ``eval_every`` steps rank 0 evaluates on the
validation split (``avdemo.evaluate.evaluate``) and keeps the best weights by ``select_metric``; the test
split is evaluated once, on the selected weights, for the final model card. No class label is used for
training; only the evaluation reads them.

Files under ``out_dir`` (rank 0 writes, atomically): ``latest.pt`` (everything needed to resume to the
same result), ``best.safetensors`` + card, ``metrics.csv`` (step, tag, value), ``tb/`` (TensorBoard),
and the final model (``final_path``).
"""
from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from avdemo.backbones import load_imagenet_trunk
from avdemo.benchmarks import load_vggss
from avdemo.cache import atomic_write, file_sha256
from avdemo.checkpoints import git_commit, load_model, save_model
from avdemo.config import ModelConfig
from avdemo.errors import AVDemoError
from avdemo.evaluate import card_test_metrics, evaluate, full_report, load_benchmark
from avdemo.model import AVLocalizer, bf16_is_fast

from .augment import ImageAugment
from .config import TrainConfig
from .data import ClipStore, TrainBatchSampler, ViewDataset, list_clips
from .losses import multi_positive_loss, side_by_side, switch_loss
from .features import imagenet_features
from .views import EmbeddingBank, NeighbourTable, cached_side, load_feature_file, negative_windows

RESUME_MAY_CHANGE = {"out_dir", "steps", "num_workers", "cache_frames", "log_every", "save_every", "eval_batch_size",
                     "final_path", "device", "image_views_on"}
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclasses.dataclass(frozen=True)
class Dist:
    """This process's place in the job (world 1 without torchrun)."""

    rank: int
    world: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str) -> Dist:
    """Join the torchrun job if there is one: NCCL with one GPU per process, else gloo on CPU."""
    use_cuda = torch.cuda.is_available() if device == "auto" else device == "cuda"
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist(0, 1, torch.device("cuda" if use_cuda else "cpu"))
    local_rank = int(os.environ["LOCAL_RANK"])
    if use_cuda:
        torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl" if use_cuda else "gloo", timeout=timedelta(hours=2))
    return Dist(dist.get_rank(), world, torch.device(f"cuda:{local_rank}" if use_cuda else "cpu"))


def use_bf16(amp: str, device: torch.device) -> bool:
    """Whether to train under bf16 autocast: ``amp`` "bf16" or "off", or "auto" = where it is fast."""
    return bf16_is_fast(device) if amp == "auto" else amp == "bf16"


def freeze_visual_trunk(model: AVLocalizer, mode: str) -> list[nn.Module]:
    """Stop the gradients of what ``mode`` freezes: the whole visual trunk ("frozen"), its batch norms
    ("frozen_bn") or nothing ("train"). Returns the frozen modules, which must stay in eval mode (their
    running statistics are the pretrained ones)."""
    if mode == "train":
        return []
    frozen = [m for m in model.visual_encoder.modules()
              if mode == "frozen" or isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for module in frozen:
        module.requires_grad_(False)
    return frozen


def parameter_groups(model: AVLocalizer, cfg: TrainConfig) -> list[dict[str, Any]]:
    """The trainable parameters: the visual trunk's at ``lr * trunk_lr_ratio``, the rest at ``lr``."""
    trunk = {id(p) for p in model.visual_encoder.parameters()}
    groups = [{"params": [p for p in model.parameters() if p.requires_grad and id(p) in trunk],
               "lr": cfg.lr * cfg.trunk_lr_ratio},
              {"params": [p for p in model.parameters() if p.requires_grad and id(p) not in trunk], "lr": cfg.lr}]
    return [g for g in groups if g["params"]]


class Towers(nn.Module):
    """Both encoders and the alignment head as one module, so that DDP sees a single forward per step."""

    def __init__(self, model: AVLocalizer):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor, specs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        visual_map, audio_vec = self.model.encode_image(images), self.model.encode_audio(specs)
        if not self.model.cfg.alignment_head:
            return visual_map, audio_vec, None, None
        return (visual_map, audio_vec, *self.model.embed(visual_map, audio_vec))


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Linear warmup, then cosine decay to ``final_lr_ratio``."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps))
    return cfg.final_lr_ratio + (1 - cfg.final_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def flatten(report: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Nested report -> {"localization.ciou": 41.2, ...} (numbers only)."""
    out: dict[str, float] = {}
    for key, value in report.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        elif isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
            out[f"{prefix}{key}"] = float(value)
    return out


def selection_score(metrics: dict[str, float], keys: tuple[str, ...]) -> float:
    missing = [k for k in keys if k not in metrics]
    if missing:
        raise AVDemoError(f"select_metric {missing} not in the evaluation report; available: {sorted(metrics)}")
    return float(sum(metrics[k] for k in keys))


def remove_stale_temp_files(out_dir: Path) -> None:
    """Temp files of writes interrupted by a kill (``atomic_write`` names them ``.<name>.*.tmp``)."""
    for tmp in out_dir.glob(".*.tmp"):
        tmp.unlink()


class MetricLog:
    """metrics.csv (step, tag, value) and, when TensorBoard is installed, its events; on resume, rows after
    the checkpoint go."""

    def __init__(self, out_dir: Path, resume_step: int | None):
        self.csv_path = out_dir / "metrics.csv"
        rows = []
        if resume_step is not None and self.csv_path.exists():
            with self.csv_path.open(newline="") as f:
                rows = [r for r in csv.reader(f) if len(r) == 3 and r[0].isdigit() and int(r[0]) <= resume_step]
        atomic_write(self.csv_path, lambda p: p.write_text(
            "".join(f"{s},{t},{v}\n" for s, t, v in [("step", "tag", "value")] + rows)))
        self.file = self.csv_path.open("a")
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            self.tb = None
            print(f"TensorBoard is not installed: metrics go to {self.csv_path} only "
                  f"(pip install -r requirements-train.txt for TensorBoard event files)", file=sys.stderr)
            return
        # TensorBoard hides earlier events from steps >= purge_step: those of a previous run, or logged
        # after the checkpoint that this run resumes from
        self.tb = SummaryWriter(str(out_dir / "tb"), purge_step=0 if resume_step is None else resume_step + 1)

    def log(self, step: int, values: dict[str, float]) -> None:
        for tag, value in values.items():
            self.file.write(f"{step},{tag},{value:.6g}\n")
            if self.tb is not None:
                self.tb.add_scalar(tag, value, step)
        self.file.flush()

    def close(self) -> None:
        self.file.close()
        if self.tb is not None:
            self.tb.close()


def initial_weights(path: str, model_cfg: ModelConfig) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The weights of one of our checkpoints, in float32, for a run whose model config is ``model_cfg``,
    and what the new card records of it (path, sha256, its training provenance)."""
    start = load_model(path)
    if start.cfg != model_cfg:
        raise AVDemoError(f"init_from={path}: its model config differs from this run's; "
                          f"{start.cfg.to_dict()} != {model_cfg.to_dict()}")
    state = {k: v.float() if v.is_floating_point() else v for k, v in start.state_dict().items()}
    provenance = {k: v for k, v in start.card.get("provenance", {}).items() if k != "train_config"}
    return state, {"path": path, "sha256": file_sha256(Path(path)), "provenance": provenance}


class Trainer:
    """Builds everything from a ``TrainConfig`` and runs it; ``run()`` is the loop."""

    def __init__(self, cfg: TrainConfig, resume: bool = False, command: str | None = None):
        self.cfg, self.dist = cfg, setup_distributed(cfg.device)
        self.out = Path(cfg.out_dir)
        # every command that ran this training, in order (a resumed run appends its own)
        self.commands = [command or " ".join([Path(sys.executable).name, "-m", "train", *sys.argv[1:]])]
        self.bf16 = use_bf16(cfg.amp, self.dist.device)
        torch.manual_seed(cfg.seed)
        self.model = AVLocalizer(cfg.model_config)
        if cfg.init_from is not None:
            state, self.init_card = initial_weights(cfg.init_from, self.model.cfg)
            self.model.load_state_dict(state)
        elif cfg.visual_init == "imagenet":
            load_imagenet_trunk(self.model.visual_encoder, cfg.model.visual_backbone)
        self.frozen = freeze_visual_trunk(self.model, cfg.visual_trunk)
        self.model.to(self.dist.device, memory_format=torch.channels_last)
        self.towers = Towers(self.model)
        self.augment = ImageAugment(cfg.image_aug, cfg.model.image_size)
        if self.dist.world > 1:
            self.towers = DistributedDataParallel(self.towers)

        train_dir = cfg.split_dir(cfg.train_split)
        self.clips = list_clips(train_dir, cfg.train_ids)
        store = ClipStore(self.clips, cached_side(cfg.model.image_size, cfg.image_aug), cfg.model.audio,
                          cfg.cache_frames, progress=self.dist.is_main)
        self.sampler = TrainBatchSampler(len(store), cfg.batch_size, cfg.seed, self.dist.rank, self.dist.world)
        self.images_on_device = cfg.image_views_on == "device" or (cfg.image_views_on == "auto"
                                                                   and self.dist.device.type == "cuda")
        self.loader = DataLoader(ViewDataset(store, cfg, self.images_on_device), batch_sampler=self.sampler,
                                 num_workers=cfg.num_workers,
                                 pin_memory=self.dist.device.type == "cuda", persistent_workers=cfg.num_workers > 0,
                                 generator=torch.Generator())
        self.bank = None
        if cfg.uses_neighbours and cfg.neighbour_features is None:
            self.bank = EmbeddingBank(len(store), cfg.model.embed_dim if cfg.loss_alignment else cfg.model.feat_dim)
        elif cfg.uses_neighbours and cfg.neighbour_features == "imagenet":
            features = imagenet_features(store, self.clips, cfg, self.dist.device)
            self.sampler.neighbours = NeighbourTable.from_features(features, features, cfg.neighbour_k)
        elif cfg.uses_neighbours:
            self.sampler.neighbours = NeighbourTable.from_features(
                *load_feature_file(cfg.neighbour_features, len(store)), cfg.neighbour_k)

        optim = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
        self.optimizer = optim(parameter_groups(self.model, cfg), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: lr_factor(s, cfg))
        self.step = self.epoch = self.batch = 0
        self.best_score, self.best_step, self.train_time_s = -math.inf, -1, 0.0
        if resume and (self.out / "latest.pt").exists():
            self.load_latest()
        elif resume and self.dist.is_main:
            print(f"no {self.out / 'latest.pt'} to resume from: starting a new run", file=sys.stderr)

        self.val_samples = None
        if self.dist.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            remove_stale_temp_files(self.out)
            self.log = MetricLog(self.out, self.step if resume else None)
            if cfg.val_split is not None:
                self.val_samples = load_vggss(cfg.split_dir(cfg.val_split))

    # --- one optimisation step ------------------------------------------------------------------
    def image_views(self, frames: torch.Tensor) -> torch.Tensor:
        """The loader's images (B, V_img, 3, S, S), or cached frames (B, V_img, 3, s, s) made into views
        here (``images_on_device``: the augmented view batched, the others resized) -> (V_img * B, 3, S, S)
        uint8 on the training device, view-major."""
        frames = frames.to(self.dist.device, non_blocking=True)
        if not self.images_on_device:
            return frames.transpose(0, 1).flatten(0, 1)
        kinds = [k for k in self.cfg.image_views if k != "neighbour" or frames.shape[1] == len(self.cfg.image_views)]
        seed = np.random.SeedSequence([self.cfg.seed, self.step, self.dist.rank]).generate_state(1)[0]
        return self.augment.views(frames, kinds, torch.Generator().manual_seed(int(seed)))

    def train_step(self, frames: torch.Tensor, wavs: torch.Tensor, indices: torch.Tensor) -> dict[str, torch.Tensor]:
        """Images or cached frames (``image_views``), audio windows (B, V_aud, T) -> loss terms; updates
        the weights."""
        cfg, device = self.cfg, self.dist.device
        b = frames.shape[0]
        self.model.train()
        for module in self.frozen:
            module.eval()
        images = self.model.preprocess_frames(self.image_views(frames).permute(0, 2, 3, 1))
        if cfg.switch_weight:                       # the composites ride along as one more image view
            seed = np.random.SeedSequence([cfg.seed, self.step, self.dist.rank, 1]).generate_state(1)[0]
            composites, own_left = side_by_side(images[:b], torch.Generator().manual_seed(int(seed)))
            images = torch.cat([images, composites])
        wavs = wavs.transpose(0, 1).flatten(0, 1)
        if cfg.extra_negatives:
            generator = torch.Generator().manual_seed(cfg.seed * 1_000_003 + self.step)
            wavs = torch.cat([wavs, negative_windows(cfg.extra_negatives, wavs.shape[-1], generator)])
        specs = self.model.spectrogram(wavs.to(device, non_blocking=True))
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.bf16):
            visual_maps, audio_vecs, image_emb, audio_emb = self.towers(
                images.contiguous(memory_format=torch.channels_last),
                specs.contiguous(memory_format=torch.channels_last))
        if cfg.switch_weight:
            visual_maps, composite_maps = visual_maps[:-b], visual_maps[-b:]
            image_emb = image_emb[:-b] if image_emb is not None else None
        loss, parts = multi_positive_loss(visual_maps, audio_vecs, image_emb, audio_emb, b, self.model.cfg, cfg,
                                          cfg.extra_negatives)
        if cfg.switch_weight:
            parts["loss_switch"] = switch_loss(composite_maps, audio_vecs[:b], own_left, self.model.cfg, cfg.temperature)
            loss = loss + cfg.switch_weight * parts["loss_switch"]
            parts["loss_switch"] = parts["loss_switch"].detach()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        if self.bank is not None:
            with torch.no_grad():
                v_emb, a_emb = self.model.embed(visual_maps[:b], audio_vecs[:b]) if image_emb is None else (
                    image_emb[:b], audio_emb[:b])
                self.bank.update(*self.gather(indices.to(device), v_emb.float(), a_emb.float()))
        return {"loss": loss.detach(), **parts}

    def gather(self, *tensors: torch.Tensor) -> list[torch.Tensor]:
        """Concatenate each tensor over all ranks (unchanged in a single process)."""
        if self.dist.world == 1:
            return list(tensors)
        out = []
        for t in tensors:
            parts = [torch.empty_like(t) for _ in range(self.dist.world)]
            dist.all_gather(parts, t.contiguous())
            out.append(torch.cat(parts))
        return out

    def refresh_neighbours(self) -> None:
        """New kNN tables from the bank, computed by rank 0 and broadcast so all ranks agree."""
        tables = torch.zeros(2, len(self.clips), self.cfg.neighbour_k, dtype=torch.int64)
        if self.dist.is_main:
            table = self.bank.table(self.cfg.neighbour_k)
            tables = torch.from_numpy(np.stack([table.image, table.audio]))
        if self.dist.world > 1:
            tables = tables.to(self.dist.device)
            dist.broadcast(tables, 0)
        self.sampler.neighbours = NeighbourTable(*tables.cpu().numpy())

    # --- evaluation and checkpoints -------------------------------------------------------------
    def validate(self) -> dict[str, float]:
        """Evaluate on the validation split; keep the weights if they are the best so far. Returns the
        flattened metrics."""
        report, _ = evaluate(self.model, self.val_samples, batch_size=self.cfg.eval_batch_size, progress=False)
        report.pop("per_sample")
        metrics = flatten(report)
        score = selection_score(metrics, self.cfg.select_metric)
        if score > self.best_score:
            self.best_score, self.best_step = score, self.step
            save_model(self.model, self.out / "best.safetensors",
                       card={"provenance": self.provenance(), "metrics": {"val": report}})
        return metrics

    def latest_state(self) -> dict[str, Any]:
        state = {
            "step": self.step, "epoch": self.epoch, "batch": self.batch, "config": json.dumps(self.cfg.to_dict()),
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "rng_cpu": torch.get_rng_state(),
            "best_score": self.best_score, "best_step": self.best_step, "train_time_s": self.train_time_s,
            "commands": json.dumps(self.commands),
        }
        if torch.cuda.is_available():
            state["rng_cuda"] = torch.cuda.get_rng_state_all()
        if self.bank is not None:
            state["bank"] = self.bank.state_dict()
        if self.sampler.neighbours is not None:
            table = self.sampler.neighbours
            state["neighbours"] = torch.from_numpy(np.stack([table.image, table.audio]))
        return state

    def save_latest(self) -> None:
        state = self.latest_state()
        atomic_write(self.out / "latest.pt", lambda p: torch.save(state, p))

    def load_latest(self) -> None:
        path = self.out / "latest.pt"
        state = torch.load(path, map_location="cpu", weights_only=True)
        saved = TrainConfig.from_dict(json.loads(state["config"]))
        changed = sorted(f.name for f in dataclasses.fields(TrainConfig)
                         if getattr(saved, f.name) != getattr(self.cfg, f.name) and f.name not in RESUME_MAY_CHANGE)
        if changed:
            raise AVDemoError(f"{path} was written with another configuration ({', '.join(changed)} differ); "
                              f"resume with the same config (only {', '.join(sorted(RESUME_MAY_CHANGE))} may "
                              f"change) or use another out_dir")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng_cpu"])
        if "rng_cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng_cuda"])
        if self.bank is not None:
            self.bank.load_state_dict(state["bank"])
        if "neighbours" in state:
            self.sampler.neighbours = NeighbourTable(*state["neighbours"].numpy())
        self.step, self.epoch, self.batch = state["step"], state["epoch"], state["batch"]
        self.best_score, self.best_step = state["best_score"], state["best_step"]
        self.train_time_s = state["train_time_s"]
        self.commands = json.loads(state.get("commands", "[]")) + self.commands

    def provenance(self) -> dict[str, Any]:
        cfg = self.cfg
        return {"commands": self.commands, "git_commit": git_commit(), "seed": cfg.seed, "steps": self.step,
                "samples_seen": self.step * cfg.batch_size * self.dist.world,
                "data": {"train": str(cfg.split_dir(cfg.train_split)), "train_ids": cfg.train_ids,
                         "train_clips": len(self.clips), "val": cfg.val_split and str(cfg.split_dir(cfg.val_split)),
                         "test": cfg.test_split and str(cfg.split_dir(cfg.test_split))},
                "labels_used_for_training": False, "processes": self.dist.world, "device": str(self.dist.device),
                "bf16_autocast": self.bf16, "train_time_s": round(self.train_time_s, 1), "train_config": cfg.to_dict(),
                **({"init_from": self.init_card} if cfg.init_from is not None else {})}

    # --- the loop -------------------------------------------------------------------------------
    def run(self, stop_after: int | None = None) -> Path | None:
        """Train to ``cfg.steps`` (or stop after ``stop_after`` steps with a resumable checkpoint), then
        write the final model with its test metrics. Returns the final model's path on rank 0."""
        cfg, is_main = self.cfg, self.dist.is_main
        end = cfg.steps if stop_after is None else min(cfg.steps, stop_after)
        bar = tqdm(total=cfg.steps, initial=self.step, desc="train", disable=not is_main, dynamic_ncols=True)
        sums = torch.zeros(6, dtype=torch.float64)      # loss, loss_L, loss_A, steps, data wait s, step s
        while self.step < end:
            self.sampler.start(self.epoch, self.batch)
            batches = iter(self.loader)
            while self.step < end:
                t0 = time.perf_counter()
                batch = next(batches, None)
                if batch is None:
                    break
                t1 = time.perf_counter()
                out = self.train_step(*batch)
                t2 = time.perf_counter()
                self.step += 1
                self.batch += 1
                if self.batch == len(self.sampler):
                    self.epoch, self.batch = self.epoch + 1, 0
                self.train_time_s += t2 - t0
                sums += torch.tensor([out["loss"].item(), out["loss_L"].item(), out["loss_A"].item(), 1.0,
                                      t1 - t0, t2 - t0], dtype=torch.float64)
                if self.step % cfg.log_every == 0 or self.step == end:
                    self.log_train(sums, bar)
                    sums.zero_()
                refreshed = (self.bank is not None and self.step % cfg.neighbour_every == 0
                             and self.bank.complete)
                if refreshed:
                    self.refresh_neighbours()
                if is_main and self.val_samples is not None and (self.step % cfg.eval_every == 0
                                                                 or self.step == cfg.steps):
                    self.log.log(self.step, {f"val/{k}": v for k, v in self.validate().items()})
                if is_main and (self.step % cfg.save_every == 0 or self.step == end):
                    self.save_latest()
                if refreshed:
                    break                                # the next batches use the new tables
        bar.close()
        final = self.finish() if self.step >= cfg.steps and is_main else None
        if self.dist.world > 1:
            dist.barrier()
            dist.destroy_process_group()
        if is_main:
            self.log.close()
        return final

    def log_train(self, sums: torch.Tensor, bar: tqdm) -> None:
        """Average the interval's losses and timings over all ranks; rank 0 logs them."""
        if self.dist.world > 1:
            dist.all_reduce(sums)
        loss, loss_L, loss_A, n, wait_s, step_s = sums.tolist()
        samples_per_s = n * self.cfg.batch_size / step_s if step_s else 0.0   # n counts all ranks' steps
        values = {"train/loss": loss / n, "train/loss_L": loss_L / n, "train/loss_A": loss_A / n,
                  "train/lr": self.scheduler.get_last_lr()[0], "speed/samples_per_s": samples_per_s * self.dist.world,
                  "speed/data_wait": wait_s / step_s if step_s else 0.0}
        if self.dist.is_main:
            self.log.log(self.step, values)
            bar.update(self.step - bar.n)
            bar.set_postfix(loss=f"{values['train/loss']:.3f}", sps=f"{values['speed/samples_per_s']:.1f}",
                            wait=f"{values['speed/data_wait']:.0%}")

    def finish(self) -> Path:
        """The selected weights (best on val, else the last), rounded to the storage dtype, evaluated on the
        test split; written with a card holding provenance and the val and test metrics."""
        cfg = self.cfg
        validated = self.best_step >= 0
        model = load_model(self.out / "best.safetensors", self.dist.device) if validated else self.model.eval()
        dtype = DTYPES[cfg.final_dtype]
        with torch.no_grad():
            for t in model.state_dict().values():
                if t.is_floating_point():
                    t.copy_(t.to(dtype))
        card = {"provenance": {**self.provenance(), "selected_step": self.best_step if validated else self.step,
                               "select_metric": list(cfg.select_metric)},
                "metrics": {"val": model.card["metrics"]["val"] if validated else None}}
        if cfg.test_split is not None:
            samples = load_benchmark("embedded", cfg.split_dir(cfg.test_split))   # with its negatives
            train_meta = cfg.split_dir(cfg.train_split) / "vggss.json"
            ours = train_meta.is_file() and all("picture_media" in s.meta for s in samples if s.sounding)
            report = full_report(model, samples, train_meta if ours else None, batch_size=cfg.eval_batch_size)
            card["metrics"] |= card_test_metrics(model, samples, report, batch_size=cfg.eval_batch_size)
            self.log.log(self.step, {f"test/{k}": v for k, v in flatten(card["metrics"]["test"]).items()})
        path = Path(cfg.final_path or self.out / "model.safetensors")
        return save_model(model, path, card=card, dtype=dtype)


def train(cfg: TrainConfig, resume: bool = False, stop_after: int | None = None,
          command: str | None = None) -> Path | None:
    """Train with ``cfg``; see ``Trainer``. Returns the final model's path (rank 0, finished runs)."""
    return Trainer(cfg, resume=resume, command=command).run(stop_after=stop_after)
