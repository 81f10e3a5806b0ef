"""The page first, the index after: every tab that shows the index has a status line, and all of them
follow the picked (model, dataset) pair's preparation until it is ready; then ``index_key`` changes and
those tabs fill themselves (they listen to its ``change``), without a reload."""
from __future__ import annotations

import gradio as gr

from ..errors import AVDemoError
from .guards import visitor
from .indexes import build_status, cancel_index, ready_index

TICK_S = 1.0      # how often a page waiting for an index asks how far it has got


def status_line() -> gr.Markdown:
    """A tab's line saying what is being prepared (hidden when nothing is)."""
    return gr.Markdown(visible=False, elem_classes=["index-status"])


def cancel_button() -> gr.Button:
    """The button that cancels the visitor's index build (shown while one is prepared)."""
    return gr.Button("Cancel the index build", visible=False, size="sm", elem_id="cancel-build")


def watch_index(model_choice: gr.Dropdown, dataset_choice: gr.Dropdown, index_key: gr.State,
                lines: list[gr.Markdown], cancel: gr.Button) -> None:
    """Follow the picked pair's index: ``lines`` show its progress while it is prepared (the page asks every
    ``TICK_S`` seconds), and ``cancel`` cancels it; ``index_key`` becomes the pair's key once it is ready."""
    timer = gr.Timer(TICK_S)

    def watch(checkpoint: str, dataset: str, key: str, request: gr.Request):
        hide = gr.update(visible=False)
        try:
            ready = ready_index(checkpoint, dataset, visitor(request)) is not None
        except AVDemoError as e:
            return *[gr.update(value=f"⚠️ {e}", visible=True)] * len(lines), key, gr.Timer(active=False), hide
        if not ready:
            status = gr.update(value=build_status(checkpoint, dataset), visible=True)
            return *[status] * len(lines), key, gr.Timer(active=True), gr.update(visible=True)
        return (*[gr.update(value="", visible=False)] * len(lines), f"{checkpoint} · {dataset}",
                gr.Timer(active=False), hide)

    gr.on([timer.tick, model_choice.change, dataset_choice.change], watch, [model_choice, dataset_choice, index_key],
          [*lines, index_key, timer, cancel], show_progress="hidden", concurrency_limit=None, api_name="index_status")
    def stop(checkpoint: str, dataset: str, request: gr.Request) -> None:
        cancel_index(checkpoint, dataset, visitor(request))

    cancel.click(stop, [model_choice, dataset_choice], None, api_name="cancel_build")
