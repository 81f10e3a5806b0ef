"""Tab 4, false positives: the confidence of sounding pairs against silence, noise and off-screen
sounds; a threshold with its false-positive rate and recall; AP and max-F1; the worst samples first,
each with a card (image, ground truth, map, binarised map, scores) and its sound."""
from __future__ import annotations

import math
from typing import Any

import gradio as gr
import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..index import CONFIDENCES, SampleIndex
from ..negatives import VIEWS, at_threshold, outcomes, summary, worst_first
from .indexes import model_and_index
from .model_tab import Pickers, picked
from .status import status_line
from .views import (ALL_CLASSES, card, clicked_rank, export_png, export_table, heat_thumbnail, in_class, row_at,
                    sample_markdown)

MEASURES = {"s_A": "s_A (global alignment)", "top25": "mean of the top 25 % of the map", "peak": "peak of the map"}
SHOWN = 24           # gallery size
TABLE_ROWS = 200     # rows of the table shown (the export has them all)
COLUMNS = ["sample", "id", "class", "kind", "confidence", "cIoU", "outcome"]


def _ciou_threshold(index: SampleIndex) -> float:
    return float(index.info.get("ciou_threshold", 0.5))


def distribution_figure(index: SampleIndex, measure: str, threshold: float, curves: dict,
                        curves_b: dict | None = None) -> go.Figure:
    """Left: confidence histograms of sounding pairs and of each non-sounding kind (percent of each group).
    Right: recall, precision and false-positive rate as the threshold sweeps, and model B's dotted when
    given (over B's own confidences); the threshold marked."""
    conf = index.confidence(measure)
    fig = make_subplots(rows=1, cols=2, column_widths=[0.6, 0.4],
                        subplot_titles=("confidence by kind", "rates over thresholds (%)"))
    for kind in ["sounding"] + sorted(set(index.kinds[~index.sounding])):
        values = conf[index.sounding] if kind == "sounding" else conf[(index.kinds == kind) & ~index.sounding]
        fig.add_trace(go.Histogram(x=values, name=f"{kind} ({len(values)})", opacity=0.55, nbinsx=40,
                                   histnorm="percent"), row=1, col=1)
    colours = {"recall": "#2ca02c", "precision": "#9467bd", "fpr": "#d62728"}
    for suffix, rates, dash in (("", curves, "solid"), (" (B)", curves_b, "dot")):
        if rates is None:
            continue
        for name in ("recall", "precision", "fpr"):
            fig.add_trace(go.Scatter(x=np.asarray(rates["thresholds"]), y=100 * np.asarray(rates[name]), mode="lines",
                                     name={"fpr": "false-positive rate"}.get(name, name) + suffix,
                                     line=dict(color=colours[name], dash=dash)), row=1, col=2)
    for col in (1, 2):
        fig.add_vline(x=threshold, line=dict(color="black", dash="dash"), row=1, col=col)
    fig.update_layout(barmode="overlay", height=360, margin=dict(l=10, r=10, t=40, b=10),
                      xaxis_title=MEASURES[measure], xaxis2_title="threshold")
    return fig


def stats_markdown(index: SampleIndex, measure: str, threshold: float, result: dict) -> str:
    s = at_threshold(index.confidence(measure), index.sounding, index.kinds, result["curves"], threshold)
    kinds = ", ".join(f"{k} {v:.1f} %" for k, v in s.fpr_by_kind.items())
    return (f"**AP {result['AP']:.2f} · max-F1 {result['max_F1']:.2f}** "
            f"(at threshold {result['best_threshold']:.4f}) · "
            f"ROC-AUC sounding vs not {result['roc_auc']:.1f}  \n"
            f"At threshold **{threshold:.4f}**: false-positive rate **{s.fpr:.1f} %** ({kinds}) · "
            f"recall **{s.recall:.1f} %** · precision {s.precision:.1f} % · "
            f"sounding pairs confident {s.detected:.1f} %")


def table_rows(index: SampleIndex, measure: str, threshold: float, order: np.ndarray) -> list[dict[str, Any]]:
    conf, cious = index.confidence(measure), index.scores["ciou"]
    outcome = outcomes(conf, index.sounding, cious, threshold, _ciou_threshold(index))
    return [{"sample": int(i), "id": index.ids[i], "class": str(index.class_names[i]), "kind": str(index.kinds[i]),
             "confidence": round(float(conf[i]), 5), "cIoU": None if np.isnan(cious[i]) else round(float(cious[i]), 4),
             "outcome": str(outcome[i])} for i in order]


def model_b_summary(model_b: str | None, dataset: str, measure: str) -> dict | None:
    """Model B's AP, max-F1, ROC-AUC and rate curves on the dataset (None without a model B)."""
    if not picked(model_b):
        return None
    _, index = model_and_index(model_b, dataset)
    return summary(index.confidence(measure), index.sounding, index.scores["ciou"], _ciou_threshold(index))


def analyse(checkpoint: str, dataset: str, measure: str, threshold: float, view: str, model_b: str | None = None,
            class_name: str | None = None):
    """Figure, numbers, the worst-first gallery and table (of ``class_name`` only, when the class filter
    has one), and the session's ordered sample list; with a model B, its curves and numbers next to A's."""
    _, index = model_and_index(checkpoint, dataset)
    if index.sounding.all():
        raise gr.Error("this dataset has no non-sounding pairs (no *_plus_silent.csv): nothing to analyse here")
    conf = index.confidence(measure)
    result = summary(conf, index.sounding, index.scores["ciou"], _ciou_threshold(index))
    result_b = model_b_summary(model_b, dataset, measure)
    order = in_class(index, worst_first(conf, index.sounding, index.scores["ciou"], view, threshold,
                                        _ciou_threshold(index)), class_name)
    rows = table_rows(index, measure, threshold, order)
    gallery = [(heat_thumbnail(index, r["sample"]),
                f"#{r['sample']} {r['class'] or r['kind']} conf {r['confidence']:.3f}"
                + ("" if r["cIoU"] is None else f" cIoU {r['cIoU']:.2f}")) for r in rows[:SHOWN]]
    stats = stats_markdown(index, measure, threshold, result)
    if class_name not in (None, "", ALL_CLASSES):
        stats += f"  \nGallery and table: **{class_name}** only ({len(order)} samples; clear the class filter for all)"
    if result_b is not None:
        stats += (f"  \n**Model B:** AP {result_b['AP']:.2f} · max-F1 {result_b['max_F1']:.2f} "
                  f"(at threshold {result_b['best_threshold']:.4f}) · ROC-AUC {result_b['roc_auc']:.1f}")
    return (distribution_figure(index, measure, threshold, result["curves"], result_b and result_b["curves"]),
            stats, gallery,
            pd.DataFrame(rows[:TABLE_ROWS], columns=COLUMNS), rows)


def threshold_slider(index: SampleIndex, measure: str) -> dict[str, Any]:
    """Slider settings for a measure: its range over the dataset (widened to 4 decimals), starting at the
    best-F1 threshold rounded to 4 decimals (what people read is what is used)."""
    conf = index.confidence(measure)
    best = summary(conf, index.sounding, index.scores["ciou"], _ciou_threshold(index))["best_threshold"]
    lo, hi = math.floor(float(np.min(conf)) * 1e4) / 1e4, math.ceil(float(np.max(conf)) * 1e4) / 1e4
    return dict(minimum=lo, maximum=hi, value=round(float(best), 4), step=0.0001)


def change_measure(checkpoint: str, dataset: str, measure: str, view: str, model_b: str | None = None,
                   class_name: str | None = None):
    """A new measure (or model, or dataset): the slider's range and best threshold, then ``analyse``."""
    _, index = model_and_index(checkpoint, dataset)
    slider = threshold_slider(index, measure)
    return (gr.update(**slider), *analyse(checkpoint, dataset, measure, slider["value"], view, model_b, class_name))


def show_card(checkpoint: str, dataset: str, position: float | None, rows: list[dict] | None):
    """Card, sound and description of the sample at 1-based ``position`` of the current list."""
    if not rows or position is None:
        return None, None, ""
    i = row_at(rows, position)["sample"]
    _, index = model_and_index(checkpoint, dataset)
    return card(index, i), str(index.audio_paths[i]), sample_markdown(index, i)


def build_false_positive_tab(pickers: Pickers) -> gr.Markdown:
    """The tab's components and events (filled when the picked index is ready); returns its status line."""
    model_choice, model_b_choice, dataset_choice = pickers.model, pickers.model_b, pickers.dataset
    status = status_line()
    rows_state = gr.State([])
    with gr.Row():
        measure = gr.Radio([(v, k) for k, v in MEASURES.items() if k in CONFIDENCES], value="top25",
                        label="Confidence measure", scale=2)
        threshold = gr.Slider(0, 1, value=0.5, label="Threshold", scale=3, elem_id="fp-threshold")
    stats = gr.Markdown(label="Rates at the threshold", elem_id="fp-stats")
    plot = gr.Plot(label="Confidence distributions", elem_id="fp-plot")
    view = gr.Radio(list(VIEWS), value=VIEWS[0], label="Worst first")
    with gr.Row():
        with gr.Column(scale=3):
            gallery = gr.Gallery(label="Worst first (click one for its card)", columns=6, height=330,
                                 format="jpeg", elem_id="fp-gallery")
            table = gr.Dataframe(headers=COLUMNS, elem_id="fp-table", label="Table (first rows; the export has all)",
                                 interactive=False,
                                 max_height=300)
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

    outputs = [plot, stats, gallery, table, rows_state]
    gr.on([measure.change, pickers.index_key.change, model_b_choice.change], change_measure,
          [model_choice, dataset_choice, measure, view, model_b_choice, pickers.class_filter], [threshold, *outputs],
          trigger_mode="always_last", api_name="fp_measure")
    gr.on([threshold.release, view.change, pickers.class_filter.change], analyse,
          [model_choice, dataset_choice, measure, threshold, view, model_b_choice, pickers.class_filter], outputs,
          trigger_mode="always_last", api_name="fp_analyse")       # the page shows what its controls say last
    gallery.select(clicked_rank, None, position, api_name="fp_pick")
    position.change(show_card, [model_choice, dataset_choice, position, rows_state], [picture, sound, info],
                    api_name="fp_card")

    def export_rows(fmt: str):
        def run(rows: list[dict] | None) -> str:
            if not rows:
                raise gr.Error("nothing to export yet")
            return export_table(rows, fmt, "false-positives")
        return run

    csv_button.click(export_rows("csv"), rows_state, exported, api_name="fp_export_csv")
    json_button.click(export_rows("json"), rows_state, exported, api_name="fp_export_json")

    def export_card(checkpoint: str, dataset: str, pos: float | None, rows: list[dict] | None) -> str:
        if not rows or pos is None:
            raise gr.Error("choose a sample first")
        i = row_at(rows, pos)["sample"]
        _, idx = model_and_index(checkpoint, dataset)
        return export_png(card(idx, i), f"card-{idx.ids[i]}")

    png_button.click(export_card, [model_choice, dataset_choice, position, rows_state], exported,
                     api_name="fp_export_card")
    return status
