"""The real app in headless Chromium, with a second model (model B) picked: every tab visited, one action
run in each, what appears for both models checked; screenshots saved to test-artifacts/."""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pytest
from appdata import ROOT, app_data, start_app, stop_app
from gradio_client import Client

from avdemo.benchmarks import read_frame, read_wav
from avdemo.index import load_index
from avdemo.media import write_mp4

pytestmark = pytest.mark.browser
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--autoplay-policy=no-user-gesture-required"]
ARTIFACTS = ROOT / "test-artifacts"
TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def browser():
    playwright = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def app(tmp_path_factory, tiny_config):
    data = app_data(tmp_path_factory.mktemp("appdata"), tiny_config)
    running = start_app(data, tmp_path_factory.mktemp("gradio-temp"))
    yield running, data
    stop_app(running)


def open_tab(page, name: str, ready: str) -> float:
    """Click a tab; seconds until ``ready`` (a selector in it) is visible (recorded, not asserted: how fast
    depends on the machine and its load)."""
    start = time.perf_counter()
    page.get_by_role("tab", name=name).click()
    page.wait_for_selector(ready, state="visible", timeout=TIMEOUT_MS)
    return time.perf_counter() - start


def test_every_tab_runs_its_action_in_chromium(browser, app, tmp_path):
    running, data = app
    ARTIFACTS.mkdir(exist_ok=True)
    index = load_index(data.index)
    frame, (wav, rate) = read_frame(index.image_paths[0]), read_wav(index.audio_paths[0])
    clip = write_mp4(tmp_path / "clip.mp4", [np.roll(frame, 4 * k, axis=1) for k in range(20)], fps=10,
                     audio=wav[: 2 * rate], sample_rate=rate)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(running.url)
    page.wait_for_selector("#model-choice")
    switches = {}

    # Show, don't ask: the first example clip comes already mapped by the model, without a click.
    page.wait_for_function("() => { const v = document.querySelector('#video-output video');"
                           " return v && v.readyState >= 2 && v.duration > 1; }", timeout=3 * TIMEOUT_MS)
    assert "Sound heard" in page.inner_text("body")
    page.screenshot(path=str(ARTIFACTS / "tab1-example.png"), full_page=True)
    page.locator("#video-input").get_by_label("Clear").first.click()

    # Model B picked first: every tab then shows both models (its index is built on first use).
    page.click("#model-b-choice input")
    page.locator("#model-b-choice").get_by_text("default.safetensors").first.click()
    page.wait_for_function("() => document.querySelector('#model-b-choice input').value === 'default.safetensors'")

    # Tab 1: a video uploaded and mapped by both models; the MP4s play in the browser, locked together.
    a, b = "document.querySelector('#video-output video')", "document.querySelector('#video-output-b video')"
    example = page.evaluate(f"() => {a}.src")
    page.set_input_files("#video-input input[type=file]", str(clip))
    page.get_by_role("button", name="Map the video").click()
    page.wait_for_function(f"() => {{ const v = {a}; return v && v.src !== {json.dumps(example)} && v.readyState >= 2"
                           f" && v.duration > 1.5; }}", timeout=TIMEOUT_MS)
    page.wait_for_function(f"() => {{ const v = {b}; return v && v.readyState >= 2 && v.duration > 1.5; }}",
                           timeout=3 * TIMEOUT_MS)
    page.wait_for_function(f"() => {a}.avdemoPartner === {b}")          # the page pairs new players twice a second
    page.evaluate(f"() => {a}.play()")
    page.wait_for_function(f"() => {a}.currentTime > 0.2 && !{b}.paused")
    page.evaluate(f"() => {{ {a}.pause(); {a}.currentTime = 1.0; }}")
    page.wait_for_function(f"() => {b}.paused && Math.abs({b}.currentTime - 1.0) < 0.1")
    page.evaluate(f"() => {b}.play()")
    page.wait_for_function(f"() => !{a}.paused")
    page.evaluate(f"() => {a}.pause()")
    page.wait_for_function(f"() => {b}.paused")
    page.screenshot(path=str(ARTIFACTS / "tab1-video.png"), full_page=True)

    # Tab 2: a search from an indexed sound gives K pictures with heat maps.
    switches["retrieval"] = open_tab(page, "Retrieval", "#retrieval-search")
    page.click("#retrieval-search")
    page.wait_for_function("() => document.querySelectorAll('#retrieval-gallery img').length === 8")
    page.wait_for_function("() => document.querySelectorAll('#retrieval-b-gallery img').length === 8",
                           timeout=3 * TIMEOUT_MS)
    assert "partner ranks" in page.inner_text("body") and "Model B" in page.inner_text("#retrieval-b-info")
    page.screenshot(path=str(ARTIFACTS / "tab2-retrieval.png"), full_page=True)

    # Tab 3: the UMAP is drawn; choosing a sample shows its card and its neighbours, starred in the plot.
    switches["embedding"] = open_tab(page, "Embedding space", "#embedding-plot .js-plotly-plot")
    assert page.locator("#embedding-plot .scatterlayer .point").count() >= 16 + 32
    page.click("#embedding-sample input")
    page.keyboard.type("#4 ")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    page.wait_for_selector("#embedding-card img")
    page.wait_for_function("() => document.querySelectorAll('#embedding-image-neighbours img').length === 8")
    page.wait_for_selector("#embedding-plot-b .js-plotly-plot")
    page.screenshot(path=str(ARTIFACTS / "tab3-embedding.png"), full_page=True)

    # Tab 4: the distributions and the worst-first gallery; a click on the worst sample shows its card.
    switches["false positives"] = open_tab(page, "False positives", "#fp-plot .js-plotly-plot")
    assert "AP " in page.inner_text("#fp-stats") and "false-positive rate" in page.inner_text("#fp-stats")
    page.wait_for_function("() => document.querySelector('#fp-stats').innerText.includes('Model B')")
    page.locator("#fp-gallery button.thumbnail-item").first.click()
    page.wait_for_selector("#fp-card img")
    page.screenshot(path=str(ARTIFACTS / "tab4-false-positives.png"), full_page=True)

    # Tab 5: the per-class table and bars.
    switches["per class"] = open_tab(page, "Per class", "#class-plot .js-plotly-plot")
    page.wait_for_function("() => document.querySelector('#class-table').innerText.includes('B cIoU@0.5')")
    assert page.locator("#class-plot .bars path").count() >= 4
    assert page.locator("#class-sides .js-plotly-plot .heatmaplayer").count() == 1
    page.screenshot(path=str(ARTIFACTS / "tab5-per-class.png"), full_page=True)

    # A class clicked in Per class filters the other tabs' lists until cleared.
    picked = page.locator("#class-table .body-cell.first-column").first          # the worst class's name
    name = picked.inner_text().strip()
    picked.click()
    page.wait_for_function(f"() => document.querySelector('#class-filter input').value === {json.dumps(name)}")
    open_tab(page, "False positives", "#fp-plot .js-plotly-plot")
    page.get_by_label("sounding, lowest cIoU first").check()
    expected = int(((index.class_names == name) & index.sounding).sum())
    only = f"{name} only ({expected} samples"           # the class's sounding pairs, and nothing else
    try:
        page.wait_for_function(f"() => document.querySelector('#fp-stats').innerText.includes({json.dumps(only)})")
    finally:
        page.screenshot(path=str(ARTIFACTS / "class-filter.png"), full_page=True)
        print("FP stats:", page.inner_text("#fp-stats"))
    assert expected >= 1 and name in page.inner_text("#fp-table")
    page.screenshot(path=str(ARTIFACTS / "class-filter.png"), full_page=True)
    page.click("#class-filter input")
    page.locator("#class-filter").page.get_by_role("option", name="(all classes)").click()
    page.wait_for_function("() => !document.querySelector('#fp-stats').innerText.includes(' only (')")

    # Tab 6: both models' numbers and the disagreements, each with both maps.
    switches["compare"] = open_tab(page, "Compare two models", "#compare-run")
    page.click("#compare-run")
    page.wait_for_function("() => document.querySelector('#compare-numbers').innerText.includes('cIoU@0.5')",
                           timeout=3 * TIMEOUT_MS)       # the first comparison indexes the split under model B
    page.wait_for_selector("#compare-gallery img")
    page.locator("#compare-gallery button.thumbnail-item").first.click()
    page.wait_for_selector("#compare-card-a img")
    page.wait_for_selector("#compare-card-b img")
    page.screenshot(path=str(ARTIFACTS / "tab6-compare.png"), full_page=True)

    # Back to earlier tabs: what they showed is still there (the mapped video, the 8 results).
    switches["video"] = open_tab(page, "Heat map on a video", "#video-output video")
    assert page.evaluate("() => document.querySelector('#video-output video').duration") > 1.5
    switches["retrieval again"] = open_tab(page, "Retrieval", "#retrieval-gallery img")
    assert page.locator("#retrieval-gallery img").count() == 8 and "partner ranks" in page.inner_text("body")
    timings = "".join(f"{k}: {v:.3f}\n" for k, v in switches.items())
    (ARTIFACTS / "tab-switch-seconds.txt").write_text(timings)
    print("seconds until a tab's content shows:\n" + timings)


def test_the_page_answers_first_and_the_tabs_fill_in_when_the_index_is_ready(browser, tmp_path_factory, tiny_config):
    """A fresh index folder: the page answers while the index is built; the tabs that need it say what is
    being prepared and fill themselves, without a reload."""
    data = app_data(tmp_path_factory.mktemp("appdata"), tiny_config)
    fresh = dataclasses.replace(data, index_dir=tmp_path_factory.mktemp("fresh-index"))
    started = time.perf_counter()
    running = start_app(fresh, tmp_path_factory.mktemp("gradio-temp"))
    answered = time.perf_counter() - started
    try:
        client = Client(running.url, verbose=False, download_files=False)      # the page answered: is it ready?
        api = client.view_api(return_format="dict", print_info=False)["named_endpoints"]["/index_status"]
        line, *_ = client.predict(*[p["parameter_default"] for p in api["parameters"]], api_name="/index_status")
        assert "Preparing" in line["value"] and "tiny.safetensors" in line["value"], line
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(running.url)
        page.get_by_role("tab", name="Embedding space").click()
        page.wait_for_selector(".index-status:visible, #embedding-plot .js-plotly-plot")   # the first status tick
        page.screenshot(path=str(ARTIFACTS / "page-first-preparing.png"), full_page=True)
        page.wait_for_selector("#embedding-plot .js-plotly-plot", timeout=5 * TIMEOUT_MS)   # filled, no reload
        filled = time.perf_counter() - started
        assert page.locator("#embedding-plot .scatterlayer .point").count() >= 16 + 32
        assert page.locator(".index-status:visible").filter(has_text="Preparing").count() == 0
        page.get_by_role("tab", name="Retrieval").click()
        page.click("#retrieval-search")
        page.wait_for_function("() => document.querySelectorAll('#retrieval-gallery img').length === 8")
        page.screenshot(path=str(ARTIFACTS / "page-first-filled.png"), full_page=True)
    finally:
        stop_app(running)
    (ARTIFACTS / "page-first-seconds.json").write_text(json.dumps(
        {"page_answered_s": round(answered, 1), "tabs_filled_s": round(filled, 1)}))

