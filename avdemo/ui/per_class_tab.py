"""Tab 5, per class: cIoU@0.5, pointing game, class R@1 both ways and (at a confidence threshold) the
false-positive share of each class, as a table and a bar chart, worst first (``avdemo.perclass``); with
a model B, its numbers next to A's."""
from __future__ import annotations

import gradio as gr
import pandas as pd
import plotly.graph_objects as go

from ..errors import AVDemoError
from ..index import SampleIndex
from ..perclass import COLUMNS, per_class
from .indexes import get_index
from .model_tab import picked

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


def class_table(checkpoint: str, model_b: str | None, dataset: str, threshold: float | None
                ) -> tuple[pd.DataFrame, go.Figure]:
    """The per-class table and chart of model A on a dataset, with model B's numbers when one is picked;
    ``threshold`` on s_A (None: no FP column)."""
    try:
        rows = per_class(get_index(checkpoint, dataset), "s_A", threshold)
        rows_b = per_class(get_index(model_b, dataset), "s_A", threshold) if picked(model_b) else []
    except AVDemoError as e:
        raise gr.Error(str(e)) from None
    if not rows:
        raise gr.Error("this dataset has no class names for its sounding pairs")
    columns = list(COLUMNS)
    if rows_b:
        by_class = {r["class"]: r for r in rows_b}
        for row in rows:
            row.update({f"B {m}": by_class[row["class"]][m] for m in BARS})
        columns += [f"B {m}" for m in BARS]
    return pd.DataFrame(rows, columns=columns), per_class_figure(rows)


def build_per_class_tab(model_choice: gr.Dropdown, model_b_choice: gr.Dropdown, dataset_choice: gr.Dropdown,
                        index: SampleIndex) -> None:
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
    gr.on([model_choice.change, model_b_choice.change, dataset_choice.change, threshold.submit], class_table,
          [model_choice, model_b_choice, dataset_choice, threshold], [table, plot], api_name="per_class")
