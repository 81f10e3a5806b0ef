"""Tab 2, retrieval: a sound ranks the dataset's pictures, a picture ranks its sounds; every result with
its s_A, class match and the heat map of the pair; the split's R@1/5/10 beside it."""
from __future__ import annotations

from typing import Any

import gradio as gr
import numpy as np
import pandas as pd

from ..errors import AVDemoError
from ..index import SampleIndex
from ..media import read_audio
from ..retrieval import FEATURES, Query, retrieve
from .indexes import model_and_index
from .inputs import sample_picker
from .model_tab import Pickers, picked
from .status import status_line
from .views import clicked_rank, export_table, heat_picture, row_at, sample_choices, sample_markdown, sample_row

DIRECTIONS = {"sound → pictures": "audio", "picture → sounds": "image"}
SOURCES = ("indexed sample", "upload")
CONCURRENCY = 2        # searches at once (their own queue group: a long video job never holds them up)
COLUMNS = ["rank", "sample", "id", "class", "class match", "s_A", "s_L"]


def recall_markdown(index: SampleIndex) -> str:
    """R@1/5/10 of the whole split (sounding pairs), both directions, class and instance level."""
    retrieval = index.info["summary"].get("retrieval")
    if not retrieval:
        return "No sounding pairs in this dataset: no retrieval numbers."
    rows = ["| split, R@K (%) | R@1 | R@5 | R@10 |", "|---|---|---|---|"]
    for level, directions in retrieval.items():
        for direction, r in directions.items():
            name = {"audio_to_image": "sound → picture", "image_to_audio": "picture → sound"}[direction]
            rows.append(f"| {level}, {name} | " + " | ".join(f"{v:.1f}" for v in r.values()) + " |")
    return "\n".join(rows)


def make_query(index: SampleIndex, direction: str, source: str, sample: int | None, audio_path: str | None,
               picture: np.ndarray | None) -> Query:
    modality = DIRECTIONS[direction]
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


def ranking(checkpoint: str, dataset: str, direction: str, source: str, sample: int | None,
            audio_path: str | None, picture: np.ndarray | None, k: int) -> tuple[SampleIndex, Query, list, list, str]:
    """One model's answer to a query: (its index, the query, gallery items, table rows, the partner's rank)."""
    model, index = model_and_index(checkpoint, dataset)
    FEATURES.warm_in_background(model, index)
    query = make_query(index, direction, source, sample, audio_path, picture)
    result = retrieve(model, index, query, int(k))
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
    return index, query, gallery, rows, partner


def search(checkpoint: str, dataset: str, direction: str, source: str, sample: int | None, audio_path: str | None,
           picture: np.ndarray | None, k: int):
    """Gallery (heat maps + captions), results table, the partner's rank, the query's picture and sound,
    and the session's result list."""
    index, query, gallery, rows, partner = ranking(checkpoint, dataset, direction, source, sample, audio_path,
                                                   picture, k)
    if query.sample is not None:
        partner = sample_markdown(index, query.sample) + "  \n" + partner
        query_picture, query_sound = index.image_paths[query.sample], str(index.audio_paths[query.sample])
    else:
        query_picture, query_sound = (query.frame, None) if query.modality == "image" else (None, audio_path)
    return (gallery, pd.DataFrame(rows, columns=COLUMNS), partner, query_picture, query_sound,
            {"modality": query.modality, "rows": rows})


def search_b(model_b: str | None, dataset: str, direction: str, source: str, sample: int | None,
             audio_path: str | None, picture: np.ndarray | None, k: int):
    """Model B's ranking for the same query (gallery and partner rank, with B's R@1 on the split), shown
    only when a model B is picked."""
    if not picked(model_b):
        return gr.update(value=None, visible=False), gr.update(value="", visible=False)
    index, _, gallery, _, partner = ranking(model_b, dataset, direction, source, sample, audio_path, picture, k)
    retrieval = index.info["summary"].get("retrieval", {})
    recall = "; ".join(f"{level} R@1 {r['audio_to_image']['R@1']:.1f} / {r['image_to_audio']['R@1']:.1f}"
                       for level, r in retrieval.items())
    return (gr.update(value=gallery, visible=True),
            gr.update(value=f"**Model B** ({model_b}): {partner} On the split: {recall} (sound → picture / "
                            f"picture → sound).", visible=True))


def show_result(checkpoint: str, dataset: str, rank: float | None, results: dict[str, Any] | None):
    """The sound of result ``rank`` (1-based) of the last search, and what it is."""
    if not results or not results["rows"] or rank is None:
        return None, ""
    row = row_at(results["rows"], rank, "result #")
    _, index = model_and_index(checkpoint, dataset)
    return str(index.audio_paths[row["sample"]]), f"Result {row['rank']}: " + sample_markdown(index, row["sample"])


def build_retrieval_tab(pickers: Pickers) -> gr.Markdown:
    """The tab's components and events (filled when the picked index is ready); returns its status line."""
    model_choice, model_b_choice, dataset_choice = pickers.model, pickers.model_b, pickers.dataset
    status = status_line()
    results = gr.State(None)
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            direction = gr.Radio(list(DIRECTIONS), value=next(iter(DIRECTIONS)), label="Query")
            source = gr.Radio(list(SOURCES), value=SOURCES[0], label="Query from")
            sample = sample_picker(label="Indexed sample", elem_id="retrieval-sample")
            upload_sound = gr.Audio(sources=["upload"], type="filepath", label="Uploaded sound")
            upload_picture = gr.Image(sources=["upload"], type="numpy", label="Uploaded picture", height=200)
            k = gr.Slider(1, 20, value=8, step=1, label="K (results)")
            search_button = gr.Button("Search", variant="primary", elem_id="retrieval-search")
            recall = gr.Markdown(label="Recall on this dataset")
        with gr.Column(scale=3):
            with gr.Row():
                query_picture = gr.Image(label="Query picture", height=200, interactive=False, format="jpeg")
                with gr.Column():
                    query_sound = gr.Audio(label="Query sound", interactive=False)
                    partner = gr.Markdown(label="Partner rank")
            gallery = gr.Gallery(label="Top K: heat map of the pair, class (✓ same as the query's), s_A",
                                 columns=4, height=420, format="jpeg", elem_id="retrieval-gallery")
            table = gr.Dataframe(headers=COLUMNS, label="Results", interactive=False)
            partner_b = gr.Markdown(visible=False, label="Model B's ranking", elem_id="retrieval-b-info")
            gallery_b = gr.Gallery(label="Model B's top K for the same query", columns=4, height=300, format="jpeg",
                                   visible=False, elem_id="retrieval-b-gallery")
            with gr.Row():
                rank = gr.Number(None, label="Result # (or click a picture)", precision=0, minimum=1, scale=1)
                result_sound = gr.Audio(label="Its sound", interactive=False, scale=2)
            result_info = gr.Markdown(label="Result")
            with gr.Row():
                csv_button = gr.Button("Export results (CSV)", size="sm")
                json_button = gr.Button("Export results (JSON)", size="sm")
                exported = gr.File(label="Export", height=60)

    query_inputs = [dataset_choice, direction, source, sample, upload_sound, upload_picture, k]
    queue = dict(concurrency_id="retrieval", concurrency_limit=CONCURRENCY)   # beside a long video job
    search_button.click(search, [model_choice, *query_inputs],
                        [gallery, table, partner, query_picture, query_sound, results], api_name="retrieve", **queue
                        ).then(search_b, [model_b_choice, *query_inputs], [gallery_b, partner_b], api_name="retrieve_b",
                               **queue)
    gallery.select(clicked_rank, None, rank, api_name="retrieval_pick")
    rank.change(show_result, [model_choice, dataset_choice, rank, results], [result_sound, result_info],
                api_name="retrieval_result")

    def export(fmt: str):
        def run(res: dict[str, Any] | None) -> str:
            if not res or not res["rows"]:
                raise gr.Error("search first: there are no results to export")
            return export_table(res["rows"], fmt, "retrieval")
        return run

    csv_button.click(export("csv"), results, exported, api_name="retrieval_export_csv")
    json_button.click(export("json"), results, exported, api_name="retrieval_export_json")

    def refresh(checkpoint: str, dataset: str):
        _, new = model_and_index(checkpoint, dataset)
        new_choices = sample_choices(new)
        return (gr.update(choices=new_choices, value=new_choices[0][1] if new_choices else None),
                recall_markdown(new), None, None)

    pickers.index_key.change(refresh, [model_choice, dataset_choice], [sample, recall, gallery, results],
                             api_name="retrieval_refresh")
    pickers.class_filter.change(lambda c, d, f: gr.update(choices=sample_choices(model_and_index(c, d)[1], f)),
                                [model_choice, dataset_choice, pickers.class_filter], sample,
                                api_name="retrieval_class_samples")
    return status
