"""The page first, the indexes after: every tab that shows the indexes has a status line, and all of them
follow the picked models' preparation on the picked dataset until every index is ready; then
``index_key`` changes and those tabs fill themselves (they listen to its ``change``), without a reload.
While the visitor's builds wait or run, a button cancels them."""
from __future__ import annotations

import gradio as gr

from ..errors import AVDemoError
from .guards import visitor
from .indexes import build_status, cancel_index, ready_index
from .models import ModelHandle

TICK_S = 1.0      # how often a page waiting for an index asks how far it has got


def status_line() -> gr.Markdown:
    """A tab's line saying what is being prepared (hidden when nothing is)."""
    return gr.Markdown(visible=False, elem_classes=["index-status"])


def cancel_button() -> gr.Button:
    """The button that cancels the visitor's index builds (shown while one is prepared)."""
    return gr.Button("Cancel the index build", visible=False, size="sm", elem_id="cancel-build")


def index_key(models: list[ModelHandle], dataset: str) -> str:
    """What the tabs show: the picked models (by content) on the picked dataset."""
    return " · ".join([*(f"{m.name}@{m.digest[:12]}" for m in models), dataset])


def watch_index(models_choice: gr.Dropdown, dataset_choice: gr.Dropdown, key: gr.State,
                lines: list[gr.Markdown], cancel: gr.Button) -> None:
    """Follow the picked models' indexes: ``lines`` show their progress while they are prepared (the page
    asks every ``TICK_S`` seconds), and ``cancel`` cancels them; ``key`` becomes ``index_key`` once all of
    them are ready."""
    timer = gr.Timer(TICK_S)

    def watch(models: list[ModelHandle], dataset: str, current: str, request: gr.Request):
        hide = gr.update(visible=False)
        try:
            ready = all([ready_index(m, dataset, visitor(request)) is not None for m in models])
        except AVDemoError as e:
            return *[gr.update(value=f"⚠️ {e}", visible=True)] * len(lines), current, gr.Timer(active=False), hide
        if not ready:
            status = gr.update(value=build_status(models, dataset), visible=True)
            return *[status] * len(lines), current, gr.Timer(active=True), gr.update(visible=True)
        return (*[gr.update(value="", visible=False)] * len(lines), index_key(models, dataset), gr.Timer(active=False),
                hide)

    def stop(models: list[ModelHandle], dataset: str, request: gr.Request) -> None:
        for model in models:
            cancel_index(model, dataset, visitor(request))

    gr.on([timer.tick, models_choice.change, dataset_choice.change], watch, [models_choice, dataset_choice, key],
          [*lines, key, timer, cancel], show_progress="hidden", concurrency_limit=None, api_name="index_status")
    cancel.click(stop, [models_choice, dataset_choice], None, api_name="cancel_build")
