"""A public Space under a load of visitors who upload checkpoints: disk, the index-build queue and memory.
Runs the app of any checkout (``--app-root``), so the same load measures the code before and after a change.

    python -m bench.space_load [--app-root DIR] [--index-base DIR] [--env NAME=VALUE ...] [--json OUT]

The load, through the app's API as the page sends it (each visitor its own gradio_client session; every
uploaded model is the default model's weights with a card of its own, so a distinct upload):
1. queue: visitor A uploads three models, asking for each one's index on the embedded val split (1,000
   pairs) as it comes (``/index_status``, as the page's status timer does), then visitor B uploads one and
   asks for its index.
   Figures: seconds from B's request until its index is ready, and until all four are.
2. memory: those four models map ``examples/pair.mp4`` at once (``/localize_video``, one new visitor each,
   who uploads the same files first).
   Figures: the app's peak RSS (VmHWM) and its RSS afterwards.
3. disk: 12 more visitors upload a model each. Figures: the sizes of the uploads and index folders.

``--index-base``: an index folder holding the default model's index of the embedded test split (``python -m
avdemo.index build --checkpoint checkpoints/default.safetensors --root data_cache/embedded/val --out DIR``),
copied for the run so that the app starts ready, as a Space that has run before does.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from appdata import free_port, interrupt  # noqa: E402
from bench.app_latency import memory_mib  # noqa: E402

CHECKPOINT = ROOT / "checkpoints" / "default.safetensors"
SPLIT = ROOT / "data_cache" / "embedded" / "val"
CLIP = ROOT / "examples" / "pair.mp4"


def start(app_root: Path, work: Path, env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "AVDEMO_CACHE": str(work / "cache"), "AVDEMO_INDEX_DIR": str(work / "index"),
           "GRADIO_TEMP_DIR": str(work / "gradio"), "GRADIO_ANALYTICS_ENABLED": "False", **env}
    process = subprocess.Popen([sys.executable, str(app_root / "app.py"), "--checkpoint",
                                str(app_root / "checkpoints" / CHECKPOINT.name), "--data",
                                str(SPLIT), "--port", str(port)], cwd=app_root, env=env,
                               stdout=open(work / "app.log", "w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    for _ in range(600):
        try:
            urllib.request.urlopen(url, timeout=2)
            return process, url
        except OSError:
            if process.poll() is not None:
                raise RuntimeError((work / "app.log").read_text()[-3000:])
            time.sleep(0.5)
    raise RuntimeError("the app did not answer in 5 minutes")


def visitor(url: str):
    from gradio_client import Client

    return Client(url, verbose=False, download_files=False)


def upload(client, work: Path, note: str) -> str:
    from gradio_client import handle_file

    folder = work / "models" / note
    if not folder.is_dir():
        folder.mkdir(parents=True)
        (folder / CHECKPOINT.name).symlink_to(CHECKPOINT)
        card = json.loads(CHECKPOINT.with_suffix(".json").read_text())
        (folder / "default.json").write_text(json.dumps({**card, "notes": note}))
    out = client.predict([handle_file(str(folder / CHECKPOINT.name)), handle_file(str(folder / "default.json"))],
                         api_name="/upload_checkpoint")
    value = (out[0] if isinstance(out, tuple) else out)["value"]    # before: (models, model B); now: the models
    return value[-1] if isinstance(value, list) else value          # now: the upload joins the picked models


def index_ready(client, choice: str, dataset: str) -> bool:
    """Ask as the page's timer does (which queues the index); whether it is ready (the status lines hidden)."""
    line = client.predict(choice, dataset, api_name="/index_status")[0]
    text = str(line.get("value", "")) if isinstance(line, dict) else str(line or "")
    if text.startswith("⚠️"):
        raise RuntimeError(f"{choice}: {text}")
    return not text.startswith("⏳")


def wait_idle(pid: int, cpu_s: float = 0.3, every_s: float = 3.0) -> None:
    """Until the process uses less than ``cpu_s`` of CPU in ``every_s`` (the start's background jobs done)."""
    last = cpu_seconds(pid)
    while True:
        time.sleep(every_s)
        now = cpu_seconds(pid)
        if now - last < cpu_s:
            return
        last = now


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def folder_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20 if folder.exists() else 0.0


def run(app_root: Path, index_base: Path | None, env: dict[str, str]) -> dict:
    work = Path(tempfile.mkdtemp(prefix="space-load-"))
    if index_base:
        shutil.copytree(index_base, work / "index")
    process, url = start(app_root, work, env)
    try:
        first = visitor(url)
        api = first.view_api(return_format="dict", print_info=False)["named_endpoints"]["/index_status"]
        default, dataset = [p["parameter_default"] for p in api["parameters"]][:2]
        while not index_ready(first, default, dataset):
            time.sleep(1)
        wait_idle(process.pid)                           # the start's example clip mapped
        out: dict = {"app_root": str(app_root), "env": env, "rss_at_rest_mib": round(memory_mib(process.pid, "VmRSS"))}

        a, b = visitor(url), visitor(url)
        asked = time.perf_counter()
        for k in range(3):                      # a session lists its latest upload: each asked for at once
            index_ready(a, upload(a, work, f"a{k}"), dataset)
        b_model = upload(b, work, "b")
        b_asked = time.perf_counter()
        while not index_ready(b, b_model, dataset):
            time.sleep(1)
        out["queue_b_index_ready_s"] = round(time.perf_counter() - b_asked, 1)
        while len(list((work / "index").glob("*/index.json"))) < 5:       # the default's and the four
            time.sleep(1)
        out["queue_all_four_ready_s"] = round(time.perf_counter() - asked, 1)

        seconds: dict[str, float] = {}

        def map_video(note: str) -> None:
            from gradio_client import handle_file

            client = visitor(url)
            choice = upload(client, work, note)          # the same files again: already kept
            start_s = time.perf_counter()
            client.predict(choice, handle_file(str(CLIP)), "clip", "jet", 0.5, 0.0, 1, "original", None, None,
                           api_name="/localize_video")
            seconds[note] = round(time.perf_counter() - start_s, 1)

        threads = [threading.Thread(target=map_video, args=(note,)) for note in ("a0", "a1", "a2", "b")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        out["video_s"] = sorted(seconds.values())
        out["peak_rss_mib"] = round(memory_mib(process.pid, "VmHWM"))
        out["rss_after_mib"] = round(memory_mib(process.pid, "VmRSS"))

        for k in range(12):
            upload(visitor(url), work, f"c{k}")
        out["uploads_mb"] = round(folder_mb(work / "cache" / "uploads"), 1)
        out["index_mb"] = round(folder_mb(work / "index"), 1)
        out["upload_count"] = sum(1 for p in (work / "cache" / "uploads").iterdir() if p.is_dir()
                                  and not p.name.startswith("."))
        return out
    finally:
        interrupt(process)
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--app-root", type=Path, default=ROOT, help="the checkout whose app.py runs (default: this)")
    parser.add_argument("--index-base", type=Path, default=None)
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the app's environment")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    out = run(args.app_root.resolve(), args.index_base, dict(item.split("=", 1) for item in args.env))
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
