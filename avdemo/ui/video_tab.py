"""Tab 1, heat map on a video: every frame with the sound around it, by each picked model (a panel each:
its MP4 and its frame at the inspected time, the players locked together), the scores over time next to
the loudness (a line style per model), and counterfactual sounds (silence, noise, another clip, an
upload)."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any

import gradio as gr
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..errors import AVDemoError
from ..overlay import COLORMAPS, NORMALISATIONS
from ..cache import file_sha256
from ..index import default_cache_dir
from ..videomap import (VideoMapConfig, VideoMapResult, fast_config, frame_overlay, load_result, localize_video,
                        save_result)
from .guards import HEAVY, HEAVY_RATE, visitor
from .indexes import in_background
from .model_tab import Pickers
from .models import MAX_MODELS, ModelHandle, resolve
from .status import TICK_S
from .views import export_path, panel_label, panels

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"
LIMITS = VideoMapConfig()
SOUNDS = ("original", "silence", "noise", "another example clip", "uploaded sound")
CURVES = {"peak": "#d62728", "mean": "#ff7f0e", "s_A": "#1f77b4"}
DASHES = ("solid", "dash", "dashdot", "longdash", "dot")      # the strip's line style of each model
ABOUT = (f"Upload a video (any container and codec FFmpeg reads) or pick an example. Each output frame is "
         f"mapped with the model's window of sound centred on it (1 s for the cpu preset, 3 s for the paper "
         f"preset; tiled around at the ends of the clip). **Limits:** videos of at most "
         f"{LIMITS.max_duration_s:g} s; frames downscaled to {LIMITS.max_side} px on the longer side. "
         f"Per-frame normalisation always shows a hot spot, even in silence: compare with *per clip* or "
         f"*absolute*, and with the silence counterfactual.")


# Run on page load (``launch(js=...)``): the models' heat-map players play, pause and seek together. Each
# acts on the others only where they differ, so their own events end there. Gradio replaces a player's
# <video> when it gets a new file, so the group is looked up again every 0.5 s; a new member starts where
# the first player is.
LOCK_PLAYERS_JS = """
() => {
  const group = [];
  const act = (from, to, event) => {
    if (event === 'play' && to.paused) to.play().catch(() => {});
    if (event === 'pause' && !to.paused) to.pause();
    if (event === 'seeked' && Math.abs(to.currentTime - from.currentTime) > 0.05) to.currentTime = from.currentTime;
  };
  setInterval(() => {
    const players = [...document.querySelectorAll('[id^="video-output-"] video')];
    for (const p of players.filter((p) => !group.includes(p))) {
      for (const event of ['play', 'pause', 'seeked']) {
        p.addEventListener(event, () => {
          if (!p.isConnected) return;
          group.filter((q) => q !== p && q.isConnected).forEach((q) => act(p, q, event));
        });
      }
      const first = group.find((q) => q.isConnected);
      if (first) { p.currentTime = first.currentTime; if (!first.paused) p.play().catch(() => {}); }
      group.push(p);
    }
  }, 500);
}
"""


@dataclass(frozen=True)
class VideoControls:
    """The tab's controls, as one value: how the maps are drawn, which frames, which sound."""

    normalisation: str
    cmap: str
    opacity: float
    contour: float                 # 0: no contour
    stride: int = 1
    sound: str = "original"        # one of SOUNDS
    other_clip: str | None = None  # for "another example clip"
    sound_file: str | None = None  # for "uploaded sound"
    fast: bool = False

    def config(self) -> VideoMapConfig:
        """The controls as a ``VideoMapConfig`` (the sound chosen, the contour only when above 0)."""
        return VideoMapConfig(stride=int(self.stride), normalisation=self.normalisation, colormap=self.cmap,
                              opacity=float(self.opacity), contour_threshold=float(self.contour) or None,
                              audio=paired_audio(self.sound, self.other_clip, self.sound_file))

    def drawing(self, stride: int) -> VideoMapConfig:
        """How mapped frames are drawn (no sound needed)."""
        return VideoMapConfig(stride=stride, normalisation=self.normalisation, colormap=self.cmap,
                              opacity=float(self.opacity), contour_threshold=float(self.contour) or None)


Curves = dict[str, list[float]]


@dataclass
class VideoSession:
    """A session's mapped video: each picked model's result (in panel order), and the curves of every
    sound mapped over the same frames by the same models (sound heard -> model label -> curves)."""

    video: str
    stride: int
    models: list[str]                       # the models' names, in panel order
    labels: list[str]                       # their labels in the strip
    results: list[VideoMapResult]
    sound: str                              # the sound heard in the last run
    runs: dict[str, dict[str, Curves]] = field(default_factory=dict)


def example_clips() -> list[str]:
    return [str(p) for p in sorted(EXAMPLES_DIR.glob("*.mp4"))]


def paired_audio(choice: str, other_clip: str | None, sound_file: str | None) -> Any:
    """The ``VideoMapConfig.audio`` value for the sound chooser."""
    if choice == "original":
        return None
    if choice in ("silence", "noise"):
        return choice
    if choice == "another example clip":
        if not other_clip:
            raise AVDemoError("choose the example clip whose sound to pair with this video")
        return EXAMPLES_DIR / Path(other_clip).name        # a name of the picker (Dropdown checks it)
    if not sound_file:
        raise AVDemoError("upload a sound to pair with this video")
    return Path(sound_file)


def strip_figure(runs: dict[str, dict[str, Curves]], current: str, time_s: float | None) -> go.Figure:
    """Peak, mean and s_A over time above the loudness heard: a line style per model, the current sound
    drawn full, earlier sounds over the same frames thin; a line at the inspected time."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.65, 0.35], vertical_spacing=0.06)
    for sound, by_model in runs.items():
        width = 2 if sound == current else 1
        for k, (model, run) in enumerate(by_model.items()):
            dash, label = DASHES[k % len(DASHES)], f"{model}, {sound}"
            for name, colour in CURVES.items():
                fig.add_scatter(x=run["times_s"], y=run[name], name=f"{name} ({label})", row=1, col=1,
                                opacity=1.0 if sound == current else 0.5, line=dict(color=colour, dash=dash, width=width))
            fig.add_scatter(x=run["times_s"], y=run["loudness_db"], name=f"loudness ({label})", row=2, col=1,
                            line=dict(color="#555555", dash=dash, width=width))
    if time_s is not None:
        fig.add_vline(x=time_s, line=dict(color="black", width=1))
    fig.update_yaxes(title_text="similarity", row=1, col=1)
    fig.update_yaxes(title_text="RMS dBFS", row=2, col=1)
    fig.update_xaxes(title_text="time (s)", row=2, col=1)
    fig.update_layout(height=380, margin=dict(l=50, r=10, t=10, b=40), legend=dict(font=dict(size=10)))
    return fig


def curves(result: VideoMapResult) -> Curves:
    return {k: np.asarray(getattr(result, k)).round(4).tolist()
            for k in ("times_s", "peak", "mean", "s_A", "loudness_db")}


def run_summary(result: VideoMapResult, label: str) -> str:
    """What one model's run did: frames, time per stage, mean scores over frames, and notes."""
    duration = float(result.times_s[-1] - result.times_s[0]) + 1 / result.fps
    total = result.seconds["total"]
    split = ", ".join(f"{stage} {result.seconds[stage]:.1f}" for stage in ("decode", "audio", "model", "overlay", "encode"))
    lines = [f"**{label}**: **{len(result.times_s)} frames** mapped at {result.frame_size[1]}x{result.frame_size[0]}, "
             f"{result.fps:.3g} fps, in {total:.1f} s ({total / duration:.2f} s per second of video; {split} s). "
             f"Mean over frames: peak {result.peak.mean():.3f}, mean {result.mean.mean():.3f}, "
             f"s_A {result.s_A.mean():.3f}, s_L {result.s_L.mean():.3f}; S ranges over "
             f"{result.clip_range[0]:.3f}..{result.clip_range[1]:.3f} in this clip."]
    return "\n\n".join(lines + [f"*{note}*" for note in result.notes])


def map_video(model: ModelHandle, video: str, cfg: VideoMapConfig, fast: bool, progress: gr.Progress,
              label: str = "") -> VideoMapResult:
    """``localize_video`` by one model with the tab's settings (its fast settings when ``fast``)."""
    if fast:
        cfg = fast_config(cfg, model.model.pixel_mean.device)
    return localize_video(model.model, video, cfg, progress=lambda f, message: progress(f, desc=label + message),
                          out_path=export_path(Path(video).stem + "-heatmap", ".mp4"))


def run(models: list[ModelHandle], video: str | None, normalisation: str, cmap: str, opacity: float, contour: float,
        stride: int, sound: str, other_clip: str | None, sound_file: str | None, fast: bool,
        session: VideoSession | None, progress=gr.Progress(), request: gr.Request | None = None):
    """Map the video by every picked model in turn; returns each model's MP4 and frame, the strip, the
    summary, the time slider and the session."""
    HEAVY_RATE.check(visitor(request))                      # limits: video mappings per visitor
    if not video:
        raise AVDemoError("upload a video or pick an example first")
    controls = VideoControls(normalisation, cmap, opacity, contour, stride, sound, other_clip, sound_file, fast)
    cfg = controls.config()
    results = [map_video(m, video, cfg, fast, progress, label=f"{panel_label(models, k)} ({k + 1}/{len(models)}): ")
               for k, m in enumerate(models)]
    return mapped_view(models, video, controls, results, session)


def mapped_view(models: list[ModelHandle], video: str, controls: VideoControls, results: list[VideoMapResult],
                session: VideoSession | None):
    """What the tab shows of a mapped video: each model's MP4 and first frame, the strip (with earlier
    sounds over the same frames by the same models), the summary, the time slider, the new session."""
    names, labels = [m.name for m in models], [panel_label(models, k) for k in range(len(models))]
    same = session is not None and (session.video, session.stride, session.models) == (video, controls.stride, names)
    sound = results[0].audio_label
    runs = dict(session.runs) if same else {}
    runs[sound] = {label: curves(r) for label, r in zip(labels, results)}
    session = VideoSession(video, int(controls.stride), names, labels, results, sound, runs)
    first = float(results[0].times_s[0])
    frames = [frame_overlay(r, video, first, controls.drawing(session.stride))[1] for r in results]
    times = results[0].times_s
    slider = gr.update(minimum=first, maximum=float(times[-1]), value=first,
                       step=round(float(np.min(np.diff(times))), 4) if len(times) > 1 else 0.1)
    summary = "\n\n".join(run_summary(r, label) for r, label in zip(results, labels))
    return (*panels(models, [str(r.video_path) for r in results], "heat map (with the sound heard)"),
            *panels(models, frames, "frame at the chosen time"), strip_figure(runs, sound, first),
            f"**Sound heard:** {sound}.\n\n{summary}", slider, session)


def show_frame(time_s: float, normalisation: str, cmap: str, opacity: float, contour: float,
               session: VideoSession | None):
    """Each model's mapped frame nearest ``time_s``, drawn with the current controls; and the strip."""
    if session is None:
        return *[gr.skip()] * MAX_MODELS, gr.skip()     # nothing mapped yet: controls just set the next run
    drawing = VideoControls(normalisation, cmap, opacity, contour).drawing(session.stride)
    shown = [frame_overlay(r, session.video, float(time_s), drawing) for r in session.results]
    frames = [frame for _, frame in shown] + [gr.skip()] * (MAX_MODELS - len(shown))
    return *frames, strip_figure(session.runs, session.sound, shown[0][0])


def example_folder(model: ModelHandle, clip: Path) -> Path:
    """Where the example ``clip`` mapped by ``model`` is kept: with the indexes, by the content of both (a
    regenerated clip is mapped again)."""
    name = f"{Path(model.path).stem}-{model.digest[:12]}-{clip.stem}-{file_sha256(clip)[:8]}"
    return default_cache_dir() / "examples" / name


def map_example(model: ModelHandle, clip: Path) -> VideoMapResult:
    """The example ``clip`` mapped by ``model`` with the tab's defaults: computed once, then kept."""
    folder = example_folder(model, clip)
    if not (folder / "result.json").is_file():
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=folder.parent))
        try:
            save_result(localize_video(model.model, clip, LIMITS, out_path=staging / "video.mp4"), staging)
            staging.rename(folder)
        except OSError:
            if not (folder / "result.json").is_file():       # not another process keeping the same result
                raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return load_result(folder)


def build_video_tab(pickers: Pickers) -> None:
    """The tab's components and events (call inside ``with gr.Tab(...)``); the first example clip is mapped
    by the first picked model in the background and shown as soon as it is ready (unless the user mapped
    something first)."""
    examples = example_clips()
    gr.Markdown(ABOUT)
    session = gr.State(None)
    with gr.Row():
        with gr.Column(scale=1):
            video_in = gr.Video(label="Video", sources=["upload"], height=300, elem_id="video-input")
            if examples:
                gr.Examples([[p] for p in examples], inputs=[video_in], label="Example clips")
            with gr.Row():
                normalisation = gr.Radio([(text.split(":")[0], key) for key, text in NORMALISATIONS.items()],
                                         value=LIMITS.normalisation, label="Normalisation",
                                         info="per frame: always a hot spot; per clip: one scale; absolute: cosine 0..1")
                cmap = gr.Dropdown(list(COLORMAPS), value=LIMITS.colormap, label="Colour map")
            with gr.Row():
                opacity = gr.Slider(0, 1, value=LIMITS.opacity, step=0.05, label="Opacity")
                contour = gr.Slider(0, 1, value=0, step=0.05, label="Contour threshold (0 = none)")
                stride = gr.Slider(1, 10, value=LIMITS.stride, step=1, label="Frame stride",
                                   info="map every n-th frame (faster)")
            sound = gr.Radio(list(SOUNDS), value="original", label="Sound paired with the frames",
                             info="counterfactuals: how do the map and scores change without the true sound?")
            with gr.Row():
                other_clip = gr.Dropdown([Path(p).name for p in examples], value=None,
                                         label="Another example clip's sound")
                sound_file = gr.Audio(sources=["upload"], type="filepath", label="Uploaded sound")
            fast = gr.Checkbox(False, label="Fast mode",
                               info="the audio tower runs once per batch of frames, and in bfloat16 where the "
                                    "CPU has it: about 1.4x faster; maps within ~0.02 of the exact ones, "
                                    "the peak cell moves in some frames")
            go_button = gr.Button("Map the video", variant="primary")
        with gr.Column(scale=1):
            info = gr.Markdown(label="Summary")
    videos, frames = [], []
    with gr.Row():
        for k in range(MAX_MODELS):
            videos.append(gr.Video(label="Heat map (with the sound heard)", interactive=False, height=300,
                                   visible=k == 0, elem_id=f"video-output-{k}"))
    strip = gr.Plot(label="Scores over time and loudness (a line style per model)")
    time_s = gr.Slider(0, 1, value=0, step=0.04, label="Inspect the frame at (s)")
    with gr.Row():
        for k in range(MAX_MODELS):
            frames.append(gr.Image(label="Frame at the chosen time", type="numpy", interactive=False, visible=k == 0,
                                   elem_id=f"video-frame-{k}"))

    if examples:
        first, clip = resolve(pickers.models.value[0]), Path(examples[0])
        job = in_background(("example", first.path, clip.name), map_example, first, clip)
        timer = gr.Timer(TICK_S)

        def show_example(video: str | None, current: VideoSession | None):
            """The example mapped, once ready, unless this session picked or mapped a video already."""
            if video or current is not None or (job.done() and job.exception() is not None):
                return *[gr.skip()] * (2 * MAX_MODELS + 5), gr.Timer(active=False)
            if not job.done():
                return *[gr.skip()] * (2 * MAX_MODELS + 5), gr.Timer(active=True)
            return str(clip), *mapped_view([first], str(clip), VideoControls(LIMITS.normalisation, LIMITS.colormap, LIMITS.opacity, 0),
                                           [job.result()], None), gr.Timer(active=False)

        timer.tick(show_example, [video_in, session], [video_in, *videos, *frames, strip, info, time_s, session, timer],
                   show_progress="hidden", api_name="video_example")

    drawing = [normalisation, cmap, opacity, contour]
    go_button.click(run, [pickers.models, video_in, *drawing, stride, sound, other_clip, sound_file, fast, session],
                    [*videos, *frames, strip, info, time_s, session], api_name="localize_video",
                    **HEAVY)                                # limits: one mapping at a time, in its own queue
    gr.on([time_s.release, normalisation.change, cmap.change, opacity.release, contour.release], show_frame,
          [time_s, *drawing, session], [*frames, strip], api_name="video_frame")
