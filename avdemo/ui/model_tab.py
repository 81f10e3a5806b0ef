"""Models and data: the models' picker (up to ``MAX_MODELS``: bundled, under checkpoints/, or uploaded),
the dataset picker, the class filter, and each picked model's card with its headline numbers on the
chosen dataset."""
from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from ..cache import file_sha256
from ..checkpoints import OFFICIAL_SUFFIXES, card_path, load_model
from ..config import PRESETS, ModelConfig
from ..errors import AVDemoError
from .guards import MODELS, UPLOAD_RATE, upload_store, visitor
from .indexes import get_index
from .models import MAX_MODELS, ModelHandle, model_picker, resolve, upload_choice, uploads_dir
from .status import status_line
from .views import ALL_CLASSES, panels, summary_markdown

UPLOAD_TYPES = [".safetensors", ".json", *OFFICIAL_SUFFIXES]


def save_upload(paths: list[str]) -> str:
    """Keep an uploaded checkpoint: a ``.pth.tar``-style file, or a ``.safetensors`` with its ``.json``
    card. It is loaded (weights only) in a staging folder first and kept only if it loads, in a folder
    named by the content of all its files (so a new card for the same weights is a new upload, never
    mixed with an old one). Returns its picker choice."""
    paths = [Path(p) for p in paths or []]
    weights = [p for p in paths if p.suffix == ".safetensors" or p.name.endswith(OFFICIAL_SUFFIXES)]
    if len(weights) != 1:
        raise AVDemoError(f"upload one checkpoint file (.safetensors with its .json card, or "
                          f"{', '.join(OFFICIAL_SUFFIXES)}); got {len(weights)} weight files")
    files = {weights[0].name: weights[0]}
    if weights[0].suffix == ".safetensors":
        cards = [p for p in paths if p.suffix == ".json"]
        if len(cards) != 1:
            raise AVDemoError(f"{weights[0].name} needs its model card: upload the .json file next to it too")
        files[card_path(weights[0]).name] = cards[0]
    upload_store().check_sizes(files.values())              # limits: the per-file cap
    digest = hashlib.sha256("".join(file_sha256(p) for p in files.values()).encode()).hexdigest()
    target = uploads_dir() / digest[:16] / weights[0].name
    if not target.is_file():
        uploads_dir().mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=uploads_dir()))
        try:
            for name, source in files.items():
                shutil.copyfile(source, staging / name)
            MODELS.check(str(staging / weights[0].name))   # limits: refused before loading when too large
            load_model(staging / weights[0].name)          # raises AVDemoError: nothing is kept
            staging.rename(target.parent)
        except OSError:
            if not target.is_file():                       # not another session keeping the same files
                raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    upload_store().added(target.parent)                    # limits: marked used; old uploads removed
    return upload_choice(target)


def preset_name(config: dict[str, Any]) -> str:
    cfg = ModelConfig.from_dict(config)
    for name, preset in PRESETS.items():
        if cfg == preset:
            return name
    return (f"custom ({cfg.image_size} px frames, {cfg.audio.window_s:g} s of {cfg.audio.sample_rate} Hz audio, "
            f"alignment head {'yes' if cfg.alignment_head else 'no'})")


def _pct(value: Any) -> str:
    return "-" if value is None else f"{value:.1f}"


def switch_markdown(switch: dict[str, Any]) -> str:
    """One line of a switch-test report (``avdemo.switch``)."""
    dependence = switch.get("sound_dependence")
    return (f"**Switch test** ({switch['n_trials']} trials): peak on the played object {_pct(switch['pixels'])} % "
            f"(chance {_pct(switch['chance_pixels'])}, audio-blind {_pct(max(switch['blind_pixels'].values()))}), "
            f"in its box {_pct(switch['box'])} %; sound dependence "
            f"{'-' if dependence is None else f'{dependence:.2f}'} (1: the sound changes nothing)")


def card_markdown(card: dict[str, Any]) -> str:
    """What a model card says, for people: preset, source, training data and steps, reported metrics."""
    lines = [f"**Preset:** {preset_name(card['config'])}", f"**File:** `{Path(card.get('path', '?')).name}`"]
    if family := card.get("family"):
        lines.append(f"**Family:** {family} ({card.get('map_size', '?')}x{card.get('map_size', '?')} map)")
    if notes := card.get("notes"):
        lines.append(f"**Notes:** {notes}")
    if prov := card.get("provenance"):
        data = prov.get("data", {})
        lines.append(f"**Training:** {prov.get('steps', '?')} steps, seed {prov.get('seed', '?')}, "
                     f"{data.get('train_clips', '?')} clips from `{data.get('train', '?')}`, "
                     f"commit `{str(prov.get('git_commit'))[:10]}`")
    test = (card.get("metrics") or {}).get("test") or {}
    if loc := test.get("localization"):
        lines.append(f"**Reported test metrics:** cIoU@0.5 {_pct(loc.get('ciou_success'))} %, "
                     f"AUC {_pct(loc.get('ciou_auc'))}")
    if switch := test.get("switch"):
        lines.append(switch_markdown(switch))
    return "  \n".join(lines)


def describe(models: list[ModelHandle], dataset: str) -> list[Any]:
    """Each picked model's card (markdown and JSON) and its numbers on the dataset (waits for the
    indexes): one of each per model panel."""
    cards, jsons, summaries = [], [], []
    for model in models:
        index = get_index(model, dataset)
        summary = summary_markdown(index)
        if part := index.info.get("subset"):               # limits: an upload's index covers a subset
            summary += f"\n- an uploaded model: indexed on {part['pairs']} of the dataset's {part['of']} pairs"
        if switch := index.info.get("switch"):
            summary += "\n- " + switch_markdown(switch)
        cards.append(card_markdown(model.card))
        jsons.append(json.loads(json.dumps({k: v for k, v in model.card.items() if k != "path"}, default=str)))
        summaries.append(summary)       # no server paths in the page: the card's path is left out
    return [*panels(models, cards), *panels(models, jsons), *panels(models, summaries)]


@dataclass(frozen=True)
class Pickers:
    """What the tabs listen to: the models' picker (handlers get ``list[ModelHandle]``), the dataset
    picker, the key of the picked indexes, set when all of them are ready (``status.watch_index``), and
    the class filter (a class picked in Per class or here: the tabs' galleries and lists keep it)."""

    models: gr.Dropdown
    dataset: gr.Dropdown
    index_key: gr.State
    class_filter: gr.Dropdown


def build_model_panel(checkpoints: list[str], checkpoint: str, datasets: list[str],
                      dataset: str) -> tuple[Pickers, gr.Markdown]:
    """The picker row and a card per model (filled when the indexes are ready); returns the pickers and
    the cards' status line."""
    index_key = gr.State("")
    with gr.Row():
        models = model_picker([(name, name) for name in checkpoints], [checkpoint], scale=4, elem_id="model-choice",
                              label=f"Models (up to {MAX_MODELS} side by side; every tab shows each)")
        dataset_choice = gr.Dropdown(datasets, value=dataset, label="Dataset (VGG-SS layout)", scale=2,
                                     elem_id="dataset-choice")
        class_filter = gr.Dropdown([ALL_CLASSES], value=ALL_CLASSES, label="Class filter (or click one in Per class)",
                                   filterable=True, allow_custom_value=True, scale=2, elem_id="class-filter")
        upload = gr.UploadButton("Upload a checkpoint (.pth.tar, or .safetensors + its .json)", file_count="multiple",
                                 file_types=UPLOAD_TYPES, scale=1, elem_id="checkpoint-upload")
    with gr.Accordion("Model cards", open=False):
        status = status_line()
        cards, jsons, summaries = [], [], []
        with gr.Row():
            for k in range(MAX_MODELS):
                with gr.Column():
                    cards.append(gr.Markdown(label="Model card", visible=k == 0))
                    summaries.append(gr.Markdown(label="On this dataset", visible=k == 0))
                    jsons.append(gr.JSON(label="card (JSON)", visible=k == 0))

    uploaded = gr.State([])          # this session's uploads, offered after the listed checkpoints
    picked = gr.State([checkpoint])  # the last pick of at least one model (the picker may be empty meanwhile)

    def use_upload(files: list[str] | None, names: list[str], earlier: list[str], request: gr.Request):
        """Keep the upload, offer it, and add it to the picked models (in place of the last when full)."""
        if not files:
            return gr.update(), earlier, names
        UPLOAD_RATE.check(visitor(request))                # limits: uploads per visitor
        choice = save_upload(files)
        resolve(choice)
        offered = [*(u for u in earlier if u != choice), choice]
        names = [n for n in names if n != choice][: MAX_MODELS - 1] + [choice]
        choices = [*((n, n) for n in checkpoints), *((f"uploaded: {Path(u).name}", u) for u in offered)]
        return gr.update(choices=choices, value=names), offered, names

    models.change(lambda ms: [m.name for m in ms], models, picked, show_progress="hidden", queue=False,
                  api_name="models_picked")
    upload.upload(use_upload, [upload, picked, uploaded], [models, uploaded, picked], api_name="upload_checkpoint")
    index_key.change(describe, [models, dataset_choice], [*cards, *jsons, *summaries], api_name="model_cards")
    return Pickers(models, dataset_choice, index_key, class_filter), status
