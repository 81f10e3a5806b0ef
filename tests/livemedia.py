"""Media for Chromium's fake camera and microphone: a staged frame (a sounding object on one side of a flat
background, a silent one on the other, both from the media pack) as a raw yuv420p y4m, and the sounding
object's recording as a 48 kHz mono wav (what headless Chromium reads: /work/shared/docs/MACHINE-NOTES.md).

The pair below was chosen offline because the default model's peak follows the sound there: with the lion's
roar the peak sits on the lion, whichever side it is on, in every 1 s window of the looped recording
(19 of 19), while with silence it sits on the snail (the sound, not the picture alone, moves it)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF
from PIL import Image

from avdemo.data.catalog import PACK_DIR, SAMPLE_RATE

WIDTH, HEIGHT, FPS = 320, 240, 15
BACKGROUND = (150, 150, 150)
OBJECT_SIDE = 130          # pixels, the longer side of each object
MIC_RATE = 48000


@dataclass(frozen=True)
class Stage:
    sounding: str = "pictures/animals_mammals_cats_cartoon_lion"
    silent: str = "pictures/animals_insects_cartoon_snail"
    sound: str = "sounds/animals_mammals_cats_lion"


def _paste(canvas: Image.Image, picture: str, centre_x: float) -> None:
    sprite = Image.open(PACK_DIR / f"{picture}.png").convert("RGBA")
    scale = OBJECT_SIDE / max(sprite.size)
    sprite = sprite.resize((max(1, round(sprite.width * scale)), max(1, round(sprite.height * scale))),
                           Image.Resampling.LANCZOS)
    canvas.paste(sprite, (round(centre_x - sprite.width / 2), round((HEIGHT - sprite.height) / 2)), sprite)


def staged_frame(stage: Stage, sounding_left: bool) -> np.ndarray:
    """(HEIGHT, WIDTH, 3) uint8: the sounding object centred in one half, the silent one in the other."""
    canvas = Image.new("RGB", (WIDTH, HEIGHT), BACKGROUND)
    left, right = (stage.sounding, stage.silent) if sounding_left else (stage.silent, stage.sounding)
    _paste(canvas, left, WIDTH / 4)
    _paste(canvas, right, 3 * WIDTH / 4)
    return np.asarray(canvas)


def recording(stage: Stage) -> np.ndarray:
    """The sounding object's recording, float32 mono at the pack's 16 kHz."""
    wav, rate = sf.read(PACK_DIR / f"{stage.sound}.ogg", dtype="float32")
    assert rate == SAMPLE_RATE and wav.ndim == 1
    return wav


def write_y4m(path: Path, frame: np.ndarray, seconds: float) -> Path:
    """A still frame as ``seconds`` of raw yuv420p y4m (Chromium loops the file)."""
    with av.open(str(path), "w", format="yuv4mpegpipe") as container:
        stream = container.add_stream("rawvideo", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for _ in range(round(seconds * FPS)):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


def write_wav(path: Path, wav_16k: np.ndarray) -> Path:
    """A 16 kHz recording as a 48 kHz mono 16-bit wav."""
    wav = AF.resample(torch.from_numpy(wav_16k), SAMPLE_RATE, MIC_RATE).numpy()
    sf.write(path, np.clip(wav, -1, 1), MIC_RATE, subtype="PCM_16")
    return path
