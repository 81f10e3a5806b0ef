"""Tab 4, false positives, for each picked model (a panel each, with its own threshold: models' confidences
live on different scales): the confidence of sounding pairs against silence, noise and off-screen sounds;
the threshold's false-positive rate and recall; AP and max-F1; the worst samples first. Beside them, every
model's rates in one table, and the listed samples, each with a card (image, ground truth, map,
binarised map, scores) and its sound."""
from __future__ import annotations

import math
from typing import Any

import gradio as gr
import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..errors import AVDemoError
from ..index import CONFIDENCES, SampleIndex
from ..negatives import ORDERINGS, at_threshold, detection_summary, outcomes, worst_first
from .indexes import get_indexes
from .model_tab import Pickers
from .models import MAX_MODELS, ModelHandle
from .status import status_line
from .views import (ALL_CLASSES, card, clicked_row, export_png, export_table, heat_thumbnail, in_class, panel_label,
                    panels, row_at,
                    sample_markdown)

CONFIDENCE_MEASURES = {"s_A": "s_A (global alignment)", "top25": "mean of the top 25 % of the map",
                       "peak": "peak of the map"}
SHOWN = 24           # gallery size
TABLE_ROWS = 200     # rows of each model in the table shown (the export has them all)
COLUMNS = ["model #", "model", "sample", "id", "class", "kind", "confidence", "cIoU", "outcome"]


def distribution_figure(index: SampleIndex, measure: str, threshold: float, curves: dict) -> go.Figure:
    """Left: confidence histograms of sounding pairs and of each non-sounding kind (percent of each group).
    Right: recall, precision and false-positive rate as the threshold sweeps; the threshold marked."""
    conf = index.confidence(measure)
    fig = make_subplots(rows=1, cols=2, column_widths=[0.6, 0.4],
                        subplot_titles=("confidence by kind", "rates over thresholds (%)"))
    for kind in ["sounding"] + sorted(set(index.kinds[~index.sounding])):
        values = conf[index.sounding] if kind == "sounding" else conf[(index.kinds == kind) & ~index.sounding]
        fig.add_trace(go.Histogram(x=values, name=f"{kind} ({len(values)})", opacity=0.55, nbinsx=40,
                                   histnorm="percent"), row=1, col=1)
    colours = {"recall": "#2ca02c", "precision": "#9467bd", "fpr": "#d62728"}
    for name in ("recall", "precision", "fpr"):
        fig.add_trace(go.Scatter(x=np.asarray(curves["thresholds"]), y=100 * np.asarray(curves[name]), mode="lines",
                                 name={"fpr": "false-positive rate"}.get(name, name), line=dict(color=colours[name])),
                      row=1, col=2)
    for col in (1, 2):
        fig.add_vline(x=threshold, line=dict(color="black", dash="dash"), row=1, col=col)
    fig.update_layout(barmode="overlay", height=360, margin=dict(l=10, r=10, t=40, b=10),
                      xaxis_title=CONFIDENCE_MEASURES[measure], xaxis2_title="threshold")
    return fig


def rates_row(index: SampleIndex, measure: str, threshold: float, result: dict) -> dict[str, Any]:
    """A model's detection numbers: threshold-free (AP, max-F1, ROC-AUC) and at its threshold."""
    s = at_threshold(index.confidence(measure), index.sounding, index.kinds, result["curves"], threshold)
    return {"AP": round(result["AP"], 2), "max-F1": round(result["max_F1"], 2),
            "best threshold": round(result["best_threshold"], 4), "ROC-AUC": round(result["roc_auc"], 1),
            "threshold": round(threshold, 4), "FPR %": round(s.fpr, 1),
            **{f"FPR {k} %": round(v, 1) for k, v in s.fpr_by_kind.items()},
            "recall %": round(s.recall, 1), "precision %": round(s.precision, 1), "confident %": round(s.detected, 1)}


def table_rows(index: SampleIndex, measure: str, threshold: float, order: np.ndarray) -> list[dict[str, Any]]:
    """The listed samples of one model, in ``order``, with their confidence, cIoU and outcome."""
    conf, cious = index.confidence(measure), index.scores["ciou"]
    outcome = outcomes(conf, index.sounding, cious, threshold, index.ciou_threshold)
    return [{"sample": int(i), "id": index.ids[i], "class": str(index.class_names[i]), "kind": str(index.kinds[i]),
             "confidence": round(float(conf[i]), 5), "cIoU": None if np.isnan(cious[i]) else round(float(cious[i]), 4),
             "outcome": str(outcome[i])} for i in order]


def analyse(models: list[ModelHandle], dataset: str, measure: str, ordering: str, class_name: str | None,
            *thresholds: float):
    """Each model's figure, rate line and worst-first gallery at its own threshold (of ``class_name`` only
    when the class filter has one); every model's rates as a table; the listed samples of all models as a
    table and as the session's rows."""
    indexes = get_indexes(models, dataset)
    if indexes[0].sounding.all():
        raise gr.Error("this dataset has no non-sounding pairs (no *_plus_silent.csv): nothing to analyse here")
    figures, lines, galleries, rates, rows, shown_rows = [], [], [], [], [], []
    for n, (index, threshold) in enumerate(zip(indexes, thresholds)):
        conf = index.confidence(measure)
        result = detection_summary(conf, index.sounding, index.scores["ciou"], index.ciou_threshold)
        order = in_class(index, worst_first(conf, index.sounding, index.scores["ciou"], ordering, threshold,
                                            index.ciou_threshold), class_name)
        listed = [{"model #": n + 1, "model": panel_label(models, n), **row}
                  for row in table_rows(index, measure, threshold, order)]
        rate = rates_row(index, measure, threshold, result)
        figures.append(distribution_figure(index, measure, threshold, result["curves"]))
        lines.append(f"**{panel_label(models, n)}** at threshold **{threshold:.4f}**: false-positive rate "
                     f"**{rate['FPR %']:.1f} %**, recall **{rate['recall %']:.1f} %** · AP {rate['AP']:.2f}, "
                     f"max-F1 {rate['max-F1']:.2f} (at {rate['best threshold']:.4f}) · {len(order)} listed")
        galleries.append([(heat_thumbnail(index, r["sample"]),
                           f"#{r['sample']} {r['class'] or r['kind']} conf {r['confidence']:.3f}"
                           + ("" if r["cIoU"] is None else f" cIoU {r['cIoU']:.2f}")) for r in listed[:SHOWN]])
        rates.append({"model": panel_label(models, n), **rate})
        rows += listed
        shown_rows += listed[:TABLE_ROWS]
    if class_name not in (None, "", ALL_CLASSES):
        lines = [line + f" of **{class_name}** only (clear the class filter for all)" for line in lines]
    return (*panels(models, figures), *panels(models, lines), *panels(models, galleries, "worst first"),
            pd.DataFrame(rates), pd.DataFrame(shown_rows, columns=COLUMNS), rows)


def threshold_slider(index: SampleIndex, measure: str) -> dict[str, Any]:
    """Slider settings for a measure: its range over the dataset (widened to 4 decimals), starting at the
    best-F1 threshold rounded to 4 decimals (what people read is what is used)."""
    conf = index.confidence(measure)
    best = detection_summary(conf, index.sounding, index.scores["ciou"], index.ciou_threshold)["best_threshold"]
    lo, hi = math.floor(float(np.min(conf)) * 1e4) / 1e4, math.ceil(float(np.max(conf)) * 1e4) / 1e4
    return dict(minimum=lo, maximum=hi, value=round(float(best), 4), step=0.0001)


def change_measure(models: list[ModelHandle], dataset: str, measure: str, ordering: str, class_name: str | None):
    """A new measure (or models, or dataset): each model's slider at its range and best threshold, then
    ``analyse``."""
    sliders = [threshold_slider(index, measure) for index in get_indexes(models, dataset)]
    updates = [gr.update(**s, visible=True, label=f"{m.label}: threshold") for m, s in zip(models, sliders)]
    return (*updates, *[gr.update(visible=False)] * (MAX_MODELS - len(models)),
            *analyse(models, dataset, measure, ordering, class_name, *(s["value"] for s in sliders)))


def listed_sample(models: list[ModelHandle], dataset: str, position: float | None, rows: list[dict] | None
                  ) -> tuple[SampleIndex, int]:
    """The index and sample of the row at 1-based ``position`` of the listed samples."""
    if not rows or position is None:
        raise AVDemoError("choose a sample first")
    row = row_at(rows, position)
    if row["model #"] > len(models):
        raise AVDemoError("position: the models picked changed since the list was made; analyse again")
    return get_indexes(models[row["model #"] - 1:row["model #"]], dataset)[0], row["sample"]


def show_card(models: list[ModelHandle], dataset: str, position: float | None, rows: list[dict] | None):
    """Card (under the listing model), sound and description of the sample at 1-based ``position``."""
    if not rows or position is None:
        return None, None, ""
    index, i = listed_sample(models, dataset, position, rows)
    return card(index, i), str(index.audio_paths[i]), sample_markdown(index, i)


def build_false_positive_tab(pickers: Pickers) -> gr.Markdown:
    """The tab's components and events (filled when the picked indexes are ready); returns its status line."""
    status = status_line()
    rows_state = gr.State([])
    with gr.Row():
        measure = gr.Radio([(v, k) for k, v in CONFIDENCE_MEASURES.items() if k in CONFIDENCES], value="top25",
                           label="Confidence measure", scale=2)
        ordering = gr.Radio(list(ORDERINGS), value=ORDERINGS[0], label="Worst first", scale=3)
    rates = gr.Dataframe(label="Every model's rates (each at its own threshold)", interactive=False,
                         elem_id="fp-rates")
    thresholds, plots, lines, galleries = [], [], [], []
    for n in range(MAX_MODELS):
        with gr.Row():
            with gr.Column(scale=2):
                thresholds.append(gr.Slider(0, 1, value=0.5, label="Threshold", visible=n == 0,
                                            elem_id=f"fp-threshold-{n}"))
                lines.append(gr.Markdown(visible=n == 0, elem_id=f"fp-stats-{n}"))
                plots.append(gr.Plot(label="Confidence distributions", visible=n == 0, elem_id=f"fp-plot-{n}"))
            galleries.append(gr.Gallery(label="Worst first (click one for its card)", columns=6, height=330, scale=3,
                                        format="jpeg", visible=n == 0, elem_id=f"fp-gallery-{n}"))
    with gr.Row():
        with gr.Column(scale=3):
            table = gr.Dataframe(headers=COLUMNS, elem_id="fp-table", interactive=False, max_height=300,
                                 label="Listed samples of every model (first rows; the export has all)")
            with gr.Row():
                csv_button = gr.Button("Export table (CSV)", size="sm")
                json_button = gr.Button("Export table (JSON)", size="sm")
        with gr.Column(scale=2):
            position = gr.Number(None, label="Position in the list (or click a picture)", precision=0, minimum=1)
            picture = gr.Image(label="Card", interactive=False, height=200, format="jpeg", elem_id="fp-card")
            sound = gr.Audio(label="Its sound", interactive=False)
            info = gr.Markdown(label="Sample")
            png_button = gr.Button("Export card (PNG)", size="sm")
            exported = gr.File(label="Export", height=60)

    outputs = [*plots, *lines, *galleries, rates, table, rows_state]
    controls = [pickers.models, pickers.dataset, measure, ordering, pickers.class_filter]
    gr.on([measure.change, pickers.index_key.change], change_measure, controls, [*thresholds, *outputs],
          trigger_mode="always_last", api_name="fp_measure")
    gr.on([*(t.release for t in thresholds), ordering.change, pickers.class_filter.change], analyse,
          [*controls, *thresholds], outputs, trigger_mode="always_last",
          api_name="fp_analyse")       # the page shows what its controls say last
    for n, gallery in enumerate(galleries):
        gallery.select(clicked_row(n), rows_state, position, api_name=f"fp_pick_{n + 1}")
    position.change(show_card, [pickers.models, pickers.dataset, position, rows_state], [picture, sound, info],
                    api_name="fp_card")

    def export_rows(fmt: str):
        def run(rows: list[dict] | None) -> str:
            if not rows:
                raise gr.Error("nothing to export yet")
            return export_table(rows, fmt, "false-positives")
        return run

    csv_button.click(export_rows("csv"), rows_state, exported, api_name="fp_export_csv")
    json_button.click(export_rows("json"), rows_state, exported, api_name="fp_export_json")

    def export_card(models: list[ModelHandle], dataset: str, pos: float | None, rows: list[dict] | None) -> str:
        index, i = listed_sample(models, dataset, pos, rows)
        return export_png(card(index, i), f"card-{index.ids[i]}")

    png_button.click(export_card, [pickers.models, pickers.dataset, position, rows_state], exported,
                     api_name="fp_export_card")
    return status
