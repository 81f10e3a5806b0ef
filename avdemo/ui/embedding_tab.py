"""Tab 3, the embedding space: a UMAP of the images and sounds together (computed when the index was
built), coloured by modality, class, kind, split or a per-sample score. Circles are images, diamonds the
sounds of sounding pairs, crosses the sounds of non-sounding pairs. A chosen class is highlighted (the
others fade) and, on request, its pairs are joined by lines; the chosen sample is always joined.

``gr.Plot`` has no click events, so a sample is chosen with the picker beside the plot (type the ``#``
number the hover shows, an id or a class) or by clicking one of its neighbours; the chosen sample is
starred in the plot and shown with its card, its sound and its nearest images and sounds."""
from __future__ import annotations

import gradio as gr
import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative

from ..errors import AVDemoError
from ..index import SampleIndex
from .indexes import model_and_index
from .inputs import sample_picker
from .model_tab import Pickers, picked
from .status import status_line
from .views import (ALL_CLASSES, card, class_choices, export_png, filtered_class, sample_choices, sample_markdown,
                    sample_row, score_line)

COLOUR_BY = {"modality": "modality", "class": "class", "kind": "sounding / non-sounding kind", "group": "split",
             "ciou": "cIoU", "s_A": "s_A", "s_L": "s_L", "conf_top25": "map confidence (top 25 %)"}
SCORE_COLOURS = ("ciou", "s_A", "s_L", "conf_top25")
SYMBOLS = {"image": "circle", "sound": "diamond", "non-sounding sound": "x"}
NEIGHBOURS = 8
FADED = 0.15             # opacity of the points outside the chosen class


def _points(index: SampleIndex, negatives: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The plotted points, each distinct image once and every sound: (sample, modality, x, y) of each;
    the modality of a non-sounding pair's sound is "non-sounding sound"."""
    keep = np.arange(len(index)) if negatives else np.flatnonzero(index.sounding)
    first = np.unique(index.thumb_row[keep], return_index=True)[1]
    images = keep[np.sort(first)]
    samples = np.concatenate([images, keep])
    modality = np.array(["image"] * len(images) + ["sound" if index.sounding[i] else "non-sounding sound" for i in keep])
    xy = np.concatenate([index.umap_image[images], index.umap_audio[keep]])
    return samples, modality, xy[:, 0], xy[:, 1]


def embedding_figure(index: SampleIndex, colour_by: str, pairs: bool = False, negatives: bool = True,
                     selected: int | None = None, focus: str | None = None) -> go.Figure:
    """The UMAP scatter: circles are images, diamonds sounds, crosses non-sounding pairs' sounds; hover
    names the sample (#index id · class). ``focus``: a class drawn fully while the others fade, whose
    pairs are joined by lines when ``pairs`` is on.

    Traces are plain dicts and the figure skips plotly's per-property validation, which otherwise
    takes most of a second for a few thousand points (the browser test draws every trace kind)."""
    samples, modality, x, y = _points(index, negatives)
    focus = filtered_class(index, focus)
    in_focus = np.ones(len(samples), bool) if focus is None else index.class_names[samples] == focus
    hover = np.array([f"{index.label(i)}<br>{m}<br>{score_line(index, i)}" for i, m in zip(samples, modality)])
    traces: list[dict] = []
    if pairs and focus is not None:
        keep = np.unique(samples[in_focus])
        gaps = np.full((len(keep), 2), np.nan)
        ends = np.stack([index.umap_image[keep], index.umap_audio[keep], gaps], 1).reshape(-1, 2)
        traces.append(dict(type="scatter", x=ends[:, 0], y=ends[:, 1], mode="lines", name="pairs", hoverinfo="skip",
                           line=dict(color="rgba(120,120,120,0.25)", width=1)))

    def add(mask: np.ndarray, name: str, marker: dict, legend: bool = True) -> None:
        """One trace per modality, each with its marker symbol; points outside the focus class fade."""
        for kind, symbol in SYMBOLS.items():
            m = mask & (modality == kind)
            if not m.any():
                continue
            colour = marker["color"][m] if isinstance(marker["color"], np.ndarray) else marker["color"]
            traces.append(dict(type="scatter", x=x[m], y=y[m], name=name, legendgroup=name, mode="markers",
                               showlegend=legend and not any(t.get("legendgroup") == name for t in traces),
                               customdata=samples[m], hovertext=hover[m], hovertemplate="%{hovertext}<extra></extra>",
                               marker={**marker, "symbol": symbol, "color": colour,
                                       "opacity": np.where(in_focus[m], 1.0, FADED)}))

    if colour_by in ("modality", "class", "kind", "group"):
        values = {"modality": modality, "class": index.class_names[samples], "kind": index.kinds[samples],
                  "group": index.groups[samples]}[colour_by]
        values = np.where(values == "", "(none)", values)
        palette = qualitative.Dark24 + qualitative.Light24
        for k, value in enumerate(sorted(set(values))):
            add(values == value, str(value), dict(size=7, color=palette[k % len(palette)]))
    elif colour_by in SCORE_COLOURS:
        values = index.scores[colour_by][samples]
        defined = ~np.isnan(values)
        add(~defined, "undefined", dict(size=6, color="lightgray"))
        if defined.any():
            scale = dict(colorscale="Viridis", cmin=float(values[defined].min()), cmax=float(values[defined].max()),
                         colorbar=dict(title=dict(text=COLOUR_BY[colour_by])))
            add(defined, COLOUR_BY[colour_by], dict(size=7, color=values, **scale), legend=False)
    else:
        raise AVDemoError(f"unknown colouring {colour_by!r}; use one of {', '.join(COLOUR_BY)}")
    if selected is not None:
        i = int(selected)
        traces.append(dict(type="scatter", x=[index.umap_image[i, 0], index.umap_audio[i, 0]],
                           y=[index.umap_image[i, 1], index.umap_audio[i, 1]], mode="markers+lines", name=f"#{i}",
                           hovertext=[f"{index.label(i)}<br>image", f"{index.label(i)}<br>sound"],
                           hovertemplate="%{hovertext}<extra></extra>", line=dict(color="black", width=2),
                           marker=dict(symbol="star", size=18, color="gold", line=dict(color="black", width=1.5))))
    layout = dict(height=760, margin=dict(l=10, r=10, t=40, b=10), uirevision="umap",
                  legend=dict(itemsizing="constant", font=dict(size=10), tracegroupgap=0, title=dict(
                      text="click: hide, double-click: only this")),
                  title=dict(text=f"UMAP of {len(np.unique(samples))} pairs: ● image, ◆ sound, ✕ sound of a "
                                  f"non-sounding pair" + (f"; class {focus} highlighted" if focus else "")),
                  xaxis=dict(showticklabels=False), yaxis=dict(showticklabels=False, scaleanchor="x"))
    return go.Figure(data=traces, layout=layout, _validate=False)


def neighbours(index: SampleIndex, i: int, k: int = NEIGHBOURS) -> dict[str, list[tuple[int, float]]]:
    """The ``k`` sounding pairs whose image is nearest sample ``i``'s image (other pictures only), and
    whose sound is nearest its sound (other recordings only): {"image": [(sample, s)], "sound": [...]}."""
    out = {}
    for modality, emb, same in (("image", index.image_emb, index.thumb_row), ("audio", index.audio_emb, None)):
        sims, found = index.search(modality, emb[i][None], k + 2)
        other = [(int(j), float(s)) for j, s in zip(found[0], sims[0])
                 if (index.thumb_row[j] != index.thumb_row[i] if same is not None
                     else index.audio_paths[j] != index.audio_paths[i])]
        out["image" if modality == "image" else "sound"] = other[:k]
    return out


def _neighbour_gallery(index: SampleIndex, i: int, found: list[tuple[int, float]]) -> list[tuple[np.ndarray, str]]:
    same = lambda j: index.class_names[j] == index.class_names[i]
    mark = lambda j: "" if not index.class_names[i] else (" ✓" if same(j) else " ✗")
    return [(index.thumbnail(j), f"#{j} {index.class_names[j]}{mark(j)}  {s:.3f}") for j, s in found]


def show_sample(checkpoint: str, dataset: str, sample: int | None, colour_by: str, pairs: bool, negatives: bool,
                focus: str | None = None):
    """Figure with the sample starred, its card, sound and description, its neighbours (images and
    sounds), and the neighbour lists for clicks."""
    _, index = model_and_index(checkpoint, dataset)
    if sample is None:
        return embedding_figure(index, colour_by, pairs, negatives, focus=focus), None, None, "", [], [], {}
    i = sample_row(index, sample)
    near = neighbours(index, i)
    return (embedding_figure(index, colour_by, pairs, negatives, i, focus), card(index, i), str(index.audio_paths[i]),
            sample_markdown(index, i), _neighbour_gallery(index, i, near["image"]),
            _neighbour_gallery(index, i, near["sound"]), {k: [j for j, _ in v] for k, v in near.items()})


def draw(checkpoint: str, dataset: str, sample: int | None, colour_by: str, pairs: bool, negatives: bool,
         focus: str | None) -> go.Figure:
    """The embedding space drawn as the controls say, with the chosen sample starred."""
    _, index = model_and_index(checkpoint, dataset)
    sample = None if sample is None else sample_row(index, sample)
    return embedding_figure(index, colour_by, pairs, negatives, sample, focus)


def figure_b(model_b: str | None, dataset: str, sample: int | None, colour_by: str, pairs: bool, negatives: bool,
             focus: str | None):
    """Model B's embedding space drawn as A's (its own UMAP), shown only when a model B is picked."""
    if not picked(model_b):
        return gr.update(value=None, visible=False)
    _, index = model_and_index(model_b, dataset)
    sample = None if sample is None else sample_row(index, sample)
    return gr.update(value=embedding_figure(index, colour_by, pairs, negatives, sample, focus), visible=True,
                     label=f"Model B's embedding space ({model_b})")


def build_embedding_tab(pickers: Pickers) -> gr.Markdown:
    """The tab's components and events (filled when the picked index is ready); returns its status line."""
    model_choice, model_b_choice, dataset_choice = pickers.model, pickers.model_b, pickers.dataset
    focus = pickers.class_filter            # the class filter: that class drawn fully, the others faded
    status = status_line()
    near = gr.State({})
    with gr.Row():
        colour_by = gr.Dropdown([(v, k) for k, v in COLOUR_BY.items()], value="class", label="Colour by", scale=2)
        pairs = gr.Checkbox(value=False, label="lines joining its pairs", scale=1)
        negatives = gr.Checkbox(value=True, label="non-sounding pairs", scale=1)
    with gr.Row():
        with gr.Column(scale=3):
            plot = gr.Plot(label="Embedding space (s_A)", elem_id="embedding-plot")
        with gr.Column(scale=2):
            sample = sample_picker(label="Sample (type its # from the hover, an id or a class)",
                                   elem_id="embedding-sample")
            picture = gr.Image(label="Card: ground truth, map, binarised map", interactive=False, height=200,
                               format="jpeg", elem_id="embedding-card")
            sound = gr.Audio(label="Its sound", interactive=False)
            info = gr.Markdown(label="Sample")
            export_button = gr.Button("Export card (PNG)", size="sm")
            exported = gr.File(label="Card", height=60)
    plot_b = gr.Plot(visible=False, label="Model B's embedding space", elem_id="embedding-plot-b")
    with gr.Row():
        image_neighbours = gr.Gallery(label="Nearest images (z_v), click to select", columns=8, height=170,
                                      format="jpeg", elem_id="embedding-image-neighbours")
        sound_neighbours = gr.Gallery(label="Nearest sounds (z_a), shown by their pictures", columns=8, height=170,
                                      format="jpeg")

    inputs = [model_choice, dataset_choice, sample, colour_by, pairs, negatives, focus]
    gr.on([colour_by.change, pairs.change, negatives.change, focus.change],
          draw,
          inputs, plot, api_name="embedding_plot")
    sample.change(show_sample, inputs, [plot, picture, sound, info, image_neighbours, sound_neighbours, near],
                  api_name="embedding_sample")
    gr.on([model_b_choice.change, sample.change, colour_by.change, pairs.change, negatives.change, focus.change],
          figure_b, [model_b_choice, *inputs[1:]], plot_b, api_name="embedding_plot_b")

    def pick(modality: str):
        def run(found: dict[str, list[int]], evt: gr.SelectData) -> int:
            return found[modality][evt.index]
        return run

    image_neighbours.select(pick("image"), near, sample, api_name="embedding_pick_image")
    sound_neighbours.select(pick("sound"), near, sample, api_name="embedding_pick_sound")

    def export(checkpoint: str, dataset: str, i: int | None) -> str:
        if i is None:
            raise gr.Error("choose a sample first")
        _, idx = model_and_index(checkpoint, dataset)
        i = sample_row(idx, i)
        return export_png(card(idx, i), f"card-{idx.ids[i]}")

    export_button.click(export, [model_choice, dataset_choice, sample], exported, api_name="embedding_export_card")

    def refresh(checkpoint: str, dataset: str, col: str, p: bool, n: bool):
        _, new = model_and_index(checkpoint, dataset)
        return (gr.update(choices=sample_choices(new), value=None), embedding_figure(new, col, p, n), {},
                gr.update(choices=class_choices(new), value=ALL_CLASSES))

    pickers.index_key.change(refresh, [model_choice, dataset_choice, colour_by, pairs, negatives],
                             [sample, plot, near, focus], api_name="embedding_refresh")
    focus.change(lambda c, d, f: gr.update(choices=sample_choices(model_and_index(c, d)[1], f)),
                 [model_choice, dataset_choice, focus], sample, api_name="embedding_class_samples")
    return status

