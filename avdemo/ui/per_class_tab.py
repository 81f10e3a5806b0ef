"""Tab 5, per class: cIoU@0.5, pointing game, class R@1 both ways and (at a confidence threshold) the
false-positive share of each class, as a table and a bar chart, worst first (``avdemo.perclass``); on our
data also each class's switch score, ear, eye and bridge, as a grid that shows which side fails; with a
model B, its numbers next to A's."""
from __future__ import annotations

import gradio as gr
import pandas as pd
import plotly.graph_objects as go

from ..errors import AVDemoError
from ..perclass import COLUMNS, SIDES, per_class
from .indexes import get_index
from .model_tab import Pickers, picked
from .status import status_line

BARS = ("cIoU@0.5", "pointing game", "R@1 audio→image", "R@1 image→audio")


def per_class_figure(rows: list[dict]) -> go.Figure:
    """Grouped horizontal bars per class (worst at the top), one colour per metric (and model)."""
    names = [r["class"] for r in rows]
    if f"B {BARS[0]}" in rows[0]:          # two models: their cIoU@0.5 and pointing game
        series = [(f"A {m}", m) for m in BARS[:2]] + [(f"B {m}", f"B {m}") for m in BARS[:2]]
    else:
        series = [(m, m) for m in BARS]
    fig = go.Figure([go.Bar(y=names, x=[r[key] for r in rows], name=label, orientation="h") for label, key in series])
    fig.update_layout(barmode="group", height=max(320, 28 * len(rows) + 120), xaxis_title="%",
                      yaxis=dict(autorange="reversed"), margin=dict(l=10, r=10, t=30, b=40),
                      legend=dict(orientation="h", y=1.02, x=0))
    return fig


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


def columns_of(rows: list[dict]) -> list[str]:
    """The table's columns: ``COLUMNS``, and ``SIDES`` where the rows have them."""
    return [*COLUMNS, *(c for c in SIDES if rows and c in rows[0])]


def class_table(checkpoint: str, model_b: str | None, dataset: str, threshold: float | None
                ) -> tuple[pd.DataFrame, go.Figure, go.Figure | None]:
    """The per-class table and chart of model A on a dataset, with model B's numbers when one is picked;
    ``threshold`` on s_A (None: no FP column)."""
    rows = per_class(get_index(checkpoint, dataset), "s_A", threshold)
    rows_b = per_class(get_index(model_b, dataset), "s_A", threshold) if picked(model_b) else []
    if not rows:
        raise gr.Error("this dataset has no class names for its sounding pairs")
    columns = columns_of(rows)
    if rows_b:
        by_class = {r["class"]: r for r in rows_b}
        for row in rows:
            row.update({f"B {m}": by_class[row["class"]][m] for m in BARS})
        columns += [f"B {m}" for m in BARS]
    return pd.DataFrame(rows, columns=columns), per_class_figure(rows), sides_figure(rows)


def clicked_class(evt: gr.SelectData) -> str:
    """The class of the table row a user clicked: it becomes the class filter of the other tabs."""
    row = getattr(evt, "row_value", None)
    if not isinstance(row, list) or not row or not isinstance(row[0], str):
        raise AVDemoError("per class: no table row was clicked (the event carries no row)")
    return row[0]


def build_per_class_tab(pickers: Pickers) -> gr.Markdown:
    """The tab's components and events (filled when the picked index is ready); returns its status line."""
    status = status_line()
    gr.Markdown("Click a class to filter the other tabs' galleries and lists by it (clear it in the class "
                "filter above). Each class's sounding pairs, worst cIoU@0.5 first. *False positives at threshold*: the "
                "class's pairs whose s_A is at least the threshold but whose map misses the object "
                "(cIoU < 0.5).")
    threshold = gr.Number(None, label="s_A threshold for the false-positive column (empty: none)", minimum=-1,
                       maximum=1, elem_id="class-threshold")
    table = gr.Dataframe(label="Per class", interactive=False, max_height=420, elem_id="class-table")
    plot = gr.Plot(label="Per class (%)", elem_id="class-plot")
    gr.Markdown("**Which side fails** (our data, model A): *switch*, how often the map's peak lands on an object "
                "when that object's own recording plays over the same frame; *ear*, a recording's nearest "
                "recording from another package has its class; *eye*, an object's nearest object in other "
                "pictures has its class; *bridge*, a recording's nearest object, and an object's nearest "
                "recording, have its class (ground-truth boxes, the map's own features).")
    sides = gr.Plot(label="Switch, ear, eye, bridge per class (%)", elem_id="class-sides")
    table.select(clicked_class, None, pickers.class_filter, api_name="per_class_pick")
    gr.on([pickers.index_key.change, pickers.model_b.change, threshold.submit], class_table,
          [pickers.model, pickers.model_b, pickers.dataset, threshold], [table, plot, sides], api_name="per_class")
    return status
