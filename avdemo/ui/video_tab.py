"""Tab 1, heat map on a video: every frame with the sound around it, the scores over time next to the
loudness, any frame large, and counterfactual sounds (silence, noise, another clip, an upload)."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
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
from .model_tab import Pickers, picked
from .guards import HEAVY, HEAVY_RATE, visitor
from .indexes import in_background
from .models import checkpoint_file, get_model, model_at
from .status import TICK_S
from .views import export_path

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"
LIMITS = VideoMapConfig()
SOUNDS = ("original", "silence", "noise", "another example clip", "uploaded sound")
CURVES = {"peak": "#d62728", "mean": "#ff7f0e", "s_A": "#1f77b4"}
MODEL_B = "model B: "          # prefix of model B's runs in the strip (drawn dashed)
ABOUT = (f"Upload a video (any container and codec FFmpeg reads) or pick an example. Each output frame is "
         f"mapped with the model's window of sound centred on it (1 s for the cpu preset, 3 s for the paper "
         f"preset; tiled around at the ends of the clip). **Limits:** videos of at most "
         f"{LIMITS.max_duration_s:g} s; frames downscaled to {LIMITS.max_side} px on the longer side. "
         f"Per-frame normalisation always shows a hot spot, even in silence: compare with *per clip* or "
         f"*absolute*, and with the silence counterfactual.")


# Run on page load (``launch(js=...)``): model A's and model B's heat-map players play, pause and seek together.
# Each acts only where the other differs, so the partner's own events end there. Gradio replaces a player's
# <video> when it gets a new file, so the pair is looked up again every 0.5 s.
LOCK_PLAYERS_JS = """
() => {
  const follow = (from, to) => {
    const act = {
      play: () => { if (to.paused) to.play().catch(() => {}); },
      pause: () => { if (!to.paused) to.pause(); },
      seeked: () => { if (Math.abs(to.currentTime - from.currentTime) > 0.05) to.currentTime = from.currentTime; },
    };
    for (const [event, run] of Object.entries(act)) {
      from.addEventListener(event, () => { if (from.avdemoPartner === to) run(); });
    }
  };
  setInterval(() => {
    const a = document.querySelector('#video-output video'), b = document.querySelector('#video-output-b video');
    if (a && b && (a.avdemoPartner !== b || b.avdemoPartner !== a)) {
      a.avdemoPartner = b; b.avdemoPartner = a; follow(a, b); follow(b, a);
      b.currentTime = a.currentTime;         // the new pair starts where A is
      if (a.paused) b.pause(); else b.play().catch(() => {});
    }
  }, 500);
}
"""


def example_clips() -> list[str]:
    return [str(p) for p in sorted(EXAMPLES_DIR.glob("*.mp4"))]


def video_config(normalisation: str, cmap: str, opacity: float, contour: float, stride: int = 1,
                 audio: Any = None) -> VideoMapConfig:
    """The controls as a config; a contour threshold of 0 means no contour."""
    return VideoMapConfig(stride=int(stride), normalisation=normalisation, colormap=cmap, opacity=float(opacity),
                          contour_threshold=float(contour) or None, audio=audio)


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


def strip_figure(runs: dict[str, dict[str, list[float]]], current: str, time_s: float | None) -> go.Figure:
    """Peak, mean and s_A over time above the loudness heard; the current run solid, earlier runs of the
    same video (other sounds) dotted; a line at the inspected time."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.65, 0.35], vertical_spacing=0.06)
    for label, run in runs.items():
        dash, width = ("solid", 2) if label == current else ("dash", 2) if label.startswith(MODEL_B) else ("dot", 1)
        for name, colour in CURVES.items():
            fig.add_scatter(x=run["times_s"], y=run[name], name=f"{name} ({label})", row=1, col=1,
                            line=dict(color=colour, dash=dash, width=width))
        fig.add_scatter(x=run["times_s"], y=run["loudness_db"], name=f"loudness ({label})", row=2, col=1,
                        line=dict(color="#555555", dash=dash, width=width))
    if time_s is not None:
        fig.add_vline(x=time_s, line=dict(color="black", width=1))
    fig.update_yaxes(title_text="similarity", row=1, col=1)
    fig.update_yaxes(title_text="RMS dBFS", row=2, col=1)
    fig.update_xaxes(title_text="time (s)", row=2, col=1)
    fig.update_layout(height=380, margin=dict(l=50, r=10, t=10, b=40), legend=dict(font=dict(size=10)))
    return fig


def curves(result: VideoMapResult) -> dict[str, list[float]]:
    return {k: np.asarray(getattr(result, k)).round(4).tolist()
            for k in ("times_s", "peak", "mean", "s_A", "loudness_db")}


def summary(result: VideoMapResult) -> str:
    duration = float(result.times_s[-1] - result.times_s[0]) + 1 / result.fps
    total = result.seconds["total"]
    split = ", ".join(f"{stage} {result.seconds[stage]:.1f}" for stage in ("decode", "audio", "model", "overlay", "encode"))
    lines = [f"**Sound heard:** {result.audio_label}. **{len(result.times_s)} frames** mapped at "
             f"{result.frame_size[1]}x{result.frame_size[0]}, {result.fps:.3g} fps, in {total:.1f} s "
             f"({total / duration:.2f} s per second of video; {split} s).",
             f"Mean over frames: peak {result.peak.mean():.3f}, mean {result.mean.mean():.3f}, "
             f"s_A {result.s_A.mean():.3f}, s_L {result.s_L.mean():.3f}; S ranges over "
             f"{result.clip_range[0]:.3f}..{result.clip_range[1]:.3f} in this clip."]
    return "\n\n".join(lines + [f"*{note}*" for note in result.notes])


def map_video(checkpoint: str, video: str | None, controls: tuple, fast: bool, progress: gr.Progress,
              label: str = "") -> tuple[VideoMapConfig, VideoMapResult, float, np.ndarray]:
    """``localize_video`` with the tab's controls (normalisation, colour map, opacity, contour, stride,
    sound, other clip, sound file): (config, result, first time, its drawn frame)."""
    if not video:
        raise AVDemoError("upload a video or pick an example first")
    *drawing, stride, sound, other_clip, sound_file = controls
    cfg = video_config(*drawing, stride, paired_audio(sound, other_clip, sound_file))
    model = get_model(checkpoint)
    if fast:
        cfg = fast_config(cfg, model.pixel_mean.device)
    result = localize_video(model, video, cfg, progress=lambda f, message: progress(f, desc=label + message),
                            out_path=export_path(Path(video).stem + "-heatmap", ".mp4"))
    t, frame = frame_overlay(result, video, float(result.times_s[0]), cfg)
    return cfg, result, t, frame


def run(checkpoint: str, video: str | None, normalisation: str, cmap: str, opacity: float, contour: float,
        stride: int, sound: str, other_clip: str | None, sound_file: str | None, state: dict | None,
        fast: bool = False, progress=gr.Progress(), request: gr.Request | None = None):
    """Map the video; returns the MP4, the strip, a summary, the time slider, the large frame, the state."""
    HEAVY_RATE.check(visitor(request))                      # limits: video mappings per visitor
    cfg, result, t, frame = map_video(checkpoint, video, (normalisation, cmap, opacity, contour, stride, sound,
                                                          other_clip, sound_file), fast, progress)
    return mapped_view(checkpoint, video, cfg, result, t, frame, state)


def mapped_view(checkpoint: str, video: str, cfg: VideoMapConfig, result: VideoMapResult, t: float,
                frame: np.ndarray, state: dict | None):
    """What the tab shows of a mapped video: the MP4, the strip (with earlier runs of the same frames), a
    summary, the time slider, the large frame, and the new state."""
    same_frames = state and (state["video"], state["stride"], state["checkpoint"]) == (video, cfg.stride, checkpoint)
    runs = dict(state["runs"]) if same_frames else {}
    runs[result.audio_label] = curves(result)
    state = {"video": video, "stride": cfg.stride, "checkpoint": checkpoint, "result": result,
             "label": result.audio_label, "runs": runs}
    slider = gr.update(minimum=float(result.times_s[0]), maximum=float(result.times_s[-1]), value=t,
                       step=round(float(np.min(np.diff(result.times_s))), 4) if len(result.times_s) > 1 else 0.1)
    return (str(result.video_path), strip_figure(runs, result.audio_label, t), summary(result), slider,
            frame, state)


def example_folder(checkpoint_path: str, clip: Path) -> Path:
    """Where the example ``clip`` mapped by a checkpoint is kept: with the indexes, by content."""
    digest = file_sha256(checkpoint_path)[:12]
    return default_cache_dir() / "examples" / f"{Path(checkpoint_path).stem}-{digest}-{clip.stem}"


def map_example(checkpoint_path: str, clip: Path) -> VideoMapResult:
    """The example ``clip`` mapped by the checkpoint with the tab's defaults: computed once, then kept."""
    folder = example_folder(checkpoint_path, clip)
    if not (folder / "result.json").is_file():
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=folder.parent))
        try:
            save_result(localize_video(model_at(checkpoint_path), clip, LIMITS, out_path=staging / "video.mp4"),
                        staging)
            staging.rename(folder)
        except OSError:
            if not (folder / "result.json").is_file():       # not another process keeping the same result
                raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return load_result(folder)


def run_b(model_b: str | None, video: str | None, normalisation: str, cmap: str, opacity: float, contour: float,
          stride: int, sound: str, other_clip: str | None, sound_file: str | None, fast: bool, state: dict | None,
          progress=gr.Progress()):
    """After ``run``: the same video mapped by model B (its MP4, its frame at the slider's time, its curves
    dashed in the strip); hidden without a model B."""
    hidden = gr.update(value=None, visible=False)
    if not picked(model_b) or not state:
        return hidden, hidden, gr.skip(), state
    _, result, t, frame = map_video(model_b, video, (normalisation, cmap, opacity, contour, stride, sound,
                                                     other_clip, sound_file), fast, progress, label=MODEL_B)
    runs = {**state["runs"], MODEL_B + result.audio_label: curves(result)}
    state = {**state, "result_b": result, "runs": runs}
    return (gr.update(value=str(result.video_path), visible=True), gr.update(value=frame, visible=True),
            strip_figure(runs, state["label"], t), state)


def show_frame_b(time_s: float, normalisation: str, cmap: str, opacity: float, contour: float, state: dict | None):
    """Model B's mapped frame at the same time as A's (after ``show_frame``)."""
    if not state or "result_b" not in state:
        return gr.skip()
    _, frame = frame_overlay(state["result_b"], state["video"], float(time_s),
                             video_config(normalisation, cmap, opacity, contour, state["stride"]))
    return frame


def show_frame(time_s: float, normalisation: str, cmap: str, opacity: float, contour: float, state: dict | None):
    """The mapped frame nearest ``time_s``, large, drawn with the current controls; and the strip."""
    if not state:
        return gr.skip(), gr.skip()                     # nothing mapped yet: controls just set the next run
    t, frame = frame_overlay(state["result"], state["video"], float(time_s),
                             video_config(normalisation, cmap, opacity, contour, state["stride"]))
    return frame, strip_figure(state["runs"], state["label"], t)


def build_video_tab(pickers: Pickers) -> None:
    """The tab's components and events (call inside ``with gr.Tab(...)``); the first example clip is mapped
    by the picked model in the background and shown as soon as it is ready (unless the user mapped
    something first)."""
    model_choice, model_b_choice = pickers.model, pickers.model_b
    examples = example_clips()
    gr.Markdown(ABOUT)
    state = gr.State(None)
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
            video_out = gr.Video(label="Heat map (with the sound heard)", interactive=False, height=300,
                                 elem_id="video-output")
            info = gr.Markdown(label="Summary")
            video_b = gr.Video(label="Model B's heat map", interactive=False, height=300, visible=False,
                               elem_id="video-output-b")
    strip = gr.Plot(label="Scores over time and loudness (model B dashed)")
    with gr.Row():
        time_s = gr.Slider(0, 1, value=0, step=0.04, label="Inspect the frame at (s)", scale=1)
        frame = gr.Image(label="Frame at the chosen time", type="numpy", interactive=False, scale=2)
        frame_b = gr.Image(label="Model B, same frame", type="numpy", interactive=False, scale=2, visible=False)

    if examples:
        checkpoint, clip = model_choice.value, Path(examples[0])
        job = in_background(("example", checkpoint_file(checkpoint), clip.name), map_example,
                            checkpoint_file(checkpoint), clip)
        timer = gr.Timer(TICK_S)

        def show_example(video: str | None, state: dict | None):
            """The example mapped, once ready, unless this session picked or mapped a video already."""
            if video or state is not None or (job.done() and job.exception() is not None):
                return *[gr.skip()] * 7, gr.Timer(active=False)
            if not job.done():
                return *[gr.skip()] * 7, gr.Timer(active=True)
            result = job.result()
            t, frame = frame_overlay(result, clip, float(result.times_s[0]), LIMITS)
            view = mapped_view(checkpoint, str(clip), LIMITS, result, t, frame, None)
            return str(clip), *view, gr.Timer(active=False)

        timer.tick(show_example, [video_in, state], [video_in, video_out, strip, info, time_s, frame, state, timer],
                   show_progress="hidden", api_name="video_example")

    drawing = [normalisation, cmap, opacity, contour]
    mapping = [video_in, *drawing, stride, sound, other_clip, sound_file]
    go_button.click(run, [model_choice, *mapping, state, fast], [video_out, strip, info, time_s, frame, state],
                    api_name="localize_video", **HEAVY      # limits: one mapping at a time, in its own queue
                    ).then(run_b, [model_b_choice, *mapping, fast, state], [video_b, frame_b, strip, state],
                           api_name="localize_video_b", **HEAVY)
    gr.on([time_s.release, normalisation.change, cmap.change, opacity.release, contour.release], show_frame,
          [time_s, *drawing, state], [frame, strip], api_name="video_frame"
          ).then(show_frame_b, [time_s, *drawing, state], frame_b, api_name="video_frame_b")
