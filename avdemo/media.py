"""Video and audio files with PyAV: probe, decode frames as a stream, read the audio track, write MP4.

Frames are uint8 RGB (H, W, 3) in display orientation; times are seconds from the container's start;
audio is float32 in [-1, 1], (T,) for mono or (T, C) otherwise (soundfile's layout).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator

import av
import numpy as np

from .cache import atomic_write
from .errors import AVDemoError

VIDEO_CODEC = "libx264"           # H.264 High, yuv420p: what every browser plays
VIDEO_OPTIONS = {"preset": "veryfast", "crf": "23"}
AUDIO_CODEC = "aac"


@dataclass(frozen=True)
class VideoInfo:
    """What a video file holds. ``width``/``height`` are the display size (after ``rotation``)."""

    duration_s: float
    fps: float
    width: int
    height: int
    n_frames: int               # the container's count, or duration x fps when it has none
    has_audio: bool
    sample_rate: int | None
    channels: int | None
    rotation: int               # display rotation, degrees counter-clockwise (0, 90, 180, -90)


def _open(path: str | Path) -> av.container.InputContainer:
    try:
        return av.open(str(path), "r")
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as e:
        reason = getattr(e, "strerror", None) or type(e).__name__
        raise AVDemoError(f"cannot read {Path(path).name!r} as a video or audio file ({reason}); "
                          "try another file, e.g. an MP4, MOV, WebM or WAV") from e


def _video_stream(container: av.container.InputContainer, path: str | Path) -> av.video.stream.VideoStream:
    if not container.streams.video:
        raise AVDemoError(f"{Path(path).name!r} has no video stream; upload a video file")
    return container.streams.video[0]     # default slice threading: frame threading can hang on
                                          # an early exit once torch is imported (PyAV #1849)


def _start_s(container: av.container.InputContainer) -> float:
    return container.start_time / av.time_base if container.start_time is not None else 0.0


def _first_frame(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                 path: str | Path) -> av.VideoFrame:
    try:
        for frame in container.decode(stream):
            return frame
    except av.error.FFmpegError as e:
        raise AVDemoError(f"cannot decode the video of {Path(path).name!r} ({e})") from e
    raise AVDemoError(f"the video stream of {Path(path).name!r} has no decodable frames")


def probe(path: str | Path) -> VideoInfo:
    """Read the headers and the first frame (for its rotation) of a video file."""
    with _open(path) as container:
        stream = _video_stream(container, path)
        fps = float(stream.average_rate or stream.guessed_rate or stream.base_rate or 0) or 25.0
        if container.duration is not None:
            duration_s = container.duration / av.time_base
        elif stream.duration is not None and stream.time_base is not None:
            duration_s = float(stream.duration * stream.time_base)
        else:
            duration_s = stream.frames / fps if stream.frames else 0.0
        audio = container.streams.audio[0] if container.streams.audio else None
        rotation = _first_frame(container, stream, path).rotation
        width, height = stream.codec_context.width, stream.codec_context.height
        if rotation % 180:
            width, height = height, width
        return VideoInfo(
            duration_s=duration_s, fps=fps, width=width, height=height,
            n_frames=stream.frames or max(1, int(round(duration_s * fps))),
            has_audio=audio is not None,
            sample_rate=audio.codec_context.sample_rate if audio else None,
            channels=audio.codec_context.channels if audio else None,
            rotation=rotation,
        )


def scaled_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """(width, height) shrunk to fit ``max_side`` (aspect kept), never enlarged."""
    if max_side is None or max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _to_rgb(frame: av.VideoFrame, max_side: int | None) -> np.ndarray:
    """A decoded frame -> uint8 RGB (H, W, 3) in display orientation, longest side <= max_side."""
    k = round(frame.rotation / 90) % 4             # np.rot90 turns counter-clockwise, as the matrix
    w, h = (frame.height, frame.width) if k % 2 else (frame.width, frame.height)
    w, h = scaled_size(w, h, max_side)
    if k % 2:
        w, h = h, w
    rgb = frame.to_ndarray(format="rgb24", width=w, height=h, interpolation="AREA")
    return np.ascontiguousarray(np.rot90(rgb, k)) if k else rgb


def iter_frames(path: str | Path, stride: int = 1, max_side: int | None = None,
                start_s: float = 0.0) -> Iterator[tuple[float, np.ndarray]]:
    """(time_s, uint8 RGB frame) for every ``stride``-th frame from ``start_s``, decoded as a stream.

    Frames are counted from ``start_s`` (0 = the first frame), so the same call always yields the
    same frames; display rotation metadata is applied.
    """
    if stride < 1:
        raise ValueError(f"stride must be >= 1; got {stride}")
    with _open(path) as container:
        stream = _video_stream(container, path)
        origin = _start_s(container)
        if start_s > 0:
            container.seek(int((origin + start_s) * av.time_base), backward=True)
        fps = float(stream.average_rate or stream.guessed_rate or 25)
        i = 0
        try:
            for frame in container.decode(stream):
                t = frame.time - origin if frame.time is not None else start_s + i / fps
                if t < start_s - 0.5 / fps:
                    continue
                if i % stride == 0:
                    yield t, _to_rgb(frame, max_side)
                i += 1
        except av.error.FFmpegError as e:
            raise AVDemoError(f"cannot decode the video of {Path(path).name!r} after {i} frames ({e})") from e
        if i == 0:
            raise AVDemoError(f"the video stream of {Path(path).name!r} has no decodable frames")


def frame_at(path: str | Path, time_s: float, max_side: int | None = None) -> tuple[float, np.ndarray]:
    """The frame shown at ``time_s`` (the last one starting at or before it), found by seeking."""
    last = None
    for t, frame in iter_frames(path, max_side=max_side, start_s=max(0.0, time_s - 1.0)):
        if last is not None and t > time_s + 1e-6:
            break
        last = (t, frame)
    if last is None:
        raise AVDemoError(f"{Path(path).name!r} has no frame at {time_s:.2f} s")
    return last


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """The whole first audio track: float32 (T,) or (T, C) in [-1, 1], and its sample rate.

    Sample 0 is at the container's start time, like the frame times of ``iter_frames``.
    """
    with _open(path) as container:
        if not container.streams.audio:
            raise AVDemoError(f"{Path(path).name!r} has no audio track")
        stream = container.streams.audio[0]
        sample_rate = stream.codec_context.sample_rate
        resampler = av.AudioResampler(format="fltp")
        chunks, first_time = [], None
        try:
            for frame in container.decode(stream):
                if first_time is None and frame.time is not None:
                    first_time = frame.time
                chunks += [f.to_ndarray() for f in resampler.resample(frame)]   # (C, n) each
            chunks += [f.to_ndarray() for f in resampler.resample(None)]
        except av.error.FFmpegError as e:
            raise AVDemoError(f"cannot decode the audio of {Path(path).name!r} ({e})") from e
        if not chunks:
            raise AVDemoError(f"the audio track of {Path(path).name!r} is empty")
        wav = np.concatenate(chunks, axis=1).T.astype(np.float32)                # (T, C)
        offset = int(round(((first_time or 0.0) - _start_s(container)) * sample_rate))
    if offset > 0:
        wav = np.concatenate([np.zeros((offset, wav.shape[1]), np.float32), wav])
    elif offset < 0:
        wav = wav[-offset:]
    wav = np.clip(wav, -1.0, 1.0)
    return (wav[:, 0] if wav.shape[1] == 1 else wav), sample_rate


def _even_crop(frame: np.ndarray) -> np.ndarray:
    h, w = frame.shape[:2]
    return frame[: h - h % 2, : w - w % 2]


def _encode_audio(container: av.container.OutputContainer, stream: av.audio.stream.AudioStream,
                  planar: np.ndarray, start: int, stop: int, final: bool = False) -> int:
    """Encode samples [start, stop) of (C, T) ``planar`` in codec-sized frames (a shorter last one when
    ``final``); returns where the next call starts."""
    size = stream.codec_context.frame_size or 1024
    while start + size <= stop or (final and start < stop):
        chunk = np.ascontiguousarray(planar[:, start:min(start + size, stop)])
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=stream.layout.name)
        frame.sample_rate, frame.pts = stream.codec_context.sample_rate, start
        container.mux(stream.encode(frame))
        start += chunk.shape[1]
    return start


def write_mp4(path: str | Path, frames: Iterable[np.ndarray], fps: float, audio: np.ndarray | None = None,
              sample_rate: int | None = None) -> Path:
    """Encode uint8 RGB frames (H, W, 3) and optional audio into a browser-playable MP4.

    H.264 yuv420p (odd sizes are cropped by one pixel to even), AAC audio with the input's channels,
    ``+faststart``; frames are consumed one at a time; the audio is cut at the video's end. The file
    appears at ``path`` only when complete.
    """
    path = Path(path)
    planar = None
    if audio is not None:
        if sample_rate is None:
            raise ValueError("audio needs its sample_rate")
        audio = np.asarray(audio, dtype=np.float32)
        planar = np.clip(audio[None] if audio.ndim == 1 else audio.T, -1.0, 1.0)           # (C, T)
    rate = Fraction(fps).limit_denominator(100_000)

    def write(tmp: Path) -> None:
        frame_iter = iter(frames)
        first = next(frame_iter, None)
        if first is None:
            raise AVDemoError("no frames to write")
        height, width = _even_crop(np.asarray(first)).shape[:2]
        with av.open(str(tmp), "w", format="mp4", container_options={"movflags": "+faststart"}) as out:
            video = out.add_stream(VIDEO_CODEC, rate=rate, options=VIDEO_OPTIONS)
            video.width, video.height, video.pix_fmt = width, height, "yuv420p"
            sound = None
            if planar is not None:
                sound = out.add_stream(AUDIO_CODEC, rate=int(sample_rate),
                                       layout=av.AudioLayout(f"{planar.shape[0]}c").name)
            done = n = 0
            for frame in itertools.chain([first], frame_iter):
                frame = _even_crop(np.asarray(frame, dtype=np.uint8))
                out.mux(video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
                n += 1
                if sound is not None:
                    done = _encode_audio(out, sound, planar, done, min(planar.shape[1], int(n / fps * sample_rate)))
            out.mux(video.encode())
            if sound is not None:
                _encode_audio(out, sound, planar, done, min(planar.shape[1], int(n / fps * sample_rate)), final=True)
                out.mux(sound.encode())

    atomic_write(path, write)
    return path
