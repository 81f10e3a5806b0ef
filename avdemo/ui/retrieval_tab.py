"""Tab 2, retrieval: a sound ranks the dataset's pictures, a picture ranks its sounds, by every picked
model (a gallery each); every result with its s_A, class match and the heat map of the pair; the split's
R@1/5/10 of each model beside it."""
from __future__ import annotations


import gradio as gr
import numpy as np
import pandas as pd

from ..compare import summary_rows
from ..errors import AVDemoError
from ..index import SampleIndex
from ..media import read_audio
from ..retrieval import FEATURES, Query, retrieve
from .indexes import get_index, get_indexes
from .inputs import sample_picker
from .model_tab import Pickers
from .models import MAX_MODELS, ModelHandle
from .status import status_line
from .views import (clicked_row, export_table, heat_picture, panel_label, panels, row_at, sample_choices,
                    sample_markdown, sample_row)

QUERY_DIRECTIONS = {"sound → pictures": "audio", "picture → sounds": "image"}
SOURCES = ("indexed sample", "upload")
CONCURRENCY = 2        # searches at once (their own queue group: a long video job never holds them up)
COLUMNS = ["model #", "model", "rank", "sample", "id", "class", "class match", "s_A", "s_L"]


def recall_table(models: list[ModelHandle], indexes: list[SampleIndex]) -> pd.DataFrame:
    """R@1/5/10 of the whole split (sounding pairs), both directions, class and instance level: a column
    per model."""
    rows = summary_rows(indexes, [panel_label(models, k) for k in range(len(models))])
    return pd.DataFrame([r for r in rows if " R@" in r["metric"]])


def make_query(index: SampleIndex, direction: str, source: str, sample: int | None, audio_path: str | None,
               picture: np.ndarray | None) -> Query:
    modality = QUERY_DIRECTIONS[direction]
    if source == SOURCES[0]:
        if sample is None:
            raise AVDemoError("choose an indexed sample to search with")
        return Query(modality, sample=sample_row(index, sample, "Indexed sample"))
    if modality == "audio":
        if not audio_path:
            raise AVDemoError("upload a sound to search with (or query from an indexed sample)")
        wav, sample_rate = read_audio(audio_path)
        return Query(modality, wav=wav, sample_rate=sample_rate)
    if picture is None:
        raise AVDemoError("upload a picture to search with (or query from an indexed sample)")
    return Query(modality, frame=np.asarray(picture, np.uint8)[..., :3])


def ranking(model: ModelHandle, index: SampleIndex, query: Query, k: int) -> tuple[list, list, str]:
    """One model's answer to a query: (gallery items, table rows, a line on the partner's rank and the
    model's R@1 on the split)."""
    FEATURES.warm_in_background(model.model, index)
    result = retrieve(model.model, index, query, int(k))
    rows, gallery = [], []
    for rank, (i, sim, frame, map_raw, s_l) in enumerate(zip(result.samples, result.similarity, result.frames,
                                                             result.maps, result.s_L), start=1):
        match = None if result.class_match is None else bool(result.class_match[rank - 1])
        rows.append({"rank": rank, "sample": int(i), "id": index.ids[i], "class": str(index.class_names[i]),
                     "class match": {None: "-", True: "yes", False: "no"}[match],
                     "s_A": round(float(sim), 4), "s_L": round(float(s_l), 4)})
        mark = {None: "", True: " ✓", False: " ✗"}[match]
        gallery.append((heat_picture(frame, map_raw), f"{rank}. {index.class_names[i]}{mark}  s_A {sim:.3f}"))
    if result.partner_rank is not None:
        partner = f"The query's own partner ranks **{result.partner_rank}** of {result.gallery_size}."
    else:
        partner = "The query has no partner in the index (an upload or a non-sounding pair)."
    return gallery, rows, partner


def search(models: list[ModelHandle], dataset: str, direction: str, source: str, sample: int | None,
           audio_path: str | None, picture: np.ndarray | None, k: int):
    """Each model's gallery (heat maps + captions) and partner line, the results table of all models, the
    query's picture, sound and description, and the session's result rows."""
    indexes = get_indexes(models, dataset)
    query = make_query(indexes[0], direction, source, sample, audio_path, picture)
    galleries, partners, rows = [], [], []
    for n, (model, index) in enumerate(zip(models, indexes)):
        gallery, found, partner = ranking(model, index, query, k)
        galleries.append(gallery)
        partners.append(partner)
        rows += [{"model #": n + 1, "model": panel_label(models, n), **row} for row in found]
    first = indexes[0]
    if query.sample is not None:
        about = sample_markdown(first, query.sample)
        query_picture, query_sound = first.image_paths[query.sample], str(first.audio_paths[query.sample])
    else:
        about = "An uploaded query."
        query_picture, query_sound = (query.frame, None) if query.modality == "image" else (None, audio_path)
    return (*panels(models, galleries, "top K (heat map of the pair, class ✓ same as the query's, s_A)"),
            *panels(models, partners), pd.DataFrame(rows, columns=COLUMNS), about, query_picture, query_sound, rows)


def show_result(models: list[ModelHandle], dataset: str, position: float | None, rows: list[dict] | None):
    """The sound of the result at 1-based ``position`` of the results table, and what it is."""
    if not rows or position is None:
        return None, ""
    row = row_at(rows, position, "result #")
    index = get_index(models[row["model #"] - 1], dataset) if row["model #"] <= len(models) else None
    if index is None:
        raise AVDemoError("result #: the models picked changed since the search; search again")
    return (str(index.audio_paths[row["sample"]]),
            f"{row['model']}, result {row['rank']}: " + sample_markdown(index, row["sample"]))


def build_retrieval_tab(pickers: Pickers) -> gr.Markdown:
    """The tab's components and events (filled when the picked indexes are ready); returns its status line."""
    status = status_line()
    results = gr.State(None)
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            direction = gr.Radio(list(QUERY_DIRECTIONS), value=next(iter(QUERY_DIRECTIONS)), label="Query")
            source = gr.Radio(list(SOURCES), value=SOURCES[0], label="Query from")
            sample = sample_picker(label="Indexed sample", elem_id="retrieval-sample")
            upload_sound = gr.Audio(sources=["upload"], type="filepath", label="Uploaded sound")
            upload_picture = gr.Image(sources=["upload"], type="numpy", label="Uploaded picture", height=200)
            k = gr.Slider(1, 20, value=8, step=1, label="K (results)")
            search_button = gr.Button("Search", variant="primary", elem_id="retrieval-search")
        with gr.Column(scale=3):
            with gr.Row():
                query_picture = gr.Image(label="Query picture", height=200, interactive=False, format="jpeg")
                with gr.Column():
                    query_sound = gr.Audio(label="Query sound", interactive=False)
                    about = gr.Markdown(label="Query")
            recall = gr.Dataframe(label="Recall on this dataset (%), each model", interactive=False,
                                  elem_id="retrieval-recall")
    galleries, partners = [], []
    for n in range(MAX_MODELS):
        partners.append(gr.Markdown(visible=n == 0, elem_id=f"retrieval-partner-{n}"))
        galleries.append(gr.Gallery(label="Top K", columns=8, height=240, format="jpeg", visible=n == 0,
                                    elem_id=f"retrieval-gallery-{n}"))
    table = gr.Dataframe(headers=COLUMNS, label="Results of every model", interactive=False, max_height=300)
    with gr.Row():
        position = gr.Number(None, label="Result # in the table (or click a picture)", precision=0, minimum=1, scale=1)
        result_sound = gr.Audio(label="Its sound", interactive=False, scale=2)
    result_info = gr.Markdown(label="Result")
    with gr.Row():
        csv_button = gr.Button("Export results (CSV)", size="sm")
        json_button = gr.Button("Export results (JSON)", size="sm")
        exported = gr.File(label="Export", height=60)

    query_inputs = [pickers.models, pickers.dataset, direction, source, sample, upload_sound, upload_picture, k]
    search_button.click(search, query_inputs, [*galleries, *partners, table, about, query_picture, query_sound, results],
                        api_name="retrieve", concurrency_id="retrieval", concurrency_limit=CONCURRENCY)
    for n, gallery in enumerate(galleries):
        gallery.select(clicked_row(n), results, position, api_name=f"retrieval_pick_{n + 1}")
    position.change(show_result, [pickers.models, pickers.dataset, position, results], [result_sound, result_info],
                    api_name="retrieval_result")

    def export(fmt: str):
        def run(res: list[dict] | None) -> str:
            if not res:
                raise gr.Error("search first: there are no results to export")
            return export_table(res, fmt, "retrieval")
        return run

    csv_button.click(export("csv"), results, exported, api_name="retrieval_export_csv")
    json_button.click(export("json"), results, exported, api_name="retrieval_export_json")

    def refresh(models: list[ModelHandle], dataset: str):
        indexes = get_indexes(models, dataset)
        choices = sample_choices(indexes[0])
        return (gr.update(choices=choices, value=choices[0][1] if choices else None), recall_table(models, indexes),
                *panels(models, [None] * len(models)), *panels(models, [""] * len(models)), None)

    pickers.index_key.change(refresh, [pickers.models, pickers.dataset],
                             [sample, recall, *galleries, *partners, results],
                             api_name="retrieval_refresh")
    pickers.class_filter.change(lambda ms, d, f: gr.update(choices=sample_choices(get_index(ms[0], d), f)),
                                [pickers.models, pickers.dataset, pickers.class_filter], sample,
                                api_name="retrieval_class_samples")
    return status
