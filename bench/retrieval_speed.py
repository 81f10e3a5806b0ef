"""Retrieval through the app's API (``/retrieve`` with gradio_client): round trips of one client, then of
several clients at once, against an app started on the default checkpoint and the embedded test split.

    python -m bench.retrieval_speed [--checkpoint PATH] [--data SPLIT_DIR] [--repeats 20] [--clients 8]
                                    [--per-client 5] [--settle 60]

After a first search, the run waits ``--settle`` seconds (the app encodes the gallery's features in the
background after its first search). One client: the same indexed sound asked again and again, then
``--repeats`` different sounds and pictures (none asked before in this app, so nothing of the query is cached).
Several clients: each asks ``--per-client`` different queries, all at once. Each line: median, p90 and max.
The index is built first when missing (not timed).
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")     # as app.py, before torch loads

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from appdata import AppData, start_app, stop_app  # noqa: E402

from avdemo.index import default_cache_dir, ensure_index, index_folder_name  # noqa: E402

SEARCH_DIRECTIONS = ("sound → pictures", "picture → sounds")


def report(name: str, seconds: list[float]) -> None:
    ms = sorted(1000 * s for s in seconds)
    print(f"{name:52s} median {statistics.median(ms):7.1f} ms   p90 {ms[int(0.9 * (len(ms) - 1))]:7.1f} ms   "
          f"max {ms[-1]:7.1f} ms   (n={len(ms)})", flush=True)


def retrieve(client, model: str, dataset: str, direction: str, sample: int, k: int = 8) -> float:
    start = time.perf_counter()
    client.predict(model, dataset, direction, "indexed sample", sample, None, None, k, api_name="/retrieve")
    return time.perf_counter() - start


def pickers(url: str) -> tuple[str, str]:
    """The model and dataset the app's pickers show first (the API takes names, not paths)."""
    from gradio_client import Client

    components = Client(url, verbose=False, download_files=False).config["components"]
    value = {c["props"].get("elem_id"): c["props"].get("value") for c in components}
    return value["model-choice"], value["dataset-choice"]


def one_client(url: str, model: str, dataset: str, samples: list[int], repeats: int, settle: float) -> None:
    from gradio_client import Client

    client = Client(url, verbose=False, download_files=False)
    retrieve(client, model, dataset, SEARCH_DIRECTIONS[0], samples[0])          # the first search ever
    time.sleep(settle)
    floor = []
    for _ in range(repeats):
        start = time.perf_counter()
        client.predict(model, dataset, None, None, api_name="/retrieval_result")   # answers without work
        floor.append(time.perf_counter() - start)
    report("1 client: an event that does nothing (the floor)", floor)
    report("1 client: the same sound again -> 8 pictures",
           [retrieve(client, model, dataset, SEARCH_DIRECTIONS[0], samples[0]) for _ in range(repeats)])
    for d, direction in enumerate(SEARCH_DIRECTIONS):
        fresh = samples[1 + d * repeats:1 + (d + 1) * repeats]
        report(f"1 client: {repeats} new queries, {direction.replace('→', '->')}",
               [retrieve(client, model, dataset, direction, s) for s in fresh])


def many_clients(url: str, model: str, dataset: str, samples: list[int], clients: int, per_client: int) -> None:
    """``clients`` threads, each with its own client, each asking ``per_client`` new queries (directions
    alternating), started together."""
    from gradio_client import Client

    connected = [Client(url, verbose=False, download_files=False) for _ in range(clients)]
    seconds: list[float] = []
    start = threading.Barrier(clients)

    def run(c: int) -> None:
        start.wait()
        for j in range(per_client):
            sample = samples[c * per_client + j]
            seconds.append(retrieve(connected[c], model, dataset, SEARCH_DIRECTIONS[j % 2], sample))

    threads = [threading.Thread(target=run, args=(c,)) for c in range(clients)]
    wall = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report(f"{clients} clients x {per_client} new queries at once", seconds)
    print(f"{'  (all done after':52s} {time.perf_counter() - wall:7.2f} s)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=ROOT / "checkpoints" / "default.safetensors")
    parser.add_argument("--data", type=Path, default=None, help="default: the embedded test split")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--per-client", type=int, default=5)
    parser.add_argument("--settle", type=float, default=60.0, help="seconds to wait after the first search")
    args = parser.parse_args()
    if args.data is None:
        from avdemo.data.splits import ensure_split
        args.data = ensure_split("test")
    checkpoint, data = str(args.checkpoint.resolve()), str(args.data.resolve())
    index = ensure_index(checkpoint, data)
    gallery = [int(i) for i in index.gallery]
    needed = 1 + 2 * args.repeats + args.clients * args.per_client
    if len(gallery) < needed:
        raise SystemExit(f"{len(gallery)} sounding pairs; this run asks {needed} different queries")
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "gradio").mkdir()
        folder = default_cache_dir() / index_folder_name(Path(checkpoint), Path(data))
        app = start_app(AppData(Path(checkpoint), Path(data), default_cache_dir(), folder), Path(tmp) / "gradio")
        try:
            model, dataset = pickers(app.url)
            one_client(app.url, model, dataset, gallery[:1 + 2 * args.repeats], args.repeats, args.settle)
            many_clients(app.url, model, dataset, gallery[1 + 2 * args.repeats:], args.clients, args.per_client)
        finally:
            stop_app(app)


if __name__ == "__main__":
    main()
