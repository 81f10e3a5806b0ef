"""The Gradio app: seven ways to look at what sound source localization models hear and see, up to four
models side by side.

    python app.py [--checkpoint PATH|URL|hf://owner/repo/file] [--data SPLIT_DIR] [--port N]

Defaults: ``$AVDEMO_CHECKPOINT`` or checkpoints/default.safetensors; ``$AVDEMO_DATA`` or the embedded
test split (generated on first start); writable caches (index, generated data, uploads, downloads)
under ``$AVDEMO_CACHE`` or data_cache/ (the index alone may go to ``$AVDEMO_INDEX_DIR``). Gradio's own variables (GRADIO_SERVER_NAME, GRADIO_SERVER_PORT, ...) apply.
"""
from __future__ import annotations

import os

# Before torch loads OpenMP: threads that spin-wait for descheduled peers make a shared 2-core machine
# several times slower (retrieval measured 1.69 s spinning, 0.41 s passive, under load); passive waiting
# costs next to nothing on an idle machine. An explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import signal  # noqa: E402

import gradio as gr  # noqa: E402
from gradio.route_utils import delete_files_created_by_app  # noqa: E402

from avdemo.index import default_cache_dir  # noqa: E402
from avdemo.ui.compare_tab import build_compare_tab  # noqa: E402
from avdemo.ui.embedding_tab import build_embedding_tab  # noqa: E402
from avdemo.ui.false_positive_tab import build_false_positive_tab  # noqa: E402
from avdemo.ui.indexes import dataset_choices, dataset_folder, ready_index  # noqa: E402
from avdemo.ui.inputs import Blocks  # noqa: E402
from avdemo.ui.live_tab import build_live_tab  # noqa: E402
from avdemo.ui.model_tab import build_model_panel  # noqa: E402
from avdemo.ui.per_class_tab import build_per_class_tab  # noqa: E402
from avdemo.ui.guards import keep_default  # noqa: E402
from avdemo.ui.models import DEFAULT_CHECKPOINT, checkpoint_choices, register_checkpoint, resolve  # noqa: E402
from avdemo.ui.retrieval_tab import build_retrieval_tab  # noqa: E402
from avdemo.ui.status import cancel_button, watch_index  # noqa: E402
from avdemo.ui.video_tab import EXAMPLES_DIR, LOCK_PLAYERS_JS, build_video_tab  # noqa: E402

CONCURRENCY = 2                  # events run at once; the rest wait in the queue
QUEUE_SIZE = 32
DELETE_CACHE = (600, 3600)       # every 10 min, delete temporary files older than 1 h (all of them at exit)
INTRO = """# What does the model hear, and where does it see it?
Sound source localization after *Sound Source Localization is All about Cross-Modal Alignment* (ICCV 2023).
Pick up to four models and a dataset; each tab shows the evidence of every model side by side: picture, sound, heat map,
scores, ground truth."""


def build_app(checkpoint: str, data: str) -> gr.Blocks:
    """The Blocks of the app over ``checkpoint`` (a path, URL or hf:// reference) and the dataset split
    ``data`` (its index prepared in the background while the page answers)."""
    checkpoint, datasets = register_checkpoint(checkpoint), dataset_choices(data)
    keep_default(resolve(checkpoint).path)          # limits: its model stays loaded, its files and indexes stay
    ready_index(resolve(checkpoint), datasets[0])   # its preparation starts now, in the background
    with Blocks(title="Sound source localization", delete_cache=DELETE_CACHE) as demo:
        gr.Markdown(INTRO)
        pickers, card_status = build_model_panel(checkpoint_choices(), checkpoint, datasets, datasets[0])
        cancel = cancel_button()
        with gr.Tabs():
            with gr.Tab("Heat map on a video", id="video"):
                build_video_tab(pickers)
            with gr.Tab("Retrieval", id="retrieval"):
                retrieval_status = build_retrieval_tab(pickers)
            with gr.Tab("Embedding space", id="embedding"):
                embedding_status = build_embedding_tab(pickers)
            with gr.Tab("False positives", id="false-positives"):
                fp_status = build_false_positive_tab(pickers)
            with gr.Tab("Per class", id="per-class"):
                class_status = build_per_class_tab(pickers)
            with gr.Tab("Compare models", id="compare"):
                build_compare_tab(pickers)
            with gr.Tab("Live", id="live"):
                build_live_tab(pickers)
        watch_index(pickers.models, pickers.dataset, pickers.index_key,
                    [card_status, retrieval_status, embedding_status, fp_status, class_status], cancel)
    demo.queue(default_concurrency_limit=CONCURRENCY, max_size=QUEUE_SIZE)
    return demo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=os.environ.get("AVDEMO_CHECKPOINT") or str(DEFAULT_CHECKPOINT))
    parser.add_argument("--data", default=os.environ.get("AVDEMO_DATA"),
                        help="a dataset split folder in the VGG-SS layout (default: the embedded test split)")
    parser.add_argument("--port", type=int, default=None, help="default: $GRADIO_SERVER_PORT or 7860")
    args = parser.parse_args()
    if args.data is None:                           # generated in the background on first start
        from avdemo.data.splits import default_root
        args.data = str(default_root() / "test")
    demo = build_app(args.checkpoint, args.data)
    # stop on SIGTERM as on Ctrl-C, and on SIGINT even when started with it ignored (a background job of a
    # non-interactive shell, e.g. `nohup python app.py &`, inherits SIGINT ignored and Python keeps it so)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        served = [*(dataset_folder(name) for name in dataset_choices(args.data)), EXAMPLES_DIR, default_cache_dir()]
        demo.launch(server_port=args.port, allowed_paths=[str(p) for p in served], max_file_size="500mb",
                    js=LOCK_PLAYERS_JS)
    finally:    # Gradio's own clean-up at shutdown can be cut short while clients are still connected
        delete_files_created_by_app(demo, age=None)


if __name__ == "__main__":
    main()
