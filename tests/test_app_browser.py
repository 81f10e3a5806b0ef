"""The real app in headless Chromium, with three models picked (the test's tiny one, the shipped default and
an uploaded authors'-layout file): every tab visited, one action run in each, what appears for each model
checked; screenshots saved to test-artifacts/."""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pytest
from appdata import ROOT, app_data, start_app, stop_app, three_models
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
    models = three_models(data, tmp_path)              # their indexes ready in the app's cache
    frame, (wav, rate) = read_frame(index.image_paths[0]), read_wav(index.audio_paths[0])
    clip = write_mp4(tmp_path / "clip.mp4", [np.roll(frame, 4 * k, axis=1) for k in range(20)], fps=10,
                     audio=wav[: 2 * rate], sample_rate=rate)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(running.url)
    page.wait_for_selector("#model-choice")
    switches = {}
    count = lambda selector: page.locator(selector).count()

    # Show, don't ask: the first example clip comes already mapped by the model, without a click.
    page.wait_for_function("() => { const v = document.querySelector('#video-output-0 video');"
                           " return v && v.readyState >= 2 && v.duration > 1; }", timeout=3 * TIMEOUT_MS)
    assert "Sound heard" in page.inner_text("body")
    page.screenshot(path=str(ARTIFACTS / "tab1-example.png"), full_page=True)
    page.locator("#video-input").get_by_label("Clear").first.click()

    # Three models: the default picked beside the tiny one, an authors'-layout file uploaded (it joins them).
    page.click("#model-choice input")
    page.get_by_role("option", name="default.safetensors").click()
    page.keyboard.press("Escape")
    with page.expect_file_chooser() as chooser:
        page.click("#checkpoint-upload")
    chooser.value.set_files(str(models.authors_file))
    page.wait_for_function("() => document.querySelector('#model-choice').innerText.includes('authors_tiny.pth.tar')")
    assert [t.strip() for t in page.locator("#model-choice .token").all_inner_texts()] == \
        ["tiny.safetensors", "default.safetensors", "uploaded: authors_tiny.pth.tar"]

    # Tab 1: a video uploaded and mapped by the three models; the MP4s play in the browser, locked together.
    v = lambda n: f"document.querySelector('#video-output-{n} video')"
    example = page.evaluate(f"() => {v(0)}.src")
    page.set_input_files("#video-input input[type=file]", str(clip))
    page.get_by_role("button", name="Map the video").click()
    page.wait_for_function(f"() => {{ const v = {v(0)}; return v && v.src !== {json.dumps(example)} && v.readyState >= 2"
                           f" && v.duration > 1.5; }}", timeout=3 * TIMEOUT_MS)
    for n in (1, 2):
        page.wait_for_function(f"() => {{ const v = {v(n)}; return v && v.readyState >= 2 && v.duration > 1.5; }}")
    assert count("[id^=video-output-] video") == 3 and count("[id^=video-frame-] img") == 3
    page.wait_for_timeout(1200)                          # the page groups new players twice a second
    page.evaluate(f"() => {v(0)}.play()")
    page.wait_for_function(f"() => {v(0)}.currentTime > 0.2 && !{v(1)}.paused && !{v(2)}.paused")
    page.evaluate(f"() => {{ {v(0)}.pause(); {v(0)}.currentTime = 1.0; }}")
    page.wait_for_function(f"() => [{v(1)}, {v(2)}].every((p) => p.paused && Math.abs(p.currentTime - 1.0) < 0.1)")
    page.evaluate(f"() => {v(2)}.play()")
    page.wait_for_function(f"() => !{v(0)}.paused && !{v(1)}.paused")
    page.evaluate(f"() => {v(1)}.pause()")
    page.wait_for_function(f"() => {v(0)}.paused && {v(2)}.paused")
    page.screenshot(path=str(ARTIFACTS / "tab1-video.png"), full_page=True)

    # Tab 2: a search from an indexed sound gives K pictures with heat maps, by each model.
    switches["retrieval"] = open_tab(page, "Retrieval", "#retrieval-search")
    page.click("#retrieval-search")
    page.wait_for_function("() => [0, 1, 2].every((n) => "
                           "document.querySelectorAll(`#retrieval-gallery-${n} img`).length === 8)", timeout=3 * TIMEOUT_MS)
    assert page.inner_text("body").count("partner ranks") == 3 and not page.locator("#retrieval-gallery-3").is_visible()
    assert "authors_tiny.pth.tar" in page.inner_text("#retrieval-recall")
    page.screenshot(path=str(ARTIFACTS / "tab2-retrieval.png"), full_page=True)

    # Tab 3: the UMAPs are drawn; choosing a sample shows each model's card and neighbours, starred.
    switches["embedding"] = open_tab(page, "Embedding space", "#embedding-plot-0 .js-plotly-plot")
    for n in range(3):
        page.wait_for_selector(f"#embedding-plot-{n} .js-plotly-plot")
        assert page.locator(f"#embedding-plot-{n} .scatterlayer .point").count() >= 16 + 32
    page.click("#embedding-sample input")
    page.keyboard.type("#4 ")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    for n in range(3):
        page.locator(f"#embedding-card-{n}").scroll_into_view_if_needed()      # lazy pictures load when seen
        page.wait_for_selector(f"#embedding-card-{n} img")
        page.wait_for_function(f"() => document.querySelectorAll('#embedding-image-neighbours-{n} img').length === 8")
    page.screenshot(path=str(ARTIFACTS / "tab3-embedding.png"), full_page=True)

    # Tab 4: each model's distributions and worst-first gallery; a click on one shows its card.
    switches["false positives"] = open_tab(page, "False positives", "#fp-plot-0 .js-plotly-plot")
    for n in range(3):
        page.wait_for_selector(f"#fp-plot-{n} .js-plotly-plot")
        assert "AP " in page.inner_text(f"#fp-stats-{n}") and "false-positive rate" in page.inner_text(f"#fp-stats-{n}")
    assert all(name in page.inner_text("#fp-rates") for name in ("tiny.safetensors", "default.safetensors",
                                                                 "authors_tiny.pth.tar"))
    page.locator("#fp-gallery-2 button.thumbnail-item").first.click()
    page.wait_for_selector("#fp-card img")
    page.screenshot(path=str(ARTIFACTS / "tab4-false-positives.png"), full_page=True)

    # Tab 5: the per-class table (a column per model) and bars, a which-side grid per model.
    switches["per class"] = open_tab(page, "Per class", "#class-plot .js-plotly-plot")
    page.wait_for_function("() => document.querySelector('#class-table').innerText.includes('authors_tiny.pth.tar')")
    assert page.locator("#class-plot .bars path").count() >= 6
    for n in range(3):
        page.wait_for_selector(f"#class-sides-{n} .js-plotly-plot .heatmaplayer")
    page.screenshot(path=str(ARTIFACTS / "tab5-per-class.png"), full_page=True)

    # A class clicked in Per class filters the other tabs' lists until cleared.
    picked = page.locator("#class-table .body-cell.first-column").first          # the worst class's name
    name = picked.inner_text().strip()
    picked.click()
    page.wait_for_function(f"() => document.querySelector('#class-filter input').value === {json.dumps(name)}")
    open_tab(page, "False positives", "#fp-plot-0 .js-plotly-plot")
    page.get_by_label("sounding, lowest cIoU first").check()
    expected = int(((index.class_names == name) & index.sounding).sum())
    only = f"{expected} listed of {name} only"           # the class's sounding pairs, and nothing else
    try:
        page.wait_for_function("() => [0, 1, 2].every((n) => document.querySelector(`#fp-stats-${n}`).innerText"
                               f".includes({json.dumps(only)}))")
    finally:
        page.screenshot(path=str(ARTIFACTS / "class-filter.png"), full_page=True)
    assert expected >= 1 and name in page.inner_text("#fp-table")
    page.click("#class-filter input")
    page.locator("#class-filter").page.get_by_role("option", name="(all classes)").click()
    page.wait_for_function("() => !document.querySelector('#fp-stats-0').innerText.includes(' only (')")

    # Tab 6: the three models' numbers, and the disagreements of two of them, each with both maps.
    switches["compare"] = open_tab(page, "Compare models", "#compare-run")
    page.wait_for_function("() => document.querySelector('#compare-numbers').innerText.includes('authors_tiny.pth.tar')")
    page.click("#compare-run")
    page.wait_for_selector("#compare-gallery img")
    page.locator("#compare-gallery button.thumbnail-item").first.click()
    page.wait_for_selector("#compare-card-a img")
    page.wait_for_selector("#compare-card-b img")
    page.screenshot(path=str(ARTIFACTS / "tab6-compare.png"), full_page=True)

    # Back to earlier tabs: what they showed is still there (the mapped videos, the 8 results each).
    switches["video"] = open_tab(page, "Heat map on a video", "#video-output-2 video")
    assert page.evaluate(f"() => {v(2)}.duration") > 1.5
    switches["retrieval again"] = open_tab(page, "Retrieval", "#retrieval-gallery-2 img")
    assert page.locator("#retrieval-gallery-1 img").count() == 8
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
        page.wait_for_selector(".index-status:visible, #embedding-plot-0 .js-plotly-plot")   # the first status tick
        page.screenshot(path=str(ARTIFACTS / "page-first-preparing.png"), full_page=True)
        page.wait_for_selector("#embedding-plot-0 .js-plotly-plot", timeout=5 * TIMEOUT_MS)   # filled, no reload
        filled = time.perf_counter() - started
        assert page.locator("#embedding-plot-0 .scatterlayer .point").count() >= 16 + 32
        assert page.locator(".index-status:visible").filter(has_text="Preparing").count() == 0
        page.get_by_role("tab", name="Retrieval").click()
        page.click("#retrieval-search")
        page.wait_for_function("() => document.querySelectorAll('#retrieval-gallery-0 img').length === 8")
        page.screenshot(path=str(ARTIFACTS / "page-first-filled.png"), full_page=True)
    finally:
        stop_app(running)
    (ARTIFACTS / "page-first-seconds.json").write_text(json.dumps(
        {"page_answered_s": round(answered, 1), "tabs_filled_s": round(filled, 1)}))

