"""The Live tab in headless Chromium with fake camera and microphone: a staged clip (the lion on one side,
a silent snail on the other, tests/livemedia.py) with the lion's roar; after warm-up the default model's
peak must sit on the lion's side in at least 80% of the maps shown, and again with the sides swapped.
Maps per second and capture-to-display latency go to test-artifacts/ (not asserted), with a screenshot."""
from __future__ import annotations

import dataclasses
import json
import time

import numpy as np
import pytest
from appdata import ROOT, app_data, start_app, stop_app
from livemedia import Stage, recording, staged_frame, write_wav, write_y4m
from test_app_browser import ARGS, ARTIFACTS, CHROMIUM, TIMEOUT_MS

pytestmark = pytest.mark.browser
playwright = pytest.importorskip("playwright.sync_api")
FAKE_MEDIA = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
              "--autoplay-policy=no-user-gesture-required"]
WARM_UP_S = 3.0       # maps before this (the first ones may hear silence) are not scored
MEASURE_S = 8.0
POLL_MS = 250         # wait_for_function polls on a timer (its default, requestAnimationFrame, can stall here)
# In about one start in four here, the microphone component shows "Stop" but never sends a chunk (no
# upload, no stream request: Gradio's recorder with Chromium's fake device); recording again starts it.
MIC_STARTS, MIC_WAIT_MS = 3, 10_000


@pytest.fixture(scope="module")
def live_app(tmp_path_factory):
    """The app over the default model (and the shared small split)."""
    data = app_data(tmp_path_factory.mktemp("appdata"))
    default = dataclasses.replace(data, checkpoint=ROOT / "checkpoints" / "default.safetensors")
    running = start_app(default, tmp_path_factory.mktemp("gradio-temp"))
    yield running
    stop_app(running)


def start_streaming(page, url: str) -> int:
    """Open the Live tab, start the camera and its stream, then the microphone; returns, with how many
    starts the microphone took, when a map made with its sound is shown."""
    page.goto(url)
    page.wait_for_selector("#model-choice")
    page.get_by_role("tab", name="Live").click()
    page.wait_for_function("() => window.avdemoLive !== undefined")  # its watchers are in
    camera, microphone = page.locator("#live-camera"), page.locator("#live-mic")
    camera.get_by_text("Click to Access Webcam").click()
    page.wait_for_function("() => { const v = document.querySelector('#live-camera video');"
                           " return v && v.readyState >= 2; }", polling=POLL_MS)
    camera.get_by_role("button", name="capture photo").click()                      # starts the stream
    hearing = "() => (document.querySelector('#live-map').innerText || '').includes('hearing')"
    for starts in range(1, MIC_STARTS + 1):
        microphone.get_by_role("button", name="Record").click()
        microphone.get_by_role("button", name="Stop").wait_for()
        try:
            page.wait_for_function(hearing, polling=POLL_MS, timeout=MIC_WAIT_MS)
            return starts
        except playwright.TimeoutError:
            microphone.get_by_role("button", name="Stop").click()   # its stream did not start: record again
    raise AssertionError(f"no map made with the microphone's sound after {MIC_STARTS} starts of the microphone")


def check_pause_and_freeze(page) -> None:
    page.click("#live-freeze")
    page.wait_for_selector("#live-sample a", timeout=TIMEOUT_MS)
    assert ".zip" in page.locator("#live-sample a").first.get_attribute("href")
    page.wait_for_selector("#live-frozen img")
    page.click("#live-pause")
    page.wait_for_selector("#live-pause:has-text('Resume')")
    time.sleep(1.0)                                              # a map already under way may still land
    paused_at = page.evaluate("() => window.avdemoLive.shown.length")
    time.sleep(1.5)
    assert page.evaluate("() => window.avdemoLive.shown.length") == paused_at
    page.click("#live-pause")
    page.wait_for_selector("#live-pause:has-text('Pause')")
    page.wait_for_function(f"() => window.avdemoLive.shown.length > {paused_at}", polling=POLL_MS, timeout=TIMEOUT_MS)


@pytest.mark.parametrize("lion_side", ["left", "right"])
def test_live_peak_follows_the_sounding_object_in_chromium(live_app, lion_side, tmp_path):
    stage = Stage()
    clip = write_y4m(tmp_path / "clip.y4m", staged_frame(stage, sounding_left=lion_side == "left"), seconds=2.0)
    sound = write_wav(tmp_path / "sound.wav", recording(stage))
    fake = FAKE_MEDIA + [f"--use-file-for-fake-video-capture={clip}", f"--use-file-for-fake-audio-capture={sound}"]
    ARTIFACTS.mkdir(exist_ok=True)
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS + fake)
        try:
            page = chromium.new_page(viewport={"width": 1400, "height": 1100})
            page.set_default_timeout(TIMEOUT_MS)
            mic_starts = start_streaming(page, live_app.url)
            time.sleep(WARM_UP_S)
            first = page.evaluate("() => window.avdemoLive.shown.length")
            time.sleep(MEASURE_S)
            live = page.evaluate("() => window.avdemoLive")
            server = page.inner_text("#live-map")
            page.screenshot(path=str(ARTIFACTS / f"live-tab-lion-{lion_side}.png"), full_page=True)
            if lion_side == "left":
                check_pause_and_freeze(page)
        finally:
            chromium.close()

    shown, peaks = np.array(live["shown"][first:]), np.array(live["peaks"][first:])
    latency = np.array(live["latency_ms"][first:])
    # The webcam component mirrors what it captures (as a selfie view): the lion staged on the left of
    # the clip is on the right of the frames the server maps.
    on_lion = peaks > 0.5 if lion_side == "left" else peaks < 0.5
    figures = {"lion_side_in_clip": lion_side, "maps_scored": int(len(peaks)), "share_on_lion": float(on_lion.mean()),
               "maps_per_s_shown": float((len(shown) - 1) / (shown[-1] - shown[0]) * 1000) if len(shown) > 1 else 0.0,
               "latency_ms": {"mean": float(latency.mean()), "median": float(np.median(latency)),
                              "p90": float(np.percentile(latency, 90))} if len(latency) else None,
               "frames_sent": live["sent"], "microphone_starts": mic_starts, "server_readout": server, "peak_x": np.round(peaks, 4).tolist()}
    (ARTIFACTS / f"live-figures-lion-{lion_side}.json").write_text(json.dumps(figures, indent=1))
    print(json.dumps(figures))
    assert len(peaks) >= 5, f"too few maps shown after warm-up: {figures}"
    assert "hearing the newest" in server, server
    assert on_lion.mean() >= 0.8, figures


def test_live_tab_says_when_the_browser_refuses_the_camera_and_microphone(live_app):
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS + [
            "--use-fake-device-for-media-stream", "--deny-permission-prompts"])
        try:
            page = chromium.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(live_app.url)
            page.wait_for_selector("#model-choice")
            page.get_by_role("tab", name="Live").click()
            page.wait_for_function("() => window.avdemoLive !== undefined")  # its watchers are in
            page.locator("#live-camera").get_by_text("Click to Access Webcam").click()
            page.wait_for_selector("#live-monitor .live-msg-camera:has-text('refused the camera')")
            page.locator("#live-mic").get_by_role("button", name="Record").click()
            page.wait_for_selector("#live-monitor .live-msg-mic:has-text('refused the microphone')")
            assert "made with silence" in page.inner_text("#live-monitor .live-msg-mic")
        finally:
            chromium.close()
