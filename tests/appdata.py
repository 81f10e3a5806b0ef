"""A tiny checkpoint, a small embedded test split and their index, built once per test session (the UMAP
fit compiles for about 30 s the first time) and shared by the index, retrieval and app tests."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import torch

from avdemo.checkpoints import save_model
from avdemo.config import AudioConfig, ModelConfig
from avdemo.data.splits import build_split
from avdemo.index import index_folder_name, main as index_main
from avdemo.model import AVLocalizer

ROOT = Path(__file__).resolve().parents[1]
SCENES = 16           # sounding pairs; the split adds one non-sounding pair per scene
# conftest.py's ``tiny_config`` as a value, for fixtures wider than a test (a module- or session-scoped
# fixture cannot use that function-scoped one); ``app_data`` refuses a different config in one session.
TINY_CONFIG = ModelConfig(image_size=64, audio=AudioConfig(sample_rate=8000, window_s=0.5, nperseg=128,
                                                           noverlap=48, downmix="mean"))


@dataclass(frozen=True)
class AppData:
    checkpoint: Path      # tiny model, .safetensors + .json card
    split: Path           # embedded test split: SCENES sounding + SCENES non-sounding pairs
    index_dir: Path       # the index cache ($AVDEMO_INDEX_DIR), holding the built index
    index: Path           # the built index folder


_BUILT: dict = {}    # "data": AppData, "config": its ModelConfig


def app_data(base: Path, cfg: ModelConfig = TINY_CONFIG) -> AppData:
    """Build (once per session) the checkpoint, the split and the index with ``python -m avdemo.index``;
    ``base`` is used by the first call only."""
    if "data" in _BUILT and _BUILT["config"] != cfg:
        raise ValueError(f"the test data of this session were built for {_BUILT['config']}, not {cfg}")
    if "data" not in _BUILT:
        torch.manual_seed(0)
        checkpoint = save_model(AVLocalizer(cfg).eval(), base / "tiny.safetensors", card={"notes": "tiny test model"})
        split = build_split("test", SCENES, out=base / "data", workers=1, progress=False)
        index_dir = base / "index"
        assert index_main(["build", "--checkpoint", str(checkpoint), "--root", str(split), "--out", str(index_dir),
                           "--batch-size", "8"]) == 0
        _BUILT["data"] = AppData(checkpoint, split, index_dir, index_dir / index_folder_name(checkpoint, split))
        _BUILT["config"] = cfg
    return _BUILT["data"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RunningApp:
    url: str
    process: subprocess.Popen
    temp_dir: Path        # GRADIO_TEMP_DIR of the app
    log: Path             # its output
    startup_files: set[Path]  # files in temp_dir once it answers: the initial values of the page

    @property
    def cache_dir(self) -> Path:
        """AVDEMO_CACHE of the app."""
        return self.temp_dir.parent / "cache"


def start_app(data: AppData, temp_dir: Path, timeout_s: float = 180.0, env: dict[str, str] | None = None,
              index_dir: Path | None = None) -> RunningApp:
    """``python app.py`` on a free port over the test checkpoint and split (``env`` added to its environment,
    its index cache ``index_dir`` or the test data's); returns once it answers."""
    port = free_port()
    env = {**os.environ, "AVDEMO_INDEX_DIR": str(index_dir or data.index_dir), "GRADIO_TEMP_DIR": str(temp_dir),
           "AVDEMO_CACHE": str(temp_dir.parent / "cache"),  # = RunningApp.cache_dir
           "GRADIO_ANALYTICS_ENABLED": "False", "OMP_NUM_THREADS": "2", "PYTHONUNBUFFERED": "1", **(env or {})}
    log = temp_dir.parent / f"app-{port}.log"
    with open(log, "w") as out:
        process = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--checkpoint", str(data.checkpoint),
                                    "--data", str(data.split), "--port", str(port)], cwd=ROOT, env=env,
                                   stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the app exited with {process.returncode}: " + log.read_text()[-3000:])
        try:
            with urllib.request.urlopen(url, timeout=2):
                return RunningApp(url, process, temp_dir, log, files_in(temp_dir))
        except OSError:
            time.sleep(0.5)
    process.kill()
    raise RuntimeError("the app did not answer in time: " + log.read_text()[-3000:])


def files_in(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()}


def interrupt(process: subprocess.Popen, timeout_s: float = 30) -> int:
    """Stop an app process as Ctrl-C does (so that it cleans its temporary files), killed if it has not
    stopped after ``timeout_s``; returns its exit code."""
    process.send_signal(2)
    try:
        return process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def stop_app(app: RunningApp) -> int:
    """Stop the app as Ctrl-C does; returns its exit code."""
    return interrupt(app.process)


@dataclass(frozen=True)
class ThreeModels:
    """Three models to pick side by side: the test's tiny one, the shipped default, and a file in the
    authors' released layout (a random reference model, uploaded by each test that picks it); each one's
    index of the test split, in that order."""

    authors_file: Path
    indexes: list


def three_models(data: AppData, base: Path) -> ThreeModels:
    """The authors'-layout file written and the three indexes built (into the app's index cache, so that
    the app finds them ready)."""
    from test_checkpoints import RefModel, released_checkpoint

    from avdemo.index import ensure_index

    torch.manual_seed(1)
    authors = base / "authors_tiny.pth.tar"
    released_checkpoint(RefModel().eval(), authors)
    files = [data.checkpoint, ROOT / "checkpoints" / "default.safetensors", authors]
    return ThreeModels(authors, [ensure_index(f, data.split, cache_dir=data.index_dir, progress=False) for f in files])
