"""Tab 5, per class: cIoU@0.5, pointing game, class R@1 both ways and (at a confidence threshold) the
false-positive share of each class, as a table and a bar chart, worst first (``avdemo.perclass``)."""
from __future__ import annotations

import gradio as gr
import pandas as pd
import plotly.graph_objects as go

from ..errors import AVDemoError
from ..index import SampleIndex
from ..perclass import COLUMNS, per_class
from .indexes import get_index

BARS = ("cIoU@0.5", "pointing game", "R@1 audio→image", "R@1 image→audio")


def per_class_figure(rows: list[dict]) -> go.Figure:
    """Grouped horizontal bars per class (worst at the top), one colour per metric."""
    names = [r["class"] for r in rows]
    fig = go.Figure([go.Bar(y=names, x=[r[m] for r in rows], name=m, orientation="h") for m in BARS])
    fig.update_layout(barmode="group", height=max(320, 28 * len(rows) + 120), xaxis_title="%",
                      yaxis=dict(autorange="reversed"), margin=dict(l=10, r=10, t=30, b=40),
                      legend=dict(orientation="h", y=1.02, x=0))
    return fig


def class_table(checkpoint: str, dataset: str, threshold: float | None) -> tuple[pd.DataFrame, go.Figure]:
    """The per-class table and chart of a model on a dataset; ``threshold`` on s_A (None: no FP column)."""
    try:
        index: SampleIndex = get_index(checkpoint, dataset)
    except AVDemoError as e:
        raise gr.Error(str(e)) from None
    rows = per_class(index, "s_A", threshold)
    if not rows:
        raise gr.Error("this dataset has no class names for its sounding pairs")
    return pd.DataFrame(rows, columns=list(COLUMNS)), per_class_figure(rows)


def build_per_class_tab(model_choice: gr.Dropdown, dataset_choice: gr.Dropdown, index: SampleIndex) -> None:
    """The tab's components and events; ``index`` gives the initial state."""
    gr.Markdown("Each class's sounding pairs, worst cIoU@0.5 first. *False positives at threshold*: the "
                "class's pairs whose s_A is at least the threshold but whose map misses the object "
                "(cIoU < 0.5).")
    threshold = gr.Number(None, label="s_A threshold for the false-positive column (empty: none)",
                          elem_id="class-threshold")
    rows = per_class(index, "s_A")
    table = gr.Dataframe(pd.DataFrame(rows, columns=list(COLUMNS)), label="Per class", interactive=False,
                         max_height=420, elem_id="class-table")
    plot = gr.Plot(per_class_figure(rows) if rows else None, label="Per class (%)", elem_id="class-plot")
    gr.on([model_choice.change, dataset_choice.change, threshold.submit], class_table,
          [model_choice, dataset_choice, threshold], [table, plot], api_name="per_class")
