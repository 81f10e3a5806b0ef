"""Tab 6, compare two models: both models' numbers on the dataset side by side, and the disagreements
(``avdemo.compare``): samples where model B fixes or breaks model A, each shown with both maps, a card per
model, and CSV / JSON export. Model B is built (indexed) on first use, with progress in the page."""
from __future__ import annotations

import dataclasses

import gradio as gr
import numpy as np
import pandas as pd

from ..compare import DIRECTIONS, MEASURES, disagreements, summary_rows
from ..index import SampleIndex
from .indexes import get_index
from .model_tab import Pickers, picked
from .views import ALL_CLASSES, card, clicked_rank, export_table, heat_thumbnail, in_class, row_at, sample_markdown

SHOWN = 24                # gallery size; the table and the exports have every sample
GAP = 4                   # pixels between the two maps of a pair picture


def pair_picture(a: SampleIndex, b: SampleIndex, i: int) -> np.ndarray:
    """Sample ``i`` with model A's map (left) and model B's (right)."""
    left, right = heat_thumbnail(a, i), heat_thumbnail(b, i)
    return np.concatenate([left, np.full((left.shape[0], GAP, 3), 255, np.uint8), right], axis=1)


def _indexes(model_a: str, model_b: str, dataset: str) -> tuple[SampleIndex, SampleIndex]:
    if not picked(model_b):
        raise gr.Error("pick a second model (Model B) to compare with")
    return get_index(model_a, dataset), get_index(model_b, dataset)


def compare(model_a: str, model_b: str, dataset: str, measure: str, direction: str, class_name: str | None = None,
            progress=gr.Progress(track_tqdm=True)) -> tuple[pd.DataFrame, list, pd.DataFrame, list[dict], str]:
    """(numbers side by side, gallery of pair pictures, table, all rows, headline) for the two models; the
    gallery and the list keep ``class_name``'s samples only when the class filter has one."""
    a, b = _indexes(model_a, model_b, dataset)
    found = disagreements(a, b, measure, direction)
    keep = np.isin(found.samples, in_class(a, found.samples, class_name))
    found = dataclasses.replace(found, samples=found.samples[keep], a=found.a[keep], b=found.b[keep],
                                gain=found.gain[keep])
    rows = found.rows(a, measure)
    gallery = [(pair_picture(a, b, int(i)), f"#{i} {a.class_names[i] or a.kinds[i]}: A {va:.2f} / B {vb:.2f}")
               for i, va, vb in zip(found.samples[:SHOWN], found.a, found.b)]
    agree = int(a.sounding.sum() if measure != "false alarm" else (~a.sounding).sum()) - len(rows)
    headline = (f"**{direction}** by {measure}: {len(rows)} samples (the models agree on {agree}); "
                f"left map A, right map B")
    if class_name not in (None, "", ALL_CLASSES):
        headline += f"; class **{class_name}** only (clear the class filter for all)"
    return pd.DataFrame(summary_rows(a, b)), gallery, pd.DataFrame(rows), rows, headline


def compare_card(model_a: str, model_b: str, dataset: str, rows: list[dict], position: float | None
                 ) -> tuple[np.ndarray, np.ndarray, str]:
    """Both models' cards of the sample at 1-based ``position`` in the disagreement list."""
    if not rows:
        raise gr.Error("no disagreements listed yet: press Compare")
    if position is None:
        raise gr.Error("position: pick a sample of the list first")
    a, b = _indexes(model_a, model_b, dataset)
    i = row_at(rows, position)["sample"]
    return card(a, i), card(b, i), sample_markdown(a, i)


def build_compare_tab(pickers: Pickers) -> None:
    """The tab's components and events."""
    model_choice, model_b_choice, dataset_choice = pickers.model, pickers.model_b, pickers.dataset
    gr.Markdown("Pick **Model B** above. *B fixes A*: samples where B does better, most first; *B breaks A*: "
                "where it does worse. *false alarm*: on non-sounding pairs, how sounding the pair looks to "
                "each model (the share of its own sounding pairs it is more confident about).")
    with gr.Row():
        measure = gr.Radio(list(MEASURES), value=MEASURES[0], label="Measure", scale=2)
        direction = gr.Radio(list(DIRECTIONS), value=DIRECTIONS[0], label="Direction", scale=2)
        run = gr.Button("Compare", variant="primary", scale=1, elem_id="compare-run")
    numbers = gr.Dataframe(label="Both models on this dataset", interactive=False, elem_id="compare-numbers")
    headline = gr.Markdown(label="Disagreements found")
    rows_state = gr.State([])
    with gr.Row():
        with gr.Column(scale=3):
            gallery = gr.Gallery(label="Disagreements (click one for both cards)", columns=4, height=360,
                                 format="jpeg", elem_id="compare-gallery")
            table = gr.Dataframe(label="All disagreements", interactive=False, max_height=300)
            with gr.Row():
                csv_button = gr.Button("Export (CSV)", size="sm")
                json_button = gr.Button("Export (JSON)", size="sm")
            exported = gr.File(label="Export", interactive=False)
        with gr.Column(scale=2):
            position = gr.Number(None, label="Position in the list (or click a picture)", precision=0, minimum=1)
            card_a = gr.Image(label="Model A", interactive=False, format="jpeg", elem_id="compare-card-a")
            card_b = gr.Image(label="Model B", interactive=False, format="jpeg", elem_id="compare-card-b")
            about = gr.Markdown(label="Sample")

    inputs = [model_choice, model_b_choice, dataset_choice, measure, direction, pickers.class_filter]
    gr.on([run.click, measure.change, direction.change], compare, inputs,
          [numbers, gallery, table, rows_state, headline], api_name="compare")
    gallery.select(clicked_rank, None, position, api_name="compare_pick")
    position.change(compare_card, [model_choice, model_b_choice, dataset_choice, rows_state, position],
                    [card_a, card_b, about], api_name="compare_card")
    csv_button.click(lambda rows: export_table(rows, "csv", "disagreements"), rows_state, exported,
                     api_name="compare_export_csv")
    json_button.click(lambda rows: export_table(rows, "json", "disagreements"), rows_state, exported,
                      api_name="compare_export_json")
