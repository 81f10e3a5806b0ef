"""App latencies: index load, app start to first response, retrieval and the other analysis events
(in process and through the server with gradio_client), tab switches in Chromium; the app's memory at
rest, and at its peak while mapping ``--video`` (e.g. a 60 s 1080p clip) in the video tab.

    python bench/app_latency.py [--checkpoint PATH] [--data SPLIT_DIR] [--repeats 20] [--no-browser]
                                [--video CLIP.mp4]

Defaults: the default checkpoint and the embedded test split. The index is built first when missing
(that time is reported on its own line and is not part of the app's start).
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")     # as app.py, before torch loads

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from appdata import AppData, start_app, stop_app  # noqa: E402

from avdemo.index import default_cache_dir, ensure_index, index_folder_name  # noqa: E402

TABS = {"Retrieval": "#retrieval-search", "Embedding space": "#embedding-plot-0 .js-plotly-plot",
        "False positives": "#fp-plot-0 .js-plotly-plot", "Heat map on a video": "#video-input"}


def timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def report(name: str, seconds: list[float]) -> None:
    ms = sorted(1000 * s for s in seconds)
    print(f"{name:48s} median {statistics.median(ms):7.1f} ms   p90 {ms[int(0.9 * (len(ms) - 1))]:7.1f} ms   "
          f"(n={len(ms)})", flush=True)


def memory_mib(pid: int, field: str) -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of a process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def map_video(url: str, checkpoint: str, video: Path, pid: int) -> None:
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False, download_files=False)
    start = time.perf_counter()
    info = client.predict(checkpoint, handle_file(str(video)), "frame", "jet", 0.5, 0.0, 1, "original", None, None,
                          api_name="/localize_video")[9]
    print(f"{'video tab: ' + video.name:48s} {time.perf_counter() - start:7.2f} s; peak memory "
          f"{memory_mib(pid, 'VmHWM'):.0f} MiB, after it {memory_mib(pid, 'VmRSS'):.0f} MiB", flush=True)
    print("  " + info.splitlines()[0], flush=True)


def in_process(checkpoint: str, data: str, repeats: int) -> None:
    """The events' functions called directly: the server's compute, without HTTP and queue."""
    from avdemo.negatives import ORDERINGS
    from avdemo.ui import embedding_tab, false_positive_tab, retrieval_tab
    from avdemo.ui.indexes import dataset_choices, get_index
    from avdemo.ui.models import register_checkpoint, resolve

    models, data = [resolve(register_checkpoint(checkpoint))], dataset_choices(data)[0]     # by name, as the page
    index = get_index(models[0], data)
    sample = int(index.gallery[0])
    retrieval_tab.search(models, data, "sound → pictures", "indexed sample", sample, None, None, 8)   # warm-up
    report("in process: retrieve, sound -> 8 pictures", timed(lambda: retrieval_tab.search(
        models, data, "sound → pictures", "indexed sample", sample, None, None, 8), repeats))
    report("in process: retrieve, picture -> 8 sounds", timed(lambda: retrieval_tab.search(
        models, data, "picture → sounds", "indexed sample", sample, None, None, 8), repeats))
    report("in process: embedding sample (card, neighbours, plot)", timed(lambda: embedding_tab.show_sample(
        models, data, sample, "class", True, True), repeats))
    threshold = false_positive_tab.threshold_slider(index, "top25")["value"]
    report("in process: false positives at a threshold", timed(lambda: false_positive_tab.analyse(
        models, data, "top25", ORDERINGS[0], None, threshold), repeats))


def through_server(url: str, checkpoint: str, data: str, sample: int, repeats: int) -> None:
    from gradio_client import Client

    client = Client(url, verbose=False, download_files=False)
    retrieve = lambda direction: client.predict(checkpoint, data, direction, "indexed sample", sample, None, None, 8,
                                                api_name="/retrieve")
    report("server round trip: an event that does nothing (floor)", timed(lambda: client.predict(
        checkpoint, data, None, api_name="/retrieval_result"), repeats))
    retrieve("sound → pictures")
    report("server round trip: retrieve, sound -> 8 pictures", timed(lambda: retrieve("sound → pictures"), repeats))
    report("server round trip: retrieve, picture -> 8 sounds", timed(lambda: retrieve("picture → sounds"), repeats))
    report("server round trip: embedding sample", timed(lambda: client.predict(
        checkpoint, data, sample, "class", True, True, "(all classes)", api_name="/embedding_sample"), repeats))
    first = "non-sounding, most confident first"
    slider = client.predict(checkpoint, data, "top25", first, "(all classes)", api_name="/fp_measure")[0]
    report("server round trip: false positives at a threshold", timed(lambda: client.predict(
        checkpoint, data, "top25", first, "(all classes)", slider["value"], 0, 0, 0, api_name="/fp_analyse"),
        repeats))


def tab_switches(url: str, repeats: int) -> None:
    from playwright.sync_api import sync_playwright

    args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=args)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        start = time.perf_counter()
        page.goto(url)
        page.wait_for_selector("#model-choice")
        print(f"{'browser: page load to the model picker':48s} {time.perf_counter() - start:7.2f} s", flush=True)
        seconds: dict[str, list[float]] = {name: [] for name in TABS}
        for _ in range(repeats):
            for name, ready in TABS.items():
                start = time.perf_counter()
                page.get_by_role("tab", name=name).click()
                page.wait_for_selector(ready, state="visible")
                seconds[name].append(time.perf_counter() - start)
        for name, values in seconds.items():
            report(f"browser: switch to tab {name!r}", values)
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=ROOT / "checkpoints" / "default.safetensors")
    parser.add_argument("--data", type=Path, default=None, help="default: the embedded test split")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument("--video", type=Path, default=None, help="a clip to map in the video tab (peak memory)")
    args = parser.parse_args()
    if args.data is None:
        from avdemo.data.splits import ensure_split
        args.data = ensure_split("test")
    checkpoint, data = str(args.checkpoint.resolve()), str(args.data.resolve())
    start = time.perf_counter()
    index = ensure_index(checkpoint, data)
    print(f"{'index ready (built or loaded)':48s} {time.perf_counter() - start:7.2f} s   "
          f"({len(index)} pairs, {len(index.gallery)} sounding)", flush=True)
    in_process(checkpoint, data, args.repeats)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "gradio").mkdir()
        start = time.perf_counter()
        folder = default_cache_dir() / index_folder_name(Path(checkpoint), Path(data))
        app = start_app(AppData(Path(checkpoint), Path(data), default_cache_dir(), folder), Path(tmp) / "gradio")
        print(f"{'app start to first HTTP response':48s} {time.perf_counter() - start:7.2f} s", flush=True)
        pid = app.process.pid
        print(f"{'app memory at rest':48s} {memory_mib(pid, 'VmRSS'):7.0f} MiB", flush=True)
        try:
            from avdemo.ui.indexes import dataset_choices
            names = Path(checkpoint).name, dataset_choices(data)[0]   # the pickers' names, never server paths
            through_server(app.url, *names, int(index.gallery[0]), args.repeats)
            print(f"{'app memory after the analysis calls':48s} {memory_mib(pid, 'VmRSS'):7.0f} MiB", flush=True)
            if not args.no_browser:
                tab_switches(app.url, max(3, args.repeats // 4))
            if args.video:
                map_video(app.url, names[0], args.video.resolve(), pid)
        finally:
            stop_app(app)


if __name__ == "__main__":
    main()
