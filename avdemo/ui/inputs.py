"""The app's input components and its error path: what a user or an API client sends is checked before
a handler sees it, and every refusal is one short sentence that names the input.

The components are Gradio's own (the same widgets in the page, ``is_template``), with ``preprocess``
checks that Gradio leaves out or words as a wall of text: numbers must be finite numbers within the
widget's range; a choice must be one of the choices (integer choices are declared as integers, and
their digit strings accepted); a picture must be a picture. ``Blocks`` checks the files sent and makes
every ``AVDemoError`` a handler raises the message its user sees."""
from __future__ import annotations

import math
import typing
from typing import Any

import gradio as gr

from ..errors import AVDemoError

SHOWN_CHARS = 60       # of a refused value, in a message
SHOWN_CHOICES = 4      # choices listed in a message


def shown(value: Any) -> str:
    """A refused value, short, for a message."""
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 3] + "..."


def _label(component: gr.components.Component) -> str:
    return str(component.label or component.elem_id or type(component).__name__)


def _number(component: gr.Number | gr.Slider, payload: Any, optional: bool) -> float | None:
    label = _label(component)
    if payload is None and optional:
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
    lo, hi = component.minimum, component.maximum
    if (lo is not None and payload < lo) or (hi is not None and payload > hi):
        raise gr.Error(f"{label}: {payload:g} is outside {'-inf' if lo is None else f'{lo:g}'}.."
                       f"{'inf' if hi is None else f'{hi:g}'}")
    return payload


def _choice(component: gr.Dropdown | gr.Radio, payload: Any, optional: bool) -> Any:
    values = [value for _, value in component.choices]
    if payload is None and not optional:
        raise gr.Error(f"{_label(component)}: a choice is needed")
    if payload is None or payload in values:
        return payload
    if isinstance(payload, str) and payload.strip().lstrip("-").isdigit() and int(payload) in values:
        return int(payload)
    listed = ", ".join(shown(v) for v in values[:SHOWN_CHOICES]) + (f", ... ({len(values)} in all)"
                                                                     if len(values) > SHOWN_CHOICES else "")
    raise gr.Error(f"{_label(component)}: {shown(payload)} is not one of the choices ({listed or 'none yet'})")


def _integer_choices(component: gr.Dropdown | gr.Radio) -> dict[str, Any] | None:
    values = [value for _, value in component.choices]
    if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return {"type": "integer", "enum": values}
    return None


class Number(gr.Number):
    """``gr.Number`` that refuses text, NaN, infinities and values outside its range, naming itself."""

    is_template = True

    def preprocess(self, payload: Any) -> float | int | None:
        return super().preprocess(_number(self, payload, optional=True))


class Slider(gr.Slider):
    """``gr.Slider`` that refuses a missing value, text, NaN, infinities and values outside its range."""

    is_template = True

    def preprocess(self, payload: Any) -> float:
        return super().preprocess(_number(self, payload, optional=False))


class Dropdown(gr.Dropdown):
    """``gr.Dropdown`` whose refusal names it and lists a few choices; integer choices are declared as
    integers (and their digit strings accepted)."""

    is_template = True

    def preprocess(self, payload: Any) -> Any:
        if self.multiselect and isinstance(payload, list):
            return super().preprocess([_choice(self, p, optional=False) for p in payload])
        if isinstance(payload, (list, dict)):
            raise gr.Error(f"{_label(self)}: {shown(payload)} is not one of the choices")
        return super().preprocess(payload if self.allow_custom_value else _choice(self, payload, optional=True))

    def api_info(self) -> dict[str, Any]:
        return _integer_choices(self) or super().api_info()


class Radio(gr.Radio):
    """``gr.Radio`` whose refusal names it and lists its choices."""

    is_template = True

    def preprocess(self, payload: Any) -> Any:
        if isinstance(payload, (list, dict)):
            raise gr.Error(f"{_label(self)}: {shown(payload)} is not one of the choices")
        return super().preprocess(_choice(self, payload, optional=False))


class Image(gr.Image):
    """``gr.Image`` that names itself when a file is not a picture."""

    is_template = True

    def preprocess(self, payload: Any) -> Any:
        try:
            return super().preprocess(payload)
        except Exception:  # noqa: BLE001 - whatever Pillow raises for a file that is not a picture
            raise gr.Error(f"{_label(self)}: the file is not a picture (PNG, JPEG, WebP, ...)") from None


def _file_fault(block: gr.components.Component, payload: Any) -> str | None:
    """Why ``payload`` cannot be a file input's value (a file, or a list of files), or None."""
    if payload is None or getattr(block, "data_model", None) is None:
        return None
    try:
        block.data_model.model_validate(payload, context={"validate_meta": True})
    except Exception:  # noqa: BLE001 - pydantic's ValidationError and its relatives
        return (f"a value of type {type(payload).__name__} is not "
                f"{'a list of files' if isinstance(block, gr.UploadButton) else 'a file'}")
    return None


def _takes_event_data(fn: Any) -> bool:
    hints = typing.get_type_hints(fn) if callable(fn) else {}
    return any(isinstance(t, type) and issubclass(t, gr.EventData) for t in hints.values())


class Blocks(gr.Blocks):
    """The app's ``gr.Blocks``: an input of the wrong shape, or a file the server will not read, is refused
    with a message that names the input; an ``AVDemoError`` from a handler is the message its user sees
    (Gradio shows only ``gr.Error`` messages; anything else becomes one generic sentence)."""

    async def preprocess_data(self, block_fn, inputs: list[Any], state, explicit_call: bool = False):
        for block, payload in zip(block_fn.inputs, inputs):
            if not block.stateful and (fault := _file_fault(block, payload)):
                raise gr.Error(f"{_label(block)}: {fault}")
        try:
            return await super().preprocess_data(block_fn, inputs, state, explicit_call)
        except gr.Error:
            raise
        except Exception as e:  # noqa: BLE001 - Gradio's own refusals (a file not uploaded here, ...)
            names = ", ".join(_label(b) for b in block_fn.inputs if getattr(b, "data_model", None)) or "input"
            raise gr.Error(f"{names}: the file sent cannot be used ({type(e).__name__}); upload it "
                           f"through the page or gradio_client's handle_file") from None

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
