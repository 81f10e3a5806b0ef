"""Live mapping: camera frames and microphone chunks of one browser session -> heat maps as they come.

Per session: an audio ring buffer (the last seconds of the microphone, at the rate it arrives), the audio
vector f_a of its latest window (the audio tower runs once per new chunk), and a gate that lets one frame
through at a time (the visual tower runs once per frame; a frame that arrives while another is being
mapped is dropped, not queued). Nothing here is shared between sessions but the read-only model.
"""
from __future__ import annotations

import io
import json
import threading
import time
import zipfile
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import soundfile as sf
import torch
from PIL import Image

from .audio import to_model_rate
from .errors import AVDemoError
from .model import AVLocalizer
from .videomap import VideoMapConfig, draw


@dataclass(frozen=True)
class LiveConfig:
    """How the live tab streams, maps and draws."""

    frame_every_s: float = 0.05      # the camera sends a frame this often (Gradio's stream_every)
    sound_every_s: float = 0.2       # the microphone sends a chunk this often
    time_limit_s: int = 180          # a session's streams leave the queue after this long (press record again)
    sessions: int = 1                # live sessions mapped at once; later visitors wait in the queue
    ring_s: float = 3.0              # audio kept per session (the longest model window it can serve)
    silence_after_s: float = 1.5     # no microphone chunk for this long: map with silence (and say so)
    rate_window_s: float = 2.0       # maps per second counted over this span
    max_side: int = 480              # frames are downscaled to this longest side before mapping
    drawing: VideoMapConfig = VideoMapConfig(normalisation="frame", colormap="jet", opacity=0.5)


class AudioRing:
    """The last ``capacity`` samples of a mono stream; silence (zeros) before the first sample."""

    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError(f"a ring buffer needs room for at least one sample; got {capacity}")
        self.buffer = np.zeros(capacity, np.float32)
        self.end = 0              # total samples pushed; the newest sits at (end - 1) % capacity

    @property
    def capacity(self) -> int:
        return len(self.buffer)

    def push(self, samples: np.ndarray) -> None:
        samples = np.asarray(samples, np.float32)[-self.capacity:]
        start = self.end % self.capacity
        first = min(len(samples), self.capacity - start)
        self.buffer[start:start + first] = samples[:first]
        self.buffer[:len(samples) - first] = samples[first:]
        self.end += len(samples)

    def latest(self, n: int) -> np.ndarray:
        """The newest ``n`` samples, oldest first (n <= capacity), zero-padded before the stream began."""
        if not 0 < n <= self.capacity:
            raise ValueError(f"can read 1 to {self.capacity} samples; asked for {n}")
        idx = np.arange(self.end - n, self.end)
        return np.where(idx >= 0, self.buffer[idx % self.capacity], np.float32(0.0))


class FrameGate:
    """Lets one frame in at a time; a frame that arrives while another is inside is dropped (counted)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.admitted = 0
        self.dropped = 0

    @contextmanager
    def admit(self) -> Iterator[bool]:
        if not self._lock.acquire(blocking=False):
            self.dropped += 1
            yield False
            return
        try:
            self.admitted += 1
            yield True
        finally:
            self._lock.release()


def mono_float(samples: np.ndarray) -> np.ndarray:
    """A microphone chunk (T,) or (T, C), integer PCM or float -> float32 mono in [-1, 1]."""
    x = np.asarray(samples)
    if np.issubdtype(x.dtype, np.integer):
        x = x.astype(np.float32) / np.float32(np.iinfo(x.dtype).max)
    x = x.astype(np.float32, copy=False)
    if x.ndim == 2:
        x = x.mean(axis=1)
    if x.ndim != 1:
        raise AVDemoError(f"a microphone chunk must be (samples,) or (samples, channels); got {x.shape}")
    return x


def downscale(frame: np.ndarray, max_side: int) -> np.ndarray:
    """uint8 RGB (H, W, 3) with its longer side at most ``max_side`` pixels."""
    h, w = frame.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1:
        return frame
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.array(Image.fromarray(frame).resize(size, Image.Resampling.BILINEAR))


@dataclass
class Heard:
    """An audio window as the model heard it: the samples at their own rate, and its vector f_a."""

    wav: np.ndarray            # (T,) float32, the model's window at ``rate``
    rate: int
    audio_vec: torch.Tensor    # (1, C)
    silent: bool               # no microphone sound: a window of silence


@dataclass
class LiveMap:
    """One mapped frame."""

    frame: np.ndarray          # (H, W, 3) uint8, as mapped (downscaled)
    overlay: np.ndarray        # (H, W, 3) uint8, the heat map blended on it
    map_lowres: np.ndarray     # (h, w) raw S
    s_A: float
    peak: float                # max of S
    peak_xy: tuple[float, float]   # the hottest cell's centre, as fractions of the width and height
    heard: Heard
    compute_s: float           # server seconds spent on this frame


class LiveSession:
    """One browser session's live state (kept in a ``gr.State``: nothing is shared between sessions)."""

    def __init__(self, cfg: LiveConfig = LiveConfig()):
        self.cfg = cfg
        self.paused = False
        self.last: LiveMap | None = None              # the newest mapped frame (what freeze keeps)
        self._lock = threading.Lock()                 # the ring and the heard windows (two stream threads)
        self.ring: AudioRing | None = None            # the microphone at its own rate
        self.rate = 0
        self.last_sound_at = -np.inf
        self.heard: dict[int, Heard] = {}           # per model (id): the microphone's newest window
        self.silence: dict[int, Heard] = {}         # per model (id): a window of silence
        self.gate = FrameGate()
        self.map_times: deque[float] = deque()

    def __deepcopy__(self, memo) -> "LiveSession":   # gr.State copies its initial value per session
        return LiveSession(self.cfg)

    # --- sound ------------------------------------------------------------------------------------
    def add_sound(self, models: Sequence[AVLocalizer], chunk: np.ndarray, rate: int) -> None:
        """Append a microphone chunk and run each model's audio tower once on its newest window."""
        samples = mono_float(chunk)
        with self._lock:
            if self.ring is None or rate != self.rate:
                self.ring, self.rate = AudioRing(round(self.cfg.ring_s * rate)), int(rate)
            self.ring.push(samples)
            self.last_sound_at = time.monotonic()
            windows = [self.ring.latest(self._window_samples(model, rate)) for model in models]
        for model, wav in zip(models, windows):
            heard = Heard(wav, int(rate), audio_vector(model, wav, int(rate)), silent=False)
            with self._lock:
                self.heard[id(model)] = heard

    def _window_samples(self, model: AVLocalizer, rate: int) -> int:
        n = round(model.cfg.audio.window_s * rate)
        if n > round(self.cfg.ring_s * rate):
            raise AVDemoError(f"this model hears {model.cfg.audio.window_s:g} s of sound; live mapping keeps "
                              f"{self.cfg.ring_s:g} s: pick a model with a shorter window")
        return n

    def sound_for(self, model: AVLocalizer) -> Heard:
        """The newest window heard by ``model``: the microphone's, or silence when none arrived lately.
        A window heard before the model was picked is run through its audio tower now (once)."""
        with self._lock:
            fresh = time.monotonic() - self.last_sound_at <= self.cfg.silence_after_s
            heard = (self.heard if fresh else self.silence).get(id(model))
            if heard is not None:
                return heard
            rate = self.rate if fresh else model.cfg.audio.sample_rate
            wav = self.ring.latest(self._window_samples(model, rate)) if fresh else \
                np.zeros(round(model.cfg.audio.window_s * rate), np.float32)
        heard = Heard(wav, rate, audio_vector(model, wav, rate), silent=not fresh)
        with self._lock:
            return (self.heard if fresh else self.silence).setdefault(id(model), heard)

    # --- frames -----------------------------------------------------------------------------------
    def map_frame(self, model: AVLocalizer, frame: np.ndarray) -> LiveMap | None:
        """Map one camera frame with the newest sound; None when another frame is still being mapped
        (this one is dropped) or the session is paused."""
        if self.paused:
            return None
        with self.gate.admit() as admitted:
            if not admitted:
                return None
            start = time.perf_counter()
            frame = downscale(np.array(frame, np.uint8), self.cfg.max_side)
            heard = self.sound_for(model)
            with torch.inference_mode():
                images = model.preprocess_frames(frame).contiguous(memory_format=torch.channels_last)
                scores = model.scores(model.encode_image(images), heard.audio_vec)
            map_lowres = scores["maps"][0].float().cpu().numpy()
            drawn = draw(frame, map_lowres, self.cfg.drawing, (float(map_lowres.min()), float(map_lowres.max())))
            h, w = map_lowres.shape
            row, col = np.unravel_index(int(map_lowres.argmax()), map_lowres.shape)
            self.last = LiveMap(frame, drawn, map_lowres, float(scores["s_A"][0]), float(map_lowres.max()),
                                ((col + 0.5) / w, (row + 0.5) / h), heard, time.perf_counter() - start)
            self._count(time.monotonic())
            return self.last

    def _count(self, now: float) -> None:
        self.map_times.append(now)
        while self.map_times and now - self.map_times[0] > self.cfg.rate_window_s:
            self.map_times.popleft()

    def maps_per_s(self) -> float:
        """Frames mapped per second over the last ``rate_window_s``."""
        if len(self.map_times) < 2:
            return 0.0
        return (len(self.map_times) - 1) / max(self.map_times[-1] - self.map_times[0], 1e-6)

    # --- freeze -----------------------------------------------------------------------------------
    def freeze(self, path: Path) -> LiveMap:
        """Write the last mapped frame, its heat map and the sound it was mapped with as one zip at
        ``path``; returns that map."""
        if self.last is None:
            raise AVDemoError("nothing mapped yet: start the camera (and the microphone), then freeze")
        last = self.last
        scores = {"s_A": last.s_A, "peak": last.peak, "peak_xy": list(last.peak_xy),
                  "sound": "silence (no microphone sound)" if last.heard.silent else "microphone",
                  "sample_rate": last.heard.rate, "map_shape": list(last.map_lowres.shape)}
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("frame.png", png_bytes(last.frame))
            z.writestr("heatmap.png", png_bytes(last.overlay))
            z.writestr("map.npy", npy_bytes(last.map_lowres))
            z.writestr("sound.wav", wav_bytes(last.heard.wav, last.heard.rate))
            z.writestr("scores.json", json.dumps(scores, indent=1))
        return last


def audio_vector(model: AVLocalizer, wav: np.ndarray, rate: int) -> torch.Tensor:
    """The audio tower on one window (T,) at ``rate`` -> f_a (1, C)."""
    n = model.cfg.audio.window_samples
    wav_model = to_model_rate(wav, rate, model.cfg.audio)[-n:]
    wav_model = torch.nn.functional.pad(wav_model, (n - len(wav_model), 0)).clamp(-1.0, 1.0)
    with torch.inference_mode():
        specs = model.audio_to_specs(wav_model[None], None, 1)
        return model.encode_audio(specs.contiguous(memory_format=torch.channels_last))


def png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def wav_bytes(wav: np.ndarray, rate: int) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, wav, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()
