"""Tab 3, the embedding space of each picked model (a panel each): a UMAP of the images and sounds
together (computed when the index was built), coloured by modality, class, kind, split or a per-sample
score. Circles are images, diamonds the
sounds of sounding pairs, crosses the sounds of non-sounding pairs. A chosen class is highlighted (the
others fade) and, on request, its pairs are joined by lines; the chosen sample is always joined.

``gr.Plot`` has no click events, so a sample is chosen with the picker beside the plot (type the ``#``
number the hover shows, an id or a class) or by clicking one of its neighbours; the chosen sample is
starred in every model's plot and shown with each model's card and nearest images and sounds."""
from __future__ import annotations

import gradio as gr
import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative

from ..errors import AVDemoError
from ..index import SampleIndex
from .indexes import get_index, get_indexes
from .inputs import sample_picker
from .model_tab import Pickers
from .models import MAX_MODELS, ModelHandle
from .status import status_line
from .views import (ALL_CLASSES, card, class_choices, export_png, filtered_class, panels, sample_choices,
                    sample_markdown, sample_row, score_line)

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


def show_sample(models: list[ModelHandle], dataset: str, sample: int | None, colour_by: str, pairs: bool,
                negatives: bool, focus: str | None = None):
    """Each model's figure with the sample starred, its card and its neighbours (images and sounds); the
    sample's sound and description; the neighbour lists for clicks (one per model)."""
    indexes = get_indexes(models, dataset)
    if sample is None:
        figures = [embedding_figure(index, colour_by, pairs, negatives, focus=focus) for index in indexes]
        empty = panels(models, [None] * len(models))
        return *panels(models, figures), *empty, None, "", *empty, *empty, []
    i = sample_row(indexes[0], sample)
    near = [neighbours(index, i) for index in indexes]
    return (*panels(models, [embedding_figure(index, colour_by, pairs, negatives, i, focus) for index in indexes],
                    "embedding space (s_A)"),
            *panels(models, [card(index, i) for index in indexes], "card: ground truth, map, binarised map"),
            str(indexes[0].audio_paths[i]), sample_markdown(indexes[0], i),
            *panels(models, [_neighbour_gallery(index, i, n["image"]) for index, n in zip(indexes, near)],
                    "nearest images (z_v), click to select"),
            *panels(models, [_neighbour_gallery(index, i, n["sound"]) for index, n in zip(indexes, near)],
                    "nearest sounds (z_a), shown by their pictures"),
            [{k: [j for j, _ in v] for k, v in n.items()} for n in near])


def draw(models: list[ModelHandle], dataset: str, sample: int | None, colour_by: str, pairs: bool, negatives: bool,
         focus: str | None) -> list:
    """Each model's embedding space drawn as the controls say, with the chosen sample starred."""
    indexes = get_indexes(models, dataset)
    sample = None if sample is None else sample_row(indexes[0], sample)
    return panels(models, [embedding_figure(index, colour_by, pairs, negatives, sample, focus) for index in indexes],
                  "embedding space (s_A)")


def build_embedding_tab(pickers: Pickers) -> gr.Markdown:
    """The tab's components and events (filled when the picked indexes are ready); returns its status line."""
    focus = pickers.class_filter            # the class filter: that class drawn fully, the others faded
    status = status_line()
    near = gr.State([])
    with gr.Row():
        colour_by = gr.Dropdown([(v, k) for k, v in COLOUR_BY.items()], value="class", label="Colour by", scale=2)
        pairs = gr.Checkbox(value=False, label="lines joining its pairs", scale=1)
        negatives = gr.Checkbox(value=True, label="non-sounding pairs", scale=1)
        sample = sample_picker(label="Sample (type its # from the hover, an id or a class)", scale=3,
                               elem_id="embedding-sample")
    with gr.Row():
        sound = gr.Audio(label="Its sound", interactive=False)
        info = gr.Markdown(label="Sample")
        with gr.Column():
            export_button = gr.Button("Export the cards (PNG)", size="sm")
            exported = gr.File(label="Cards", height=60)
    plots, cards, image_neighbours, sound_neighbours = [], [], [], []
    for n in range(MAX_MODELS):
        with gr.Row():
            with gr.Column(scale=3):
                plots.append(gr.Plot(label="Embedding space (s_A)", visible=n == 0, elem_id=f"embedding-plot-{n}"))
            with gr.Column(scale=2):
                cards.append(gr.Image(label="Card: ground truth, map, binarised map", interactive=False, height=200,
                                      format="jpeg", visible=n == 0, elem_id=f"embedding-card-{n}"))
                image_neighbours.append(gr.Gallery(label="Nearest images (z_v), click to select", columns=4,
                                                   height=170, format="jpeg", visible=n == 0,
                                                   elem_id=f"embedding-image-neighbours-{n}"))
                sound_neighbours.append(gr.Gallery(label="Nearest sounds (z_a), shown by their pictures", columns=4,
                                                   height=170, format="jpeg", visible=n == 0,
                                                   elem_id=f"embedding-sound-neighbours-{n}"))

    inputs = [pickers.models, pickers.dataset, sample, colour_by, pairs, negatives, focus]
    gr.on([colour_by.change, pairs.change, negatives.change, focus.change], draw, inputs, plots,
          api_name="embedding_plot")
    sample.change(show_sample, inputs, [*plots, *cards, sound, info, *image_neighbours, *sound_neighbours, near],
                  api_name="embedding_sample")

    def pick(n: int, modality: str):
        def run(found: list[dict[str, list[int]]], evt: gr.SelectData) -> int:
            if n >= len(found) or not isinstance(evt.index, int) or not 0 <= evt.index < len(found[n][modality]):
                raise AVDemoError("pick: that neighbour is not listed (choose a sample first)")
            return found[n][modality][evt.index]
        return run

    for n in range(MAX_MODELS):
        image_neighbours[n].select(pick(n, "image"), near, sample, api_name=f"embedding_pick_image_{n + 1}")
        sound_neighbours[n].select(pick(n, "sound"), near, sample, api_name=f"embedding_pick_sound_{n + 1}")

    def export(models: list[ModelHandle], dataset: str, i: int | None) -> str:
        if i is None:
            raise gr.Error("choose a sample first")
        indexes = get_indexes(models, dataset)
        i = sample_row(indexes[0], i)
        return export_png(np.concatenate([card(index, i) for index in indexes]), f"cards-{indexes[0].ids[i]}")

    export_button.click(export, [pickers.models, pickers.dataset, sample], exported, api_name="embedding_export_card")

    def refresh(models: list[ModelHandle], dataset: str, col: str, p: bool, n: bool):
        indexes = get_indexes(models, dataset)
        return (gr.update(choices=sample_choices(indexes[0]), value=None),
                *panels(models, [embedding_figure(index, col, p, n) for index in indexes], "embedding space (s_A)"),
                [], gr.update(choices=class_choices(indexes[0]), value=ALL_CLASSES))

    pickers.index_key.change(refresh, [pickers.models, pickers.dataset, colour_by, pairs, negatives],
                             [sample, *plots, near, focus], api_name="embedding_refresh")
    focus.change(lambda ms, d, f: gr.update(choices=sample_choices(get_index(ms[0], d), f)),
                 [pickers.models, pickers.dataset, focus], sample, api_name="embedding_class_samples")
    return status
