"""The app's input checks and its error path: what a user or an API client sends is checked before a
handler sees it, and every refusal is one short sentence that names the input.

``Blocks`` (the app's ``gr.Blocks``) checks each input before Gradio's own processing: numbers must be
finite numbers within their widget's range; a choice must be one of the choices; a sample, a row number
(its digits as text taken too); a file must have been uploaded to this server (never a server path or a URL)
and, for a picture, be one. An input with a ``converts`` function hands the handler what its value stands
for (the models' picker: ``list[ModelHandle]``). It also makes every ``AVDemoError`` a handler raises the
message its user sees (Gradio shows only ``gr.Error`` messages; anything else becomes one generic sentence)."""
from __future__ import annotations

import math
import types
import typing
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.utils import get_upload_folder
from PIL import Image

from ..errors import AVDemoError

SHOWN_CHARS = 60       # of a refused value, in a message
SHOWN_CHOICES = 4      # choices listed in a message


def shown(value: Any) -> str:
    """A refused value, short, for a message."""
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 3] + "..."


def _label(block: gr.components.Component) -> str:
    return str(block.label or block.elem_id or type(block).__name__)


def _number(block: gr.Number | gr.Slider, payload: Any) -> float | None:
    """A finite number within the widget's range (a number's text accepted); None for an empty Number."""
    label = _label(block)
    if payload is None and isinstance(block, gr.Number):
        return None
    if isinstance(payload, str):
        try:
            payload = float(payload)
        except ValueError:
            raise gr.Error(f"{label}: {shown(payload)} is not a number") from None
    if isinstance(payload, bool) or not isinstance(payload, (int, float)):
        raise gr.Error(f"{label}: {shown(payload)} is not a number")
    if not math.isfinite(payload):
        raise gr.Error(f"{label}: {payload} is not a finite number")
    lo, hi = block.minimum, block.maximum
    if (lo is not None and payload < lo) or (hi is not None and payload > hi):
        raise gr.Error(f"{label}: {payload:g} is outside {'-inf' if lo is None else f'{lo:g}'}.."
                       f"{'inf' if hi is None else f'{hi:g}'}")
    return payload


def _one_choice(block: gr.Dropdown | gr.Radio, payload: Any) -> Any:
    values = [value for _, value in block.choices]
    if payload in values and not isinstance(payload, (list, dict)):
        return payload
    if isinstance(payload, str) and payload.strip().lstrip("-").isdigit() and int(payload) in values:
        return int(payload)
    listed = ", ".join(shown(v) for v in values[:SHOWN_CHOICES]) + (f", ... ({len(values)} in all)"
                                                                     if len(values) > SHOWN_CHOICES else "")
    raise gr.Error(f"{_label(block)}: {shown(payload)} is not one of the choices ({listed or 'none yet'})")


def _choice(block: gr.Dropdown | gr.Radio, payload: Any) -> Any:
    """One of the choices (or, for a multiselect Dropdown, a list of them); None only for a Dropdown."""
    if payload is None:
        if isinstance(block, gr.Radio):
            raise gr.Error(f"{_label(block)}: a choice is needed")
        return None
    if isinstance(block, gr.Dropdown) and block.allow_custom_value:
        return payload
    if isinstance(block, gr.Dropdown) and block.multiselect:
        return [_one_choice(block, p) for p in (payload if isinstance(payload, list) else [payload])]
    return _one_choice(block, payload)


def _sent_paths(payload: Any) -> list[str]:
    """The file paths named in an input's payload (a file's dict, or a list of them); a file sent inline
    (a ``data:`` URL, as a camera stream sends its frames) names none."""
    if isinstance(payload, dict):
        if payload.get("path") is None and str(payload.get("url") or "").startswith("data:"):
            return []
        return [str(payload.get("path") or payload.get("url"))]
    return [p for item in payload for p in _sent_paths(item)] if isinstance(payload, list) else []


def _file(block: gr.components.Component, payload: Any) -> Any:
    """A file (or, for an upload button, a list of files) uploaded to this server; a picture for an
    image input. Gradio 6.31 alone would read a server path or fetch a URL sent as a file."""
    if payload is None:
        return None
    label = _label(block)
    try:
        block.data_model.model_validate(payload, context={"validate_meta": True})
    except Exception:  # noqa: BLE001 - pydantic's ValidationError and its relatives
        raise gr.Error(f"{label}: a value of type {type(payload).__name__} is not "
                       f"{'a list of files' if isinstance(block, gr.UploadButton) else 'a file'}") from None
    uploads = Path(get_upload_folder()).resolve()
    paths = _sent_paths(payload)
    if not all(Path(p).resolve().is_relative_to(uploads) for p in paths):
        raise gr.Error(f"{label}: only files uploaded to this server are read (upload it through the page, or "
                       f"with gradio_client's handle_file)")
    if isinstance(block, gr.Image) and paths:
        try:
            with Image.open(paths[0]) as picture:
                picture.verify()
        except Exception:  # noqa: BLE001 - whatever Pillow raises for a file that is not a picture
            raise gr.Error(f"{label}: the file is not a picture (PNG, JPEG, WebP, ...)") from None
    return payload


def checked(block: gr.components.Component, payload: Any) -> Any:
    """``payload`` as input ``block`` may take it, or a ``gr.Error`` that names the input."""
    if isinstance(block, (gr.Number, gr.Slider)):
        return _number(block, payload)
    if getattr(block, "takes_sample", False):
        return _sample(block, payload)
    if isinstance(block, (gr.Dropdown, gr.Radio)):
        return _choice(block, payload)
    if getattr(block, "data_model", None) is not None and not isinstance(block, gr.State):
        return _file(block, payload)
    return payload


def sample_picker(**kwargs: Any) -> gr.Dropdown:
    """A dropdown of a dataset's samples (labels; values are the index rows), declared to the API as an
    integer: any row of the picked dataset's index is taken, whatever the session's list shows (the
    handler checks the range, ``views.sample_row``); a row's digits as text are taken too."""
    dropdown = gr.Dropdown(allow_custom_value=True, filterable=True, **kwargs)
    dropdown.api_info = types.MethodType(lambda self: {"type": "integer"}, dropdown)
    dropdown.takes_sample = True
    return dropdown


def _sample(block: gr.Dropdown, payload: Any) -> int | None:
    if payload is None or (isinstance(payload, int) and not isinstance(payload, bool)):
        return payload
    if isinstance(payload, str) and payload.strip().isdigit():
        return int(payload)
    raise gr.Error(f"{_label(block)}: {shown(payload)} is not a sample number (a row of the dataset's index)")


def _takes_event_data(fn: Any) -> bool:
    hints = typing.get_type_hints(fn) if callable(fn) else {}
    return any(isinstance(t, type) and issubclass(t, gr.EventData) for t in hints.values())


class Blocks(gr.Blocks):
    """``gr.Blocks`` whose events check their inputs first (``checked``) and show ``AVDemoError``s."""

    async def preprocess_data(self, block_fn, inputs: list[Any], state, explicit_call: bool = False):
        def session_copy(block: gr.components.Component) -> gr.components.Component:
            """The session's own copy of an input (its choices as this session's events updated them)."""
            return state[block._id] if state is not None and block._id in state else block

        inputs = [payload if block.stateful or i in block_fn.component_prop_inputs
                  else checked(session_copy(block), payload)
                  for i, (block, payload) in enumerate(zip(block_fn.inputs, inputs))]
        try:
            processed = await super().preprocess_data(block_fn, inputs, state, explicit_call)
        except gr.Error:
            raise
        except Exception as e:  # noqa: BLE001 - Gradio's own refusals, worded for the user
            names = ", ".join(_label(b) for b in block_fn.inputs if not b.stateful) or "input"
            raise gr.Error(f"{names}: the values sent cannot be used ({type(e).__name__})") from None
        props = block_fn.component_prop_inputs
        try:        # inputs that stand for something the handler takes instead (names -> model handles)
            return [block.converts(value) if getattr(block, "converts", None) and i not in props else value
                    for i, (block, value) in enumerate(zip(block_fn.inputs, processed))]
        except AVDemoError as e:
            raise gr.Error(str(e)) from None

    async def call_function(self, block_fn, processed_input, iterator=None, requests=None, event_id=None,
                            event_data=None, *args, **kwargs):
        if event_data is not None and not isinstance(event_data._data, dict) and _takes_event_data(block_fn.fn):
            raise gr.Error(f"{block_fn.api_name or block_fn.name}: this is a click on a gallery picture; it needs "
                           f"the clicked item (event data with its index)")
        try:
            return await super().call_function(block_fn, processed_input, iterator, requests, event_id, event_data,
                                               *args, **kwargs)
        except AVDemoError as e:
            raise gr.Error(str(e)) from None
