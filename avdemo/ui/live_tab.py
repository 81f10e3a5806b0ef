"""Tab 7, live: the browser's camera and microphone stream to the server; each new frame comes back mapped
with the newest window of sound, with s_A, maps per second and the capture-to-display latency."""
from __future__ import annotations

import base64
import io
import re

import gradio as gr
import numpy as np
from PIL import Image

from ..live import LiveConfig, LiveMap, LiveSession
from .model_tab import Pickers
from .models import ModelHandle
from .views import export_path

LIVE = LiveConfig()
CLOCK = "avdemo-capture-clock"   # the hidden input's value; the page swaps in each frame's send time
ABOUT = (f"Start the camera and the microphone (their record buttons; the browser asks for permission). Each "
         f"new frame is mapped with the newest window of sound the picked model hears (1 s for the default) "
         f"and comes back with its s_A. Frames that arrive while one is being mapped are dropped, not queued. "
         f"Without sound from the microphone the maps are made with silence. A session streams for at most "
         f"{LIVE.time_limit_s // 60} min at a time (press record again); {LIVE.sessions} session"
         f"{'s are' if LIVE.sessions > 1 else ' is'} mapped at once, others wait their turn. **Freeze** keeps "
         f"the current frame, map and sound as a sample to download.")

# In the page: says what is wrong with camera / microphone access, stamps each frame with the time it
# leaves (the value of the hidden clock input), and counts the maps shown and their latency when the
# mapped image has loaded. Installed once per page: window.avdemoLive keeps the figures (the browser
# test reads them) and the messages.
MONITOR_JS = """
const say = (cls, text) => {                 // into every copy of the monitor (Gradio may mount it again)
  window.avdemoLive.messages[cls] = text;
  document.querySelectorAll('#live-monitor .' + cls).forEach((el) => {
    el.textContent = text; el.style.display = text ? '' : 'none'; });
};
if (window.avdemoLive) {                     // mounted again: the watchers and figures of the page stay
  Object.entries(window.avdemoLive.messages).forEach(([cls, text]) => say(cls, text));
} else {
const live = window.avdemoLive = {latency_ms: [], shown: [], peaks: [], sent: 0, messages: {}};
const media = navigator.mediaDevices;
if (!window.isSecureContext || !media || !media.getUserMedia) {
  say('live-msg-page', 'This page is not served over HTTPS or from localhost, so the browser gives it no ' +
      'camera and no microphone. Open it over HTTPS (a Hugging Face Space is), or on this machine as ' +
      'http://localhost:<port> (from another machine: an SSH tunnel, ssh -L <port>:localhost:<port> <host>).');
} else {
  const getUserMedia = media.getUserMedia.bind(media);
  media.getUserMedia = async (constraints) => {
    const what = constraints && constraints.video ? 'camera' : 'microphone';
    const cls = what === 'camera' ? 'live-msg-camera' : 'live-msg-mic';
    try { const stream = await getUserMedia(constraints); say(cls, ''); return stream; }
    catch (e) {
      if (e.name === 'NotAllowedError' || e.name === 'SecurityError')
        say(cls, `The browser refused the ${what}: allow it for this site (the icon left of the address) ` +
                 'and press record again.' + (what === 'microphone' ? ' Until then the maps are made with silence.' : ''));
      else if (e.name === 'NotFoundError' || e.name === 'OverconstrainedError')
        say(cls, what === 'microphone' ? 'No microphone found: the maps are made with silence.'
                                       : 'No camera found: connect one and reload the page.');
      else say(cls, `The ${what} did not start (${e.name}: ${e.message}).`);
      throw e;
    }
  };
  media.enumerateDevices().then((devices) => {
    if (!devices.some((d) => d.kind === 'audioinput')) say('live-msg-mic', 'No microphone found: the maps are made with silence.');
    if (!devices.some((d) => d.kind === 'videoinput')) say('live-msg-camera', 'No camera found: connect one and reload the page.');
  });
}
const CLOCK = '""" + CLOCK + """';
const fetch0 = window.fetch;
window.fetch = function (url, init) {
  const u = String(url && url.url ? url.url : url);
  if (init && typeof init.body === 'string' && init.body.includes(CLOCK) &&
      (u.includes('/stream/') || u.includes('/queue/join'))) {
    try {
      const body = JSON.parse(init.body);
      const i = body.data.indexOf(CLOCK);
      if (i >= 0) {
        body.data[i] = String(performance.timeOrigin + performance.now());
        init = {...init, body: JSON.stringify(body)};
        live.sent += 1;
      }
    } catch (e) { /* not a frame: send as it is */ }
  }
  return fetch0.call(this, url, init);
};
const watched = new WeakSet();
const done = (img) => {                      // once per picture shown, when it has loaded
  if (img.dataset.liveDone === img.dataset.liveSeq || !img.dataset.livePeak) return;
  img.dataset.liveDone = img.dataset.liveSeq;
  const now = performance.timeOrigin + performance.now();
  const clock = Number(img.dataset.liveClock);
  live.shown.push(now); live.peaks.push(Number(img.dataset.livePeak));
  if (clock > 0) live.latency_ms.push(now - clock);
  const recent = live.shown.filter((t) => now - t <= 2000).length;
  const lat = live.latency_ms.slice(-recent);
  const mean = lat.length ? lat.reduce((a, b) => a + b, 0) / lat.length : NaN;
  say('live-rate', `${(recent / 2).toFixed(1)} maps/s shown · latency (capture to display) ` +
      (isNaN(mean) ? '-' : `${mean.toFixed(0)} ms`) +
      ` · ${live.sent} frames sent, ${live.shown.length} maps shown (the server maps the newest frame; the others are dropped)`);
};
const shown = (img) => {                     // a new picture: remember its frame's send time and peak
  const stat = img.closest('[data-peak-x]');
  if (!stat) return;                         // not a map (the placeholder)
  img.dataset.liveClock = stat.dataset.clock;
  img.dataset.livePeak = stat.dataset.peakX;
  img.dataset.liveSeq = stat.dataset.seq;
  if (!watched.has(img)) { watched.add(img); img.addEventListener('load', () => done(img)); }
  if (img.complete && img.naturalWidth) done(img);
};
new MutationObserver((mutations) => {
  for (const m of mutations) {
    const nodes = m.type === 'attributes' ? [m.target] : [...m.addedNodes];
    for (const n of nodes) {
      if (!(n instanceof Element) || !n.closest('#live-map')) continue;
      (n.tagName === 'IMG' ? [n] : [...n.querySelectorAll('img')]).forEach(shown);
    }
  }
}).observe(document.body, {subtree: true, childList: true, attributes: true, attributeFilter: ['src']});
}
"""
MONITOR_HTML = """<div class="live-monitor">
<p class="live-msg-page" style="display:none; color:#b91c1c; font-weight:600"></p>
<p class="live-msg-camera" style="display:none; color:#b91c1c; font-weight:600"></p>
<p class="live-msg-mic" style="display:none; color:#b45309; font-weight:600"></p>
<p class="live-rate">no maps yet</p></div>"""


def jpeg_data_url(image: np.ndarray, quality: int = 80) -> str:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def map_html(session: LiveSession, mapped: LiveMap, clock: str, label: str) -> str:
    """One model's heat map and the server's figures in one piece of HTML (the picture travels inline with
    the event, no file to fetch); ``data-*`` carry the frame's send time (echoed for the page's latency),
    the map's number in the session and the peak's position."""
    clock = clock if re.fullmatch(r"[0-9]+(\.[0-9]+)?", clock or "") else ""
    sound = ("no sound from the microphone: mapped with silence" if mapped.heard.silent
             else f"hearing the newest {len(mapped.heard.wav) / mapped.heard.rate:g} s of the microphone")
    return (f'<div style="flex:1; min-width:240px" data-clock="{clock}" data-seq="{session.gate.admitted}" '
            f'data-peak-x="{mapped.peak_xy[0]:.4f}" data-peak-y="{mapped.peak_xy[1]:.4f}">'
            f'<img src="{jpeg_data_url(mapped.overlay)}" alt="heat map of {label}" style="width:100%">'
            f"<p><b>{label}</b>: <b>s_A {mapped.s_A:.3f}</b> · peak S {mapped.peak:.3f} · server: "
            f"{session.maps_per_s():.1f} maps/s, {1000 * mapped.compute_s:.0f} ms per map · {sound}</p></div>")


def live_frame(frame, models: list[ModelHandle], clock: str, session: LiveSession):
    """A camera frame -> each picked model's heat map with the figures, side by side; nothing when paused
    or while a frame is mapped (the frozen sample keeps the last model's map)."""
    if frame is None:
        return gr.skip()
    shown = []
    for model in models:
        mapped = session.map_frame(model.model, frame)
        if mapped is None:
            return gr.skip()
        shown.append(map_html(session, mapped, clock, model.label))
    return f'<div style="display:flex; gap:8px; flex-wrap:wrap">{"".join(shown)}</div>'


def live_sound(chunk, models: list[ModelHandle], session: LiveSession) -> None:
    """A microphone chunk (rate, samples) into the session's ring buffer; each model's audio tower on its
    window."""
    if chunk is None:
        return
    rate, samples = chunk
    session.add_sound([m.model for m in models], samples, int(rate))


def toggle_pause(session: LiveSession):
    session.paused = not session.paused
    return gr.update(value="Resume" if session.paused else "Pause")


def freeze(session: LiveSession):
    """The current frame, map and sound as a zip to download, and the frozen map to look at."""
    path = export_path("live-sample", ".zip")
    frozen = session.freeze(path)
    return str(path), frozen.overlay


def build_live_tab(pickers: Pickers) -> None:
    """The tab's components and events (call inside ``with gr.Tab(...)``)."""
    gr.Markdown(ABOUT)
    session = gr.State(LiveSession)
    clock = gr.Textbox(CLOCK, visible=False)
    gr.HTML(MONITOR_HTML, js_on_load=MONITOR_JS, elem_id="live-monitor")
    with gr.Row():
        camera = gr.Image(sources=["webcam"], streaming=True, type="numpy", label="Camera", elem_id="live-camera")
        heat = gr.HTML("<p>The heat map of the picked model appears here.</p>", label="Heat map",
                       elem_id="live-map")
    with gr.Row():
        microphone = gr.Audio(sources=["microphone"], streaming=True, type="numpy", label="Microphone",
                              elem_id="live-mic")
        with gr.Column():
            pause = gr.Button("Pause", elem_id="live-pause")
            freeze_button = gr.Button("Freeze", variant="primary", elem_id="live-freeze")
    with gr.Row():
        frozen = gr.Image(label="Frozen map", type="numpy", interactive=False, elem_id="live-frozen")
        sample = gr.File(label="Frozen sample (frame, heat map, raw map, sound, scores)", elem_id="live-sample")

    limits = dict(time_limit=LIVE.time_limit_s, concurrency_limit=LIVE.sessions, show_progress="hidden")
    camera.stream(live_frame, [camera, pickers.models, clock, session], heat, api_name="live_frame",
                  stream_every=LIVE.frame_every_s, concurrency_id="live-frames", **limits)
    microphone.stream(live_sound, [microphone, pickers.models, session], None, api_name="live_sound",
                      stream_every=LIVE.sound_every_s, concurrency_id="live-sound", **limits)
    pause.click(toggle_pause, session, pause, api_name="live_pause")
    freeze_button.click(freeze, session, [sample, frozen], api_name="live_freeze")
