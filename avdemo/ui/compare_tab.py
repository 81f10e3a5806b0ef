"""Tab 6, compare models: every picked model's numbers on the dataset side by side, and the
disagreements of any two of them (``avdemo.compare``): samples where the one (B) fixes or breaks the other (A), each
shown with both maps, a card per model, and CSV / JSON export."""
from __future__ import annotations

import dataclasses

import gradio as gr
import numpy as np
import pandas as pd

from ..compare import DISAGREEMENT_DIRECTIONS, DISAGREEMENT_MEASURES, disagreements, summary_rows
from ..errors import AVDemoError
from ..index import SampleIndex
from .indexes import get_indexes
from .model_tab import Pickers
from .models import ModelHandle
from .views import ALL_CLASSES, card, clicked_rank, export_table, heat_thumbnail, in_class, panel_label, row_at, \
    sample_markdown

SHOWN = 24                # gallery size; the table and the exports have every sample
GAP = 4                   # pixels between the two maps of a pair picture


def pair_picture(a: SampleIndex, b: SampleIndex, i: int) -> np.ndarray:
    """Sample ``i`` with the map of A (left) and of B (right)."""
    left, right = heat_thumbnail(a, i), heat_thumbnail(b, i)
    return np.concatenate([left, np.full((left.shape[0], GAP, 3), 255, np.uint8), right], axis=1)


def pair_choices(models: list[ModelHandle]) -> list[tuple[str, int]]:
    """The choices of the A and B pickers: the picked models, by their number (1-based)."""
    return [(f"{k + 1}. {m.label}", k + 1) for k, m in enumerate(models)]


def picked_pair(models: list[ModelHandle], dataset: str, a: int | None, b: int | None
                ) -> tuple[SampleIndex, SampleIndex, str, str]:
    """The indexes and names of models number ``a`` and ``b`` of the picked ones."""
    if len(models) < 2:
        raise AVDemoError("pick at least two models above to compare them")
    if a is None or b is None or not (1 <= a <= len(models) and 1 <= b <= len(models)) or a == b:
        raise AVDemoError(f"A and B: two different models of the {len(models)} picked (1..{len(models)})")
    ia, ib = get_indexes([models[a - 1], models[b - 1]], dataset)
    return ia, ib, panel_label(models, a - 1), panel_label(models, b - 1)


def numbers_table(models: list[ModelHandle], dataset: str) -> pd.DataFrame:
    """Every picked model's headline numbers on the dataset, a column each, with the difference from the
    first."""
    labels = [panel_label(models, k) for k in range(len(models))]
    return pd.DataFrame(summary_rows(get_indexes(models, dataset), labels))


def compare(models: list[ModelHandle], dataset: str, a: int | None, b: int | None, measure: str, direction: str,
            class_name: str | None = None):
    """(every model's numbers, gallery of pair pictures, table, all rows, headline) for models number
    ``a`` and ``b``; the gallery and the list keep ``class_name``'s samples only when the class filter has
    one."""
    ia, ib, name_a, name_b = picked_pair(models, dataset, a, b)
    found = disagreements(ia, ib, measure, direction)
    keep = np.isin(found.samples, in_class(ia, found.samples, class_name))
    found = dataclasses.replace(found, samples=found.samples[keep], a=found.a[keep], b=found.b[keep],
                                gain=found.gain[keep])
    rows = found.rows(ia, measure)
    gallery = [(pair_picture(ia, ib, int(i)), f"#{i} {ia.class_names[i] or ia.kinds[i]}: A {va:.2f} / B {vb:.2f}")
               for i, va, vb in zip(found.samples[:SHOWN], found.a, found.b)]
    agree = int(ia.sounding.sum() if measure != "false alarm" else (~ia.sounding).sum()) - len(rows)
    headline = (f"**{direction}** by {measure}, A = **{name_a}**, B = **{name_b}**: {len(rows)} samples (the "
                f"models agree on {agree}); left map A, right map B")
    if class_name not in (None, "", ALL_CLASSES):
        headline += f"; class **{class_name}** only (clear the class filter for all)"
    return numbers_table(models, dataset), gallery, pd.DataFrame(rows), rows, headline


def compare_card(models: list[ModelHandle], dataset: str, a: int | None, b: int | None, rows: list[dict],
                 position: float | None) -> tuple[np.ndarray, np.ndarray, str]:
    """Both models' cards of the sample at 1-based ``position`` in the disagreement list."""
    if not rows:
        raise gr.Error("no disagreements listed yet: press Compare")
    if position is None:
        raise gr.Error("position: pick a sample of the list first")
    ia, ib, _, _ = picked_pair(models, dataset, a, b)
    i = row_at(rows, position)["sample"]
    return card(ia, i), card(ib, i), sample_markdown(ia, i)


def build_compare_tab(pickers: Pickers) -> None:
    """The tab's components and events."""
    gr.Markdown("Pick two or more models above: their numbers on the dataset come side by side. Then pick the "
                "two to set against each other. *B fixes A*: samples where B does better, most first; *B breaks "
                "A*: where it does worse. *false alarm*: on non-sounding pairs, how sounding the pair looks to "
                "each model (the share of its own sounding pairs it is more confident about).")
    with gr.Row():
        side_a = gr.Dropdown([], value=None, label="A (left map)", scale=1, elem_id="compare-a")
        side_b = gr.Dropdown([], value=None, label="B (right map)", scale=1, elem_id="compare-b")
        measure = gr.Radio(list(DISAGREEMENT_MEASURES), value=DISAGREEMENT_MEASURES[0], label="Measure", scale=2)
        direction = gr.Radio(list(DISAGREEMENT_DIRECTIONS), value=DISAGREEMENT_DIRECTIONS[0], label="Direction",
                             scale=2)
        run = gr.Button("Compare", variant="primary", scale=1, elem_id="compare-run")
    numbers = gr.Dataframe(label="Every picked model on this dataset", interactive=False, elem_id="compare-numbers")
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
            card_a = gr.Image(label="A", interactive=False, format="jpeg", elem_id="compare-card-a")
            card_b = gr.Image(label="B", interactive=False, format="jpeg", elem_id="compare-card-b")
            about = gr.Markdown(label="Sample")

    def refresh(models: list[ModelHandle], dataset: str):
        """New models or dataset: their numbers, and A and B set to the first two."""
        choices = pair_choices(models)
        pair = [gr.update(choices=choices, value=choices[k][1] if len(choices) > 1 else None) for k in (0, 1)]
        return numbers_table(models, dataset), *pair

    pickers.index_key.change(refresh, [pickers.models, pickers.dataset], [numbers, side_a, side_b],
                             api_name="compare_numbers")
    inputs = [pickers.models, pickers.dataset, side_a, side_b, measure, direction, pickers.class_filter]
    gr.on([run.click, measure.change, direction.change], compare, inputs,
          [numbers, gallery, table, rows_state, headline], api_name="compare")
    gallery.select(clicked_rank, None, position, api_name="compare_pick")
    position.change(compare_card, [pickers.models, pickers.dataset, side_a, side_b, rows_state, position],
                    [card_a, card_b, about], api_name="compare_card")
    csv_button.click(lambda rows: export_table(rows, "csv", "disagreements"), rows_state, exported,
                     api_name="compare_export_csv")
    json_button.click(lambda rows: export_table(rows, "json", "disagreements"), rows_state, exported,
                      api_name="compare_export_json")
