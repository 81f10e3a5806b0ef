"""Training configuration: one dataclass of plain values, named presets, and ``key=value`` overrides.

Presets
- ``default``: the shipped model's recipe (``checkpoints/default.json``): ``lite`` changed as the
  ``lite_finetuned`` ablation row, 1,250 steps, seed 1, no validation split; ``lite``: the base of the
  pretrained-vision ablation (ImageNet EfficientNet-Lite0 trunk, frozen; audio augmentation; extra
  negatives; see ``LITE``); ``cpu``: the full method for the ``cpu`` model (the paper's ResNet-18s) on the
  embedded benchmark; ``paper``: the authors' setting on VGGSound-style data (GPUs); ``tiny``: tests.
- The pretrained-vision ablation (``VISION_ABLATIONS``) changes ``lite`` one part at a time.
- Ablations on top of ``cpu`` (see ``ABLATIONS``): ``single_positive`` (original pair, s_L only, as the
  localization-only baselines), ``aug_views`` (+ augmented views), ``neighbours`` (+ conceptually similar
  views), ``alignment`` (original pair, s_L + s_A), ``full`` (all views, s_L + s_A = ``cpu``).
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from avdemo.config import AudioConfig, ModelConfig, preset
from avdemo.errors import AVDemoError

TRAIN_VIEWS = ("original", "augmented", "neighbour")


@dataclass(frozen=True)
class ImageAugConfig:
    """The augmented image view (METHOD.md). Probabilities of 0 switch a transform off."""

    crop_scale: float = 246 / 224     # frames are cached at this multiple of the input side, then cropped
    rotate90_p: float = 0.5           # rotate by a random multiple of 90 degrees (unconfirmed reading)
    jitter_p: float = 0.8
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1)  # brightness, contrast, saturation, hue
    blur_p: float = 0.5
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    hflip_p: float = 0.5
    vflip_p: float = 0.5
    translate: float = 0.2            # random translation, fraction of the side
    grayscale_p: float = 0.2


@dataclass(frozen=True)
class AudioAugConfig:
    """The augmented audio view: the window's centre moves by up to +-max_shift_s (tiling the clip), as
    the authors'. The other transforms make a new recording of a known category sound familiar; 0 (or
    a probability of 0) switches one off."""

    max_shift_s: float = 3.5
    gain_db: float = 0.0                               # random gain in +-gain_db
    pitch_semitones: float = 0.0                       # resample by up to +-this: pitch and tempo together
    bandlimit_p: float = 0.0                           # keep a random band: high-pass 50-500 Hz, low-pass 2-7 kHz
    noise_p: float = 0.0                               # add white, pink or brown noise at a random SNR
    noise_snr_db: tuple[float, float] = (5.0, 30.0)
    mix_p: float = 0.0                                 # add another training clip, quieter by a random amount
    mix_db: tuple[float, float] = (-20.0, -8.0)


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs. Class labels are never read for training: only the evaluation
    on the validation and test splits uses them."""

    model: ModelConfig = field(default_factory=lambda: preset("cpu"))
    # data: the splits are folders under data_root (or absolute paths) in the VGG-SS layout
    # (frames/<id>.jpg, audio/<id>.wav, vggss.json); a VGGSound-style training folder may instead hold
    # frames/ + audio/ and an id list (one id per line) named by train_ids.
    data_root: str | None = None      # None: the embedded benchmark ($AVDEMO_CACHE/embedded or data_cache/embedded)
    train_split: str = "train"
    val_split: str | None = "val"      # None: no validation, the last weights are kept
    test_split: str | None = "test"    # None: no final test report
    train_ids: str | None = None       # id list file, relative to the training folder
    cache_frames: bool = True          # decode all frames and audio once, keep them in memory
    num_workers: int = 1
    # optimisation
    steps: int = 1200
    batch_size: int = 64               # per process; the InfoNCE negatives are the rest of this batch
    optimizer: str = "adamw"           # "adamw" or "adam" (the authors')
    lr: float = 3e-4
    weight_decay: float = 1e-4
    warmup_steps: int = 50
    final_lr_ratio: float = 0.01       # cosine decay from lr to lr * final_lr_ratio
    amp: str = "auto"                  # bf16 autocast: "bf16", "off", or "auto" = on GPUs, and on CPUs whose
                                       # oneDNN has bf16 kernels (AVX-512/AMX; on AVX2-only CPUs it is slower)
    seed: int = 0
    # the method
    image_views: tuple[str, ...] = TRAIN_VIEWS
    audio_views: tuple[str, ...] = TRAIN_VIEWS
    loss_localization: bool = True     # InfoNCE terms with s_L
    loss_alignment: bool = True        # InfoNCE terms with s_A (the model then has the alignment head)
    temperature: float = 0.07
    direction: str = "image_to_audio"  # the authors' code; or "symmetric"
    image_aug: ImageAugConfig = field(default_factory=ImageAugConfig)
    image_views_on: str = "auto"       # where image views are made: "loader" (frame by frame in the loader
                                       # workers), "device" (batched in the training step), "auto": the
                                       # device on GPUs, the loader on CPUs (same distributions either way)
    audio_aug: AudioAugConfig = field(default_factory=AudioAugConfig)
    neighbour_k: int = 30              # conceptually similar = a random one of the K nearest neighbours
    neighbour_every: int = 200         # steps between refreshes of the kNN tables
    neighbour_features: str | None = None  # .npy (N, D) or (2, N, D) [image, audio] in training order;
                                            # "imagenet": pooled features of the ImageNet visual backbone
                                            # (computed once, cached), for both modalities' neighbours;
                                            # None: the model's own embeddings, gathered while training
    # the visual tower: initialisation, and how much of the pretrained trunk learns
    visual_init: str = "scratch"       # "scratch" or "imagenet" (backbones with offline weights)
    init_from: str | None = None       # start from the weights of one of our checkpoints (.safetensors + card,
                                       # the same model config): a second training phase
    visual_trunk: str = "train"        # "train" (all of it), "frozen_bn" (batch norms frozen), "frozen"
    trunk_lr_ratio: float = 1.0        # the trunk's learning rate relative to lr
    # extra negatives: silence and noise-only windows every image must rank below its own audio
    extra_negatives: int = 0           # per batch (half silence, half noise); 0 = off
    # the switch loss: frames of two clips side by side, each clip's audio must pick its frame's half
    # (``train.losses.switch_loss``), times this weight; 0 = off. The composites go through the visual
    # tower with the other views (in a trunk whose batch norms learn, they join the batch statistics).
    switch_weight: float = 0.0
    # evaluation, logging, checkpoints
    eval_every: int = 200
    eval_batch_size: int = 64
    select_metric: tuple[str, ...] = ("localization.pointing_game", "localization.ciou_success")  # summed, on val
    log_every: int = 10
    save_every: int = 50
    out_dir: str = "runs/cpu"
    final_path: str | None = None      # default: <out_dir>/model.safetensors
    final_dtype: str = "float16"       # storage of the final weights: float32, float16 or bfloat16
    device: str = "auto"               # "auto", "cpu", "cuda"

    def __post_init__(self) -> None:
        for name in ("image_views", "audio_views"):
            views = getattr(self, name)
            if not views or any(v not in TRAIN_VIEWS for v in views) or len(set(views)) != len(views):
                raise AVDemoError(f"{name} must be a non-empty subset of {TRAIN_VIEWS}; got {views}")
        if not (self.loss_localization or self.loss_alignment):
            raise AVDemoError("at least one of loss_localization and loss_alignment must be on")
        if self.direction not in ("image_to_audio", "symmetric"):
            raise AVDemoError(f"direction must be 'image_to_audio' or 'symmetric'; got {self.direction!r}")
        if self.image_views_on not in ("auto", "loader", "device"):
            raise AVDemoError(f"image_views_on must be 'auto', 'loader' or 'device'; got {self.image_views_on!r}")
        if self.amp not in ("auto", "bf16", "off"):
            raise AVDemoError(f"amp must be 'auto', 'bf16' or 'off'; got {self.amp!r}")
        if self.final_dtype not in ("float32", "float16", "bfloat16"):
            raise AVDemoError(f"final_dtype must be float32, float16 or bfloat16; got {self.final_dtype!r}")
        if self.optimizer not in ("adam", "adamw"):
            raise AVDemoError(f"optimizer must be 'adam' or 'adamw'; got {self.optimizer!r}")
        if self.visual_init not in ("scratch", "imagenet"):
            raise AVDemoError(f"visual_init must be 'scratch' or 'imagenet'; got {self.visual_init!r}")
        if self.visual_trunk not in ("train", "frozen_bn", "frozen"):
            raise AVDemoError(f"visual_trunk must be 'train', 'frozen_bn' or 'frozen'; got {self.visual_trunk!r}")
        if self.visual_trunk != "train" and self.visual_init != "imagenet":
            raise AVDemoError(f"visual_trunk={self.visual_trunk!r} freezes a pretrained trunk: "
                              f"set visual_init=imagenet")
        if self.switch_weight < 0:
            raise AVDemoError(f"switch_weight must be >= 0; got {self.switch_weight}")
        if self.extra_negatives < 0:
            raise AVDemoError(f"extra_negatives must be >= 0; got {self.extra_negatives}")

    @property
    def uses_neighbours(self) -> bool:
        return "neighbour" in self.image_views or "neighbour" in self.audio_views

    @property
    def model_config(self) -> ModelConfig:
        """The model trained: the alignment head exists exactly when its loss is on."""
        return dataclasses.replace(self.model, alignment_head=self.loss_alignment)

    def split_dir(self, split: str) -> Path:
        from avdemo.data.splits import default_root

        return Path(self.data_root or default_root()) / split

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        d = dict(d)
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise AVDemoError(f"unknown training config keys: {sorted(unknown)}")
        if "model" in d:
            d["model"] = ModelConfig.from_dict(d["model"])
        if "image_aug" in d:
            d["image_aug"] = ImageAugConfig(**{k: tuple(v) if isinstance(v, list) else v
                                               for k, v in d["image_aug"].items()})
        if "audio_aug" in d:
            d["audio_aug"] = AudioAugConfig(**{k: tuple(v) if isinstance(v, list) else v
                                               for k, v in d["audio_aug"].items()})
        d = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        return cls(**d)


TINY_MODEL = ModelConfig(image_size=64, audio=AudioConfig(sample_rate=8000, window_s=0.5, nperseg=128,
                                                          noverlap=48, downmix="mean"))

# cpu: the full method on the embedded data. On this 2-core AVX2 machine (float32; bench/train_speed.py) the
# full 3 x 3 views cost 27.5 GFLOP per sample (2 x 2: 18.3, 1 x 1: 9.2) and run at about 75% of the
# matmul floor, about 5 samples/s on a quiet machine: 300 steps of 48 (2 x 2 views until the kNN tables
# exist after the first epoch of 10,000 scenes, 3 x 3 after) take about an hour.
CPU = TrainConfig(audio_aug=AudioAugConfig(max_shift_s=1.0), steps=300, batch_size=48, warmup_steps=20,
                  neighbour_every=100, eval_every=50, save_every=10)

# The ablation variants as changes to any base recipe (the presets apply them to ``cpu``).
ORIGINAL_ONLY = {"image_views": ("original",), "audio_views": ("original",)}
ABLATIONS: dict[str, dict[str, Any]] = {
    "single_positive": {**ORIGINAL_ONLY, "loss_alignment": False},
    "aug_views": {"image_views": TRAIN_VIEWS[:2], "audio_views": TRAIN_VIEWS[:2], "loss_alignment": False},
    "neighbours": {"loss_alignment": False},
    "alignment": {**ORIGINAL_ONLY, "loss_alignment": True},
    "full": {"image_views": TRAIN_VIEWS, "audio_views": TRAIN_VIEWS, "loss_alignment": True},
}


# lite: the base of the ablation below that picked the default's recipe (same samples per row; README has
# the table). The ImageNet EfficientNet-Lite0 trunk stays frozen (its 8x8 map is projected to the shared
# space by a learned 1x1 convolution); the audio tower hears an augmented view too (shifted, re-pitched,
# band-limited, mixed, noised); silence and noise windows are extra negatives.
LITE_AUDIO_AUG = AudioAugConfig(max_shift_s=1.0, gain_db=6.0, pitch_semitones=1.5, bandlimit_p=0.3, noise_p=0.3,
                                mix_p=0.3)
LITE = dataclasses.replace(CPU, model=preset("lite"), visual_init="imagenet", visual_trunk="frozen",
                           image_views=("original",), audio_views=("original", "augmented"),
                           audio_aug=LITE_AUDIO_AUG, extra_negatives=8, steps=3000, eval_every=500,
                           out_dir="runs/lite")

# The pretrained-vision ablation, as changes to ``lite``: ``scratch_resnet18`` is the previous default's
# recipe (the paper's ResNet-18 from scratch, original pairs, s_L + s_A); then the frozen ImageNet trunk on
# original pairs, each later row adding one part up to ``lite_imagenet_neighbours``; the last three add
# to it a finer map (192 px frames: 12x12), the augmented image view (every view of the method), or
# fine-tune the trunk (batch norms frozen, a tenth of the lr: ``lite_finetuned``, the default's recipe);
# ``lite_symmetric`` changes ``lite_finetuned``'s InfoNCE direction: each audio also picks its image.
FINETUNED = {"image_views": ("original", "neighbour"), "audio_views": TRAIN_VIEWS,
             "neighbour_features": "imagenet", "visual_trunk": "frozen_bn", "trunk_lr_ratio": 0.1}
# default: the shipped model's recipe, as its card records it (``lite_finetuned`` trained for 1,250 steps
# of 48 with seed 1, without a validation split: the last weights are kept).
DEFAULT = dataclasses.replace(LITE, **FINETUNED, steps=1250, seed=1, val_split=None, out_dir="runs/default")
# Second-phase rows start from the shipped default (``init_from``). ``SILENT_DISTRACTORS`` is a training
# split whose distractors are all silent objects (``python -m avdemo.data build --out
# data_cache/embedded_silent --val 0 --test 0 --openset 0 --scene silent_share=1.0``), so that no training
# frame shows an object of a sounding category that is not the one heard.
DEFAULT_PHASE_2 = {**FINETUNED, "init_from": "checkpoints/default.safetensors"}
SILENT_DISTRACTORS = "../embedded_silent/train"
VISION_ABLATIONS: dict[str, dict[str, Any]] = {
    "scratch_resnet18": {**ORIGINAL_ONLY, "model": preset("cpu"), "visual_init": "scratch", "visual_trunk": "train",
                         "audio_aug": CPU.audio_aug, "extra_negatives": 0},
    "lite_frozen_pairs": {**ORIGINAL_ONLY, "audio_aug": CPU.audio_aug, "extra_negatives": 0},
    "lite_frozen_audio_aug": {"extra_negatives": 0},
    "lite": {},
    "lite_imagenet_neighbours": {"image_views": ("original", "neighbour"), "audio_views": TRAIN_VIEWS,
                                 "neighbour_features": "imagenet"},
    "lite_finer_map": {"model": dataclasses.replace(preset("lite"), image_size=192),
                       "image_views": ("original", "neighbour"), "audio_views": TRAIN_VIEWS,
                       "neighbour_features": "imagenet"},
    "lite_all_views": {"image_views": TRAIN_VIEWS, "audio_views": TRAIN_VIEWS, "neighbour_features": "imagenet"},
    "lite_finetuned": FINETUNED,
    "lite_symmetric": {**FINETUNED, "direction": "symmetric"},
    # a second phase: the shipped default trained further with its own recipe, or with one change
    "default_more_steps": DEFAULT_PHASE_2,
    "default_symmetric": {**DEFAULT_PHASE_2, "direction": "symmetric"},
    "default_silent_distractors": {**DEFAULT_PHASE_2, "train_split": SILENT_DISTRACTORS},
    "default_symmetric_silent": {**DEFAULT_PHASE_2, "direction": "symmetric", "train_split": SILENT_DISTRACTORS},
    "default_side_by_side": {**DEFAULT_PHASE_2, "switch_weight": 4.0},
}


def ablation(base: TrainConfig, name: str) -> TrainConfig:
    """``base`` with the changes of the ablation variant ``name`` (``ABLATIONS`` or ``VISION_ABLATIONS``)."""
    changes = ABLATIONS.get(name, VISION_ABLATIONS.get(name))
    if changes is None:
        raise AVDemoError(f"unknown ablation {name!r}; known: {', '.join([*ABLATIONS, *VISION_ABLATIONS])}")
    return dataclasses.replace(base, **changes)


PRESETS: dict[str, TrainConfig] = {
    "default": DEFAULT,
    "cpu": CPU,
    "lite": LITE,
    "tiny": TrainConfig(model=TINY_MODEL, steps=4, batch_size=8, warmup_steps=2, num_workers=0,
                        neighbour_k=3, neighbour_every=2, eval_every=2, eval_batch_size=16, log_every=1,
                        save_every=2, audio_aug=AudioAugConfig(max_shift_s=0.5), out_dir="runs/tiny"),
    # The authors' setting: 224 px, 3 s, Adam 1e-4, about 80 epochs of VGGSound-144K, K = 1000.
    "paper": TrainConfig(model=preset("paper"), data_root="data/vggsound", train_split=".",
                         train_ids="vggss_144k.txt", val_split="vggss_val", test_split="vggss_test",
                         cache_frames=False, num_workers=8, steps=90_000, batch_size=128, optimizer="adam",
                         lr=1e-4, warmup_steps=1000, neighbour_k=1000, neighbour_every=5000,
                         eval_every=2000, save_every=500, log_every=50, out_dir="runs/paper"),
    **{name: dataclasses.replace(ablation(CPU, name), out_dir=f"runs/{name}") for name in ABLATIONS},
}


def parse_value(text: str) -> Any:
    """``key=value`` values are JSON (numbers, true/false/null, lists); anything else is a string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def apply_overrides(cfg: TrainConfig, overrides: list[str]) -> TrainConfig:
    """``["lr=1e-3", "model.image_size=96", "image_aug.blur_p=0"]`` -> a new config."""
    d = cfg.to_dict()
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise AVDemoError(f"override {item!r} is not of the form key=value")
        *parents, leaf = key.strip().split(".")
        node = d
        for p in parents:
            if not isinstance(node.get(p), dict):
                raise AVDemoError(f"override {item!r}: {p!r} is not a config section")
            node = node[p]
        if leaf not in node:
            raise AVDemoError(f"override {item!r}: unknown key {leaf!r}; known: {sorted(node)}")
        node[leaf] = parse_value(value)
    return TrainConfig.from_dict(d)


def load_config(name_or_file: str, overrides: list[str] = ()) -> TrainConfig:
    """A preset name, or a JSON file of values (optionally ``"preset": NAME`` as the base, else ``cpu``)."""
    if name_or_file in PRESETS:
        cfg = PRESETS[name_or_file]
    else:
        path = Path(name_or_file)
        if not path.is_file():
            raise AVDemoError(f"{name_or_file!r} is neither a preset ({', '.join(PRESETS)}) nor a JSON file")
        d = json.loads(path.read_text())
        base = PRESETS.get(d.pop("preset", "cpu"))
        if base is None:
            raise AVDemoError(f"{path}: unknown base preset; known: {sorted(PRESETS)}")
        cfg = apply_overrides(base, [f"{k}={json.dumps(v)}" for k, v in _flatten(d).items()])
    return apply_overrides(cfg, list(overrides))


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out
