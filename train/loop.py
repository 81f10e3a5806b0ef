"""The training loop: one process, or DistributedDataParallel under torchrun (NCCL on GPUs, gloo on CPU).

Each step: views of a batch -> normalised images (the model's ``preprocess_frames``) and spectrograms
(``model.spectrogram``) -> both encoders on all views at once under bf16 autocast -> the multi-positive
InfoNCE -> AdamW/Adam with warmup + cosine. Every ``eval_every`` steps rank 0 evaluates on the
validation split (``avdemo.evaluate.evaluate``) and keeps the best weights by ``select_metric``; the test
split is evaluated once, on the selected weights, for the final model card. No class label is used for
training; only the evaluation reads them.

Files under ``out_dir`` (rank 0 writes, atomically): ``latest.pt`` (everything needed to resume to the
same result), ``best.safetensors`` + card, ``metrics.csv`` (step, tag, value), ``tb/`` (TensorBoard),
and the final model (``final_path``). The parts are built by ``model_setup`` (model and optimiser),
``view_setup`` (image views, neighbour tables), ``data`` (clips and batches), ``validation`` (evaluations)
and ``checkpointing`` (``latest.pt``).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from avdemo.checkpoints import git_commit, load_model, save_model

from .checkpointing import DTYPES, Resumable, load_latest, remove_stale_temp_files, round_weights, save_latest
from .config import TrainConfig
from .data import build_data
from .distributed import gather, setup_distributed
from .losses import multi_positive_loss, side_by_side, switch_loss
from .metric_log import MetricLog
from .model_setup import build_model, build_optimiser, use_bf16
from .validation import Validation, final_test_metrics, flatten
from .view_setup import ImageViews, neighbour_source
from .views import NeighbourTable, negative_windows


class Trainer:
    """Builds everything from a ``TrainConfig`` and runs it; ``run()`` is the loop."""

    def __init__(self, cfg: TrainConfig, resume: bool = False, command: str | None = None):
        self.cfg, self.dist, self.out = cfg, setup_distributed(cfg.device), Path(cfg.out_dir)
        # every command that ran this training, in order (a resumed run appends its own)
        self.commands = [command or " ".join([Path(sys.executable).name, "-m", "train", *sys.argv[1:]])]
        self.bf16 = use_bf16(cfg.amp, self.dist.device)
        self.model, self.towers, self.frozen, self.init_card = build_model(cfg, self.dist)   # seeds torch
        self.views = ImageViews(cfg, self.dist)
        data = build_data(cfg, self.dist, self.views.on_device)
        self.clips, self.sampler, self.loader = data.clips, data.sampler, data.loader
        self.bank = neighbour_source(cfg, data, self.dist.device)
        self.optimizer, self.scheduler = build_optimiser(cfg, self.model)
        self.validation = Validation(cfg, self.out, self.dist.is_main)
        self.step = self.epoch = self.batch = 0
        self.train_time_s = 0.0
        if resume and (self.out / "latest.pt").exists():
            self.load_latest()
        elif resume and self.dist.is_main:
            print(f"no {self.out / 'latest.pt'} to resume from: starting a new run", file=sys.stderr)
        if self.dist.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            remove_stale_temp_files(self.out)
            self.log = MetricLog(self.out, self.step if resume else None)

    # --- one optimisation step ------------------------------------------------------------------
    def image_views(self, frames: torch.Tensor) -> torch.Tensor:
        """This step's image views of the loader's batch (``ImageViews``): (V_img * B, 3, S, S) uint8."""
        return self.views(frames, self.step)

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
                self.bank.update(*gather(self.dist, indices.to(device), v_emb.float(), a_emb.float()))
        return {"loss": loss.detach(), **parts}

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
    def counters(self) -> dict[str, Any]:
        """The run's position and best so far, as ``latest.pt`` stores them."""
        return {"step": self.step, "epoch": self.epoch, "batch": self.batch, "best_score": self.validation.best_score,
                "best_step": self.validation.best_step, "train_time_s": self.train_time_s}

    def resumable(self) -> Resumable:
        return Resumable(self.model, self.optimizer, self.scheduler, self.bank)

    def save_latest(self) -> None:
        save_latest(self.out / "latest.pt", self.cfg, self.counters(), self.commands, self.resumable(),
                    self.sampler.neighbours)

    def load_latest(self) -> None:
        counters, commands, neighbours = load_latest(self.out / "latest.pt", self.cfg, self.resumable())
        if neighbours is not None:
            self.sampler.neighbours = neighbours
        self.step, self.epoch, self.batch = counters["step"], counters["epoch"], counters["batch"]
        self.validation.best_score, self.validation.best_step = counters["best_score"], counters["best_step"]
        self.train_time_s = counters["train_time_s"]
        self.commands = commands + self.commands

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
                if self.validation.due(self.step):
                    metrics = self.validation.validate(self.model, self.step, self.provenance)
                    self.log.log(self.step, {f"val/{k}": v for k, v in metrics.items()})
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
        cfg, validated = self.cfg, self.validation.best_step >= 0
        model = load_model(self.validation.path, self.dist.device) if validated else self.model.eval()
        round_weights(model, cfg.final_dtype)
        selected = self.validation.best_step if validated else self.step
        card = {"provenance": {**self.provenance(), "selected_step": selected,
                               "select_metric": list(cfg.select_metric)},
                "metrics": {"val": model.card["metrics"]["val"] if validated else None}}
        if cfg.test_split is not None:
            card["metrics"] |= final_test_metrics(model, cfg)
            self.log.log(self.step, {f"test/{k}": v for k, v in flatten(card["metrics"]["test"]).items()})
        path = Path(cfg.final_path or self.out / "model.safetensors")
        return save_model(model, path, card=card, dtype=DTYPES[cfg.final_dtype])


def train(cfg: TrainConfig, resume: bool = False, stop_after: int | None = None,
          command: str | None = None) -> Path | None:
    """Train with ``cfg``; see ``Trainer``. Returns the final model's path (rank 0, finished runs)."""
    return Trainer(cfg, resume=resume, command=command).run(stop_after=stop_after)
