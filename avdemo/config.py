"""Configuration of the localization model: every choice is a named value, grouped in dataclasses.

Two presets share all code: ``paper`` reproduces the authors' released setting, ``cpu`` is small enough
to train on a 2-core laptop (see ``PRESETS`` for the reasoning).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

@dataclass(frozen=True)
class AudioConfig:
    """Audio front end: waveform window -> log linear-frequency spectrogram (scipy.signal.spectrogram)."""

    sample_rate: int = 16000
    window_s: float = 3.0          # length of the audio window the model hears
    nperseg: int = 512             # STFT segment length (also the FFT size)
    noverlap: int = 353            # overlap between segments
    tukey_alpha: float = 0.25      # scipy's default window is ('tukey', 0.25)
    log_eps: float = 1e-7          # log(S + eps)
    log_scale: float = 12.0        # then divided by this
    downmix: str = "first"         # "first" channel (as the reference) or "mean" of channels

    @property
    def window_samples(self) -> int:
        return int(round(self.window_s * self.sample_rate))

    @property
    def hop(self) -> int:
        return self.nperseg - self.noverlap

    @property
    def spec_shape(self) -> tuple[int, int]:
        """(frequency bins, time frames) of one window's spectrogram."""
        return self.nperseg // 2 + 1, (self.window_samples - self.noverlap) // self.hop


@dataclass(frozen=True)
class ModelConfig:
    """The localization model of METHOD.md: a visual and an audio tower, map S, s_L and s_A."""

    image_size: int = 224                  # frames are resized to a square of this side
    visual_backbone: str = "resnet18"      # the paper's stride-1 ResNet-18, "efficientnet_lite0" (output
                                           # stride 16 + a 1x1 projection to feat_dim) or "resnet18_s32"
    family: str = "ours"                   # whose model: ours | lvs | ezvsl | fnac | slavc (FAMILIES)
    peer_projections: int = 0              # the EZ-VSL family's projections of both towers before the
                                           # cosine: 1 (EZ-VSL, FNAC) or 2 whose maps are averaged (SLAVC)
    feat_dim: int = 512                    # channels of the map and the audio vector (ResNet-18's)
    embed_dim: int = 512                   # alignment head output (s_A space)
    audio_last_stride: int = 1             # stride of the audio ResNet-18's last stage: 1 as the reference
                                           # (both towers are one ResNet class); 2 in our cpu/lite models
    alignment_head: bool = True            # released checkpoints may lack it
    mask_threshold: float = 0.65           # s_L soft mask: sigmoid((S - threshold) / temperature)
    mask_temperature: float = 0.03
    ciou_threshold: float = 0.5            # success when cIoU >= this
    audio: AudioConfig = field(default_factory=AudioConfig)

    @property
    def map_size(self) -> int:
        """Side of the visual feature map."""
        from .backbones import visual_backbone

        return self.image_size // visual_backbone(self.visual_backbone).output_stride

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        d = dict(d)
        d.setdefault("audio_last_stride", 2)    # cards written before the setting existed used stride 2
        audio = AudioConfig(**d.pop("audio", {}))
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        return cls(audio=audio, **d)


# paper: 224 px frames (14x14 map), 3 s at 16 kHz -> 257 x 299 spectrogram, as the released checkpoints.
# cpu:   128 px frames (8x8 map) and 1 s of audio with a 256-point STFT and a 10 ms hop (129 x 99).
#        About a third of the paper image cost and a sixth of its audio cost, so that the multi-view
#        training of several thousand steps fits in about an hour on 2 cores; 1 s still holds a bark, a
#        note or a moo, and 8x8 cells still separate objects that cover a quarter of the frame.
# lite:  the cpu preset's audio with the ImageNet EfficientNet-Lite0 visual trunk at output stride 16
#        (128 px -> 8x8 map), the default model's architecture.
# The small presets keep the audio tower's last stride at 2 (4x cheaper on 2 cores; global max pooling
# follows it, so the map's resolution does not depend on it).
CPU_AUDIO = AudioConfig(window_s=1.0, nperseg=256, noverlap=96, downmix="mean")
PRESETS: dict[str, ModelConfig] = {
    "paper": ModelConfig(),
    "cpu": ModelConfig(image_size=128, audio_last_stride=2, audio=CPU_AUDIO),
    "lite": ModelConfig(image_size=128, visual_backbone="efficientnet_lite0", audio_last_stride=2, audio=CPU_AUDIO),
}


# The model families of the reference evaluation, as their released checkpoints are built: LVS is the
# method's architecture without the alignment head; EZ-VSL and FNAC share one layout (torchvision ResNet-18
# towers, last stage stride 2, a 1x1 image and a linear audio projection); SLAVC has two projections per
# modality whose maps are averaged. None has an alignment head.
_PEER = ModelConfig(visual_backbone="resnet18_s32", audio_last_stride=2, alignment_head=False, peer_projections=1)
FAMILIES: dict[str, ModelConfig] = {
    "ours": ModelConfig(),
    "lvs": ModelConfig(family="lvs", alignment_head=False),
    "ezvsl": dataclasses.replace(_PEER, family="ezvsl"),
    "fnac": dataclasses.replace(_PEER, family="fnac"),
    "slavc": dataclasses.replace(_PEER, family="slavc", peer_projections=2),
}


def preset(name: str) -> ModelConfig:
    """The named preset, or a clear error listing the known ones."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known presets: {sorted(PRESETS)}")
    return PRESETS[name]
