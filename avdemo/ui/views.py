"""What the tabs show, shared by all of them: one panel per picked model (``panels``), heat-map
thumbnails and sample cards of indexed samples, score and summary lines, positions in listed rows, and
exported tables and cards (written where Gradio's cache cleaning deletes them)."""
from __future__ import annotations

import csv
import io
import json
import secrets
from pathlib import Path
from typing import Any

import numpy as np
import gradio as gr
import torch
from gradio.utils import get_upload_folder
from PIL import Image

from ..benchmarks import read_frame
from ..compare import headline_numbers
from ..errors import AVDemoError
from .inputs import shown
from .models import MAX_MODELS, ModelHandle
from ..index import SampleIndex
from ..metrics import median_binarise
from ..model import upsample_maps
from ..overlay import normalise, overlay, sample_card

CMAP = "jet"
OPACITY = 0.5
ALL_CLASSES = "(all classes)"      # the class filter cleared


def panels(models: list[ModelHandle], values: list[Any], title: str = "") -> list[Any]:
    """The outputs of one component per model panel (``MAX_MODELS`` of them): each picked model's value,
    shown and labelled "<model>: <title>"; the panels past the picked models hidden and emptied."""
    shown_ = [gr.update(value=v, visible=True, **({"label": f"{m.label}: {title}"} if title else {}))
              for m, v in zip(models, values)]
    return shown_ + [gr.update(value=None, visible=False)] * (MAX_MODELS - len(shown_))


def panel_label(models: list[ModelHandle], k: int) -> str:
    """The name of model ``k`` in a combined table or figure: its short label, numbered when two picked
    models share one."""
    labels = [m.label for m in models]
    return labels[k] if labels.count(labels[k]) == 1 else f"{k + 1}. {labels[k]}"


def summary_markdown(index: SampleIndex, title: str = "On this dataset") -> str:
    """The index's headline numbers (``compare.headline_numbers``), a line per kind of number."""
    summary = index.info["summary"]
    kind = lambda name: "retrieval" if " R@" in name else "false positives" if "FP" in name or "ROC" in name \
        else "localization"
    groups: dict[str, list[str]] = {}
    for name, value in headline_numbers(summary).items():
        groups.setdefault(kind(name), []).append(f"{name} {value:.1f}")
    lines = [f"**{title}** ({summary['n_sounding']} sounding, {summary['n_non_sounding']} non-sounding pairs)"]
    return "\n".join(lines + [f"- {k}: " + ", ".join(items) for k, items in groups.items()])


def class_choices(index: SampleIndex) -> list[str]:
    """The class filter's choices on an index: none, or one of its classes."""
    return [ALL_CLASSES, *sorted(set(index.class_names) - {""})]


def sample_choices(index: SampleIndex, class_name: str | None = None) -> list[tuple[str, int]]:
    """A sample picker's choices: every sample (of the filtered class), sounding pairs first."""
    order = np.concatenate([np.flatnonzero(index.sounding), np.flatnonzero(~index.sounding)])
    return [(index.label(int(i)), int(i)) for i in in_class(index, order, class_name)]


def filtered_class(index: SampleIndex, class_name: str | None) -> str | None:
    """The class the filter keeps on ``index`` (None: cleared); a clear error for a class it does not have
    (the filter takes any text: its choices are the picked dataset's classes)."""
    if class_name in (None, "", ALL_CLASSES):
        return None
    if not isinstance(class_name, str) or class_name not in set(index.class_names):
        raise AVDemoError(f"class filter: {shown(class_name)} is not a class of this dataset")
    return class_name


def in_class(index: SampleIndex, samples: np.ndarray, class_name: str | None) -> np.ndarray:
    """``samples`` of the class ``class_name`` (all of them when the filter is cleared), in order."""
    samples = np.asarray(samples, dtype=int)
    class_name = filtered_class(index, class_name)
    return samples if class_name is None else samples[index.class_names[samples] == class_name]


def map_at(map_lowres: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A low-resolution map S (h, w) at (H, W), resized as ``localize`` resizes it."""
    return upsample_maps(torch.from_numpy(np.array(map_lowres, np.float32))[None], size)[0].numpy()


def heat_thumbnail(index: SampleIndex, i: int, normalisation: str = "frame") -> np.ndarray:
    """Sample ``i``'s thumbnail with its own heat map blended on it."""
    thumb = index.thumbnail(i)
    return overlay(thumb, normalise(map_at(index.maps_lowres[i], thumb.shape[:2]), normalisation), CMAP, OPACITY)


def heat_picture(frame: np.ndarray, map_raw: np.ndarray, normalisation: str = "frame") -> np.ndarray:
    """A frame with a map (at the frame's size) blended on it."""
    return overlay(frame, normalise(map_raw, normalisation), CMAP, OPACITY)


def gt_mask(index: SampleIndex, i: int) -> np.ndarray | None:
    """The sounding object's silhouette when the dataset ships masks (our embedded data), else None."""
    mask = index.masks[i]
    if not mask:
        return None
    labels = np.asarray(Image.open(index.root / mask["path"]))
    return labels == mask["value"]


def score_items(index: SampleIndex, i: int) -> dict[str, float]:
    """The defined scores of sample ``i``: s_A, s_L, map confidences and cIoU."""
    names = {"s_A": "s_A", "s_L": "s_L", "conf_top25": "top25", "conf_peak": "peak", "ciou": "cIoU"}
    return {label: float(index.scores[name][i]) for name, label in names.items() if not np.isnan(index.scores[name][i])}


def score_line(index: SampleIndex, i: int) -> str:
    return "  ·  ".join(f"{k} {v:.3f}" for k, v in score_items(index, i).items())


def card(index: SampleIndex, i: int, normalisation: str = "frame") -> np.ndarray:
    """The sample card: image with ground truth, its heat map, the median-binarised map, the scores."""
    frame = read_frame(index.image_paths[i])
    map_raw = map_at(index.maps_lowres[i], frame.shape[:2])
    mask = gt_mask(index, i)
    if mask is not None and mask.shape != frame.shape[:2]:
        mask = None
    title = f"{index.ids[i]} · {index.class_names[i] or index.kinds[i]}"
    return sample_card(frame, map_raw, score_items(index, i), gt_boxes=index.boxes[i], gt_mask=mask,
                       pred_mask=median_binarise(map_raw), title=title, normalisation=normalisation,
                       cmap=CMAP, opacity=OPACITY)


def sample_markdown(index: SampleIndex, i: int) -> str:
    """A short description of sample ``i`` for the UI."""
    what = index.class_names[i] or "no visible source"
    return (f"**#{i} {index.ids[i]}** · {what} · {index.kinds[i]} · {index.groups[i]}  \n{score_line(index, i)}")


def sample_row(index: SampleIndex, sample: int, label: str = "sample") -> int:
    """``sample`` as a row of ``index``; a clear error for any other number."""
    if not 0 <= sample < len(index):
        raise AVDemoError(f"{label}: {sample} is not a sample of this dataset (0..{len(index) - 1})")
    return int(sample)


def row_at(rows: list[dict[str, Any]], position: float, label: str = "position") -> dict[str, Any]:
    """The row at 1-based ``position`` of a list shown to the user; a clear error past either end."""
    if not 1 <= position <= len(rows) or position != int(position):
        raise AVDemoError(f"{label}: {position:g} is not a position in the list (1..{len(rows)})")
    return rows[int(position) - 1]


def clicked_rank(evt: gr.SelectData) -> int:
    """The 1-based position of the gallery item a user clicked."""
    index = getattr(evt, "index", None)
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise AVDemoError("pick: no gallery picture was clicked (the event carries no picture's position)")
    return index + 1


def clicked_row(panel: int):
    """The handler of a click on model ``panel``'s gallery: the clicked item's 1-based position in the
    combined list of all models' rows (``rows``: each row names its model's number, ``"model #"``)."""
    def run(rows: list[dict[str, Any]] | None, evt: gr.SelectData) -> int:
        rank = clicked_rank(evt)
        start = next((k for k, row in enumerate(rows or []) if row["model #"] == panel + 1), None)
        if start is None:
            raise AVDemoError(f"pick: model {panel + 1} has no listed rows")
        return start + rank
    return run


def export_path(stem: str, suffix: str) -> Path:
    """A fresh file in Gradio's cache folder: returned to a component, it is served without a copy and
    deleted by the app's cache cleaning (``delete_cache``) like every other temporary file."""
    folder = Path(get_upload_folder())
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{stem}-{secrets.token_hex(4)}{suffix}"


def export_table(rows: list[dict[str, Any]], fmt: str, stem: str) -> str:
    """Write ``rows`` as CSV or JSON; returns the file path."""
    if fmt == "json":
        text = json.dumps(rows, indent=1)
    elif fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else [], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        text = buffer.getvalue()
    else:
        raise ValueError(f"unknown table format {fmt!r}; use 'csv' or 'json'")
    path = export_path(stem, f".{fmt}")
    path.write_text(text)
    return str(path)


def export_png(image: np.ndarray, stem: str) -> str:
    path = export_path(stem, ".png")
    Image.fromarray(image).save(path)
    return str(path)
