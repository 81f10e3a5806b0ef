"""How soon ``python app.py`` answers: on a fresh cache (nothing generated, nothing indexed) and on the
cache that first start left (cached start), optionally with another job busy on one core; and how long the
index tabs take to fill after a fresh start (the background preparation: split, index, example clip).

    python -m bench.startup [--load] [--cache DIR] [--json OUT]

Figures: seconds from the process start to the first HTTP 200 of the page, and to the default index being
ready (``/index_status`` sets the tabs' key). ``--load`` runs a busy loop on one core meanwhile.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from appdata import free_port  # noqa: E402

BUSY_LOOP = "while True: pass"


def start(cache: Path, log: Path) -> tuple[subprocess.Popen, str, float]:
    """``python app.py`` over ``cache``; (process, URL, seconds until the page answered)."""
    port = free_port()
    env = {**os.environ, "AVDEMO_CACHE": str(cache), "GRADIO_ANALYTICS_ENABLED": "False",
           "GRADIO_TEMP_DIR": str(cache / "gradio")}
    env.pop("AVDEMO_INDEX_DIR", None)
    started = time.perf_counter()
    with open(log, "w") as out:
        process = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--port", str(port)], cwd=ROOT, env=env,
                                   stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    while True:
        if process.poll() is not None:
            raise RuntimeError("the app exited: " + log.read_text()[-2000:])
        try:
            with urllib.request.urlopen(url, timeout=2):
                return process, url, time.perf_counter() - started
        except OSError:
            time.sleep(0.1)


def seconds_until_ready(url: str, started: float, timeout_s: float = 1800) -> float:
    """Seconds from ``started`` until the page's index status says the picked pair is ready (its status
    lines are emptied)."""
    from gradio_client import Client

    client = Client(url, verbose=False, download_files=False)
    api = client.view_api(return_format="dict", print_info=False)["named_endpoints"]["/index_status"]
    args = [p.get("parameter_default") for p in api["parameters"]]
    while time.perf_counter() - started < timeout_s:
        line, *_ = client.predict(*args, api_name="/index_status")
        if not line.get("value"):
            return time.perf_counter() - started
        time.sleep(1)
    raise TimeoutError("the index was not ready in time")


def stop(process: subprocess.Popen) -> None:
    process.send_signal(2)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--load", action="store_true", help="a busy loop on one core meanwhile")
    parser.add_argument("--cache", type=Path, default=None, help="reuse this cache (default: a fresh one)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    busy = subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) if args.load else None
    figures: dict[str, float] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            cache = args.cache or Path(tmp) / "cache"
            cache.mkdir(parents=True, exist_ok=True)
            for run in ("fresh", "cached"):          # the second start finds what the first one left
                started = time.perf_counter()
                process, url, figures[f"{run}_page_s"] = start(cache, Path(tmp) / f"{run}.log")
                try:
                    figures[f"{run}_index_ready_s"] = seconds_until_ready(url, started)
                finally:
                    stop(process)
    finally:
        if busy is not None:
            busy.kill()
    figures = {k: round(v, 1) for k, v in figures.items()}
    print(json.dumps({"load": args.load, **figures}, indent=1))
    if args.json:
        args.json.write_text(json.dumps({"load": args.load, **figures}, indent=1))


if __name__ == "__main__":
    main()
