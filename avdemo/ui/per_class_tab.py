"""Tab 5, per class: cIoU success, pointing game, class R@1 both ways and (at a confidence threshold) the
false-positive share of each class, as a table and a bar chart, every picked model's columns side by side,
worst first by the first model (``avdemo.perclass``); on our data also each class's switch score, ear, eye
and bridge, as a grid per model that shows which side fails."""
from __future__ import annotations

import gradio as gr
import pandas as pd
import plotly.graph_objects as go

from ..errors import AVDemoError
from ..perclass import COLUMNS, SIDES, per_class
from .indexes import get_indexes
from .model_tab import Pickers
from .models import MAX_MODELS, ModelHandle
from .status import status_line
from .views import panel_label, panels

BARS = COLUMNS[2:6]        # cIoU success, pointing game, R@1 both ways


def per_class_figure(rows: list[dict], labels: list[str]) -> go.Figure:
    """Grouped horizontal bars per class (worst at the top), one colour per metric and model: all of
    ``BARS`` for one model, cIoU success and pointing game of each model for several."""
    names = [r["class"] for r in rows]
    metrics = BARS if len(labels) == 1 else BARS[:2]
    series = [(f"{label}: {m}" if len(labels) > 1 else m, column(m, label, labels)) for label in labels for m in metrics]
    fig = go.Figure([go.Bar(y=names, x=[r[key] for r in rows], name=name, orientation="h") for name, key in series])
    fig.update_layout(barmode="group", height=max(320, 28 * len(rows) * len(labels) + 120), xaxis_title="%",
                      yaxis=dict(autorange="reversed"), margin=dict(l=10, r=10, t=30, b=40),
                      legend=dict(orientation="h", y=1.02, x=0))
    return fig


def column(metric: str, label: str, labels: list[str]) -> str:
    """The table's column of ``metric`` for the model ``label``: the metric's name alone for one model."""
    return metric if len(labels) == 1 else f"{metric} · {label}"


def sides_figure(rows: list[dict]) -> go.Figure | None:
    """Classes x (switch, ear, eye, bridge both ways) in percent, as a colour grid in the table's order;
    None when the dataset has no such columns."""
    columns = [c for c in SIDES if c in rows[0]] if rows else []
    if not columns:
        return None
    values = [[r[c] for c in columns] for r in rows]
    fig = go.Figure(go.Heatmap(z=values, x=columns, y=[r["class"] for r in rows], zmin=0, zmax=100,
                               colorscale="RdYlGn", colorbar=dict(title="%"),
                               text=[["" if v is None else f"{v:.0f}" for v in row] for row in values],
                               texttemplate="%{text}", hovertemplate="%{y}<br>%{x}: %{z:.1f} %<extra></extra>"))
    fig.update_layout(height=max(320, 22 * len(rows) + 120), yaxis=dict(autorange="reversed"),
                      margin=dict(l=10, r=10, t=70, b=20), xaxis=dict(side="top"))   # room for the top labels
    return fig


def class_table(models: list[ModelHandle], dataset: str, threshold: float | None):
    """The per-class table of every picked model on a dataset (a column per metric and model, the first
    model's worst classes first), its chart, and each model's which-side grid; ``threshold`` on s_A, the
    same for every model (None: no false-positive column)."""
    labels = [panel_label(models, k) for k in range(len(models))]
    tables = [per_class(index, "s_A", threshold) for index in get_indexes(models, dataset)]
    if not tables[0]:
        raise gr.Error("this dataset has no class names for its sounding pairs")
    measured = [c for c in (*COLUMNS[2:], *SIDES) if c in tables[0][0]]
    by_class = [{r["class"]: r for r in rows} for rows in tables]
    rows = [{"class": r["class"], "pairs": r["pairs"],
             **{column(c, label, labels): found[r["class"]].get(c) for c in measured
                for label, found in zip(labels, by_class)}} for r in tables[0]]
    return (pd.DataFrame(rows), per_class_figure(rows, labels),
            *panels(models, [sides_figure(t) for t in tables], "switch, ear, eye, bridge per class (%)"))


def clicked_class(evt: gr.SelectData) -> str:
    """The class of the table row a user clicked: it becomes the class filter of the other tabs."""
    row = getattr(evt, "row_value", None)
    if not isinstance(row, list) or not row or not isinstance(row[0], str):
        raise AVDemoError("per class: no table row was clicked (the event carries no row)")
    return row[0]


def build_per_class_tab(pickers: Pickers) -> gr.Markdown:
    """The tab's components and events (filled when the picked indexes are ready); returns its status line."""
    status = status_line()
    gr.Markdown("Click a class to filter the other tabs' galleries and lists by it (clear it in the class "
                "filter above). Each class's sounding pairs, the first model's worst cIoU success first. *False "
                "positives at threshold*: the class's pairs whose s_A is at least the threshold (the same for "
                "every model) but whose map misses the object (cIoU below the index's threshold).")
    threshold = gr.Number(None, label="s_A threshold for the false-positive column (empty: none)", minimum=-1,
                          maximum=1, elem_id="class-threshold")
    table = gr.Dataframe(label="Per class, every model", interactive=False, max_height=420, elem_id="class-table")
    plot = gr.Plot(label="Per class (%)", elem_id="class-plot")
    gr.Markdown("**Which side fails** (our data, a grid per model): *switch*, how often the map's peak lands on an "
                "object when that object's own recording plays over the same frame; *ear*, a recording's nearest "
                "recording from another package has its class; *eye*, an object's nearest object in other "
                "pictures has its class; *bridge*, a recording's nearest object, and an object's nearest "
                "recording, have its class (ground-truth boxes, the map's own features).")
    with gr.Row():
        sides = [gr.Plot(label="Switch, ear, eye, bridge per class (%)", visible=n == 0, elem_id=f"class-sides-{n}")
                 for n in range(MAX_MODELS)]
    table.select(clicked_class, None, pickers.class_filter, api_name="per_class_pick")
    gr.on([pickers.index_key.change, threshold.submit], class_table, [pickers.models, pickers.dataset, threshold],
          [table, plot, *sides], api_name="per_class")
    return status
