"""Every API endpoint of the running app, called with hostile values: each call ends in a result or in a
short, specific message (never Gradio's generic one, never a server path), nothing is left behind, and the
server still answers afterwards.

The endpoints and their inputs are read from the app itself (``view_api``), so an endpoint added later is
fuzzed without a change here. One input is made hostile at a time; the others keep the page's values."""
from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from appdata import ROOT, files_in, start_app, stop_app
from gradio_client import Client
from gradio_client.exceptions import AppError
from PIL import Image

from avdemo.media import write_mp4

GENERIC = "has raised an exception but has not enabled verbose error reporting"
MAX_MESSAGE = 300
# hostile values per kind of input (a wrong type is one of another kind's values)
NUMBER_VALUES = [None, "", "nan", "inf", "abc", -1, 10**9, [1, 2]]
CHOICE_VALUES = [None, "", -1, 10**9, {"a": 1}, "/etc/passwd", "../../../etc/passwd", "hf://owner/repo/x.pth.tar",
                 "https://127.0.0.1:1/x.pth.tar"]
FLAG_VALUES = [None, "nan", [1, 2]]
FILE_VALUES = [None, "", 10**9, "/etc/passwd", {"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}}]
FILE_COMPONENTS = {"Video", "Audio", "Image", "File", "Uploadbutton"}
STREAM_WAIT_S = 0.3            # a stream's chunk is answered within this, or not at all
CLIENTS = 8                    # calls at once (they wait on the network more than on the CPU)
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture(scope="module")
def app(data, tmp_path_factory):
    running = start_app(data, tmp_path_factory.mktemp("gradio-temp"))
    yield running
    stop_app(running)


@pytest.fixture(scope="module")
def hostile_files(tmp_path_factory) -> dict[str, Path]:
    """Files that are not what an input expects: empty, random bytes, text, a picture, a video."""
    folder = tmp_path_factory.mktemp("hostile")
    rng = np.random.default_rng(0)
    files = {"empty.mp4": b"", "random.wav": rng.bytes(4096), "text.png": b"not a picture\n" * 20,
             "random.safetensors": rng.bytes(2048)}
    for name, content in files.items():
        (folder / name).write_bytes(content)
    Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(folder / "picture.png")
    (folder / "picture.mp4").write_bytes((folder / "picture.png").read_bytes())      # a PNG named as a video
    write_mp4(folder / "clip.mp4", [rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)] * 4, fps=4)
    (folder / "clip.png").write_bytes((folder / "clip.mp4").read_bytes())            # a video named as a picture
    return {p.name: p for p in folder.iterdir()}


def hostile_values(component: str, uploaded: list[dict]) -> list:
    if component in FILE_COMPONENTS:
        return FILE_VALUES + ([[f] for f in uploaded] + [uploaded] if component == "Uploadbutton" else uploaded)
    if component in ("Number", "Slider"):
        return NUMBER_VALUES
    if component == "Checkbox":
        return FLAG_VALUES
    return CHOICE_VALUES


def upload(app, files: dict[str, Path]) -> list[dict]:
    """The files uploaded to the app as any client uploads them; their payloads (the server's paths)."""
    sent = [("files", (name, path.read_bytes())) for name, path in files.items()]
    paths = httpx.post(f"{app.url}gradio_api/upload", files=sent, timeout=30).json()
    return [{"path": p, "orig_name": name, "meta": {"_type": "gradio.FileData"}} for p, name in zip(paths, files)]


def server_paths(app) -> list[str]:
    return [str(ROOT), str(app.temp_dir.parent), "/tmp/"]


def message_fault(message: str, app) -> str | None:
    """What is wrong with an error message, or None."""
    if GENERIC in message or not message.strip():
        return "the generic message"
    if len(message) > MAX_MESSAGE:
        return f"{len(message)} characters: {message[:120]}..."
    if any(p in message for p in server_paths(app)):
        return f"a server path in {message!r}"
    if "\x1b[" in message or "Traceback" in message:
        return f"a raw traceback or terminal codes in {message!r}"
    return None


def hostile_calls(endpoints: dict, uploaded: list[dict]) -> list[tuple[str, list, str]]:
    """(endpoint, arguments, what is hostile): one input at a time, the others at the page's values."""
    calls = []
    for api_name, info in sorted(endpoints.items()):
        params = info["parameters"]
        defaults = [p.get("parameter_default") for p in params]
        calls += [(api_name, [], "no data")] if not params else []
        for k, param in enumerate(params):
            for value in hostile_values(param["component"], uploaded):
                calls.append((api_name, defaults[:k] + [value] + defaults[k + 1:],
                              f"{param['parameter_name']}={str(value)[:60]}"))
    return calls


def test_every_endpoint_answers_hostile_values_with_a_short_specific_message(app, hostile_files):
    client = Client(app.url, verbose=False, download_files=False)
    endpoints = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    calls = hostile_calls(endpoints, upload(app, hostile_files))
    streams = stream_endpoints(app)
    uploads = app.cache_dir / "uploads"                  # (shared by the apps of a test session)
    kept = set(uploads.iterdir()) if uploads.exists() else set()

    def run(task: tuple[str, list, str]) -> tuple[str, float, str | None]:
        api_name, args, what = task
        started = time.monotonic()
        message = raw_call(app, api_name, args, wait_s=STREAM_WAIT_S if api_name in streams else 120)
        fault = message_fault(message, app) if message is not None else None
        return f"{api_name} {what}", time.monotonic() - started, f"{api_name} {what}: {fault}" if fault else None

    started = time.monotonic()
    with ThreadPoolExecutor(CLIENTS) as pool:
        done = list(pool.map(run, calls))
    seconds = time.monotonic() - started
    failures = [fault for _, _, fault in done if fault]
    slowest = sorted(done, key=lambda d: -d[1])[:10]
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "fuzz.json").write_text(json.dumps({
        "endpoints": len(endpoints), "calls": len(calls), "seconds": round(seconds, 1), "failures": failures,
        "slowest_calls_s": {what: round(took, 2) for what, took, _ in slowest}}, indent=1))
    assert not failures, f"{len(failures)} of {len(calls)} calls:\n" + "\n".join(failures)
    assert app.process.poll() is None
    card, *_ = client.predict(*[p["parameter_default"] for p in endpoints["/model_cards"]["parameters"]],
                              api_name="/model_cards")
    assert "tiny" in card["value"]
    assert (set(uploads.iterdir()) if uploads.exists() else set()) == kept, "a hostile upload was kept"
    left = [p for p in files_in(app.cache_dir) if ".tmp" in p.name or p.name.startswith(".staging")]
    assert not left, f"half-written files left: {left}"


def stream_endpoints(app) -> set[str]:
    """The endpoints of streaming events (a camera or a microphone): they stay open for the next chunk,
    and a chunk that makes no output gives no answer."""
    config = httpx.get(f"{app.url}config", timeout=30).json()
    return {f"/{d['api_name']}" for d in config["dependencies"]
            if d.get("api_name") and any(t[1] == "stream" for t in d.get("targets", []))}


def raw_call(app, api_name: str, args: list, wait_s: float = 120) -> str | None:
    """Call an endpoint with plain HTTP requests, as any client may (files are named, not uploaded); the
    message of the error it ends in ("(no message)" for none), or None when it ends in a result (or, for
    a stream, says nothing for ``wait_s``)."""
    url = f"{app.url}gradio_api/call{api_name}"
    answer = httpx.post(url, json={"data": args}, timeout=30)
    if answer.status_code != 200:
        return f"HTTP {answer.status_code}: {answer.text[:200]}"
    lines: list[str] = []
    try:
        with httpx.stream("GET", f"{url}/{answer.json()['event_id']}", timeout=wait_s) as stream:
            for line in stream.iter_lines():      # up to the first answer (a stream event stays open after it)
                lines.append(line)
                if len(lines) >= 2 and lines[-2] in ("event: complete", "event: generating", "event: error"):
                    break
    except httpx.ReadTimeout:
        return None
    if "event: error" not in lines:
        return None
    data = json.loads(lines[lines.index("event: error") + 1].removeprefix("data: "))
    return (data.get("error") if isinstance(data, dict) else data) or "(no message)"


def args_for(endpoint: dict, **given) -> list:
    """An endpoint's arguments: the page's values, with ``given`` ones by parameter name."""
    return [given.get(p["parameter_name"], p.get("parameter_default")) for p in endpoint["parameters"]]


def test_each_reported_defect_is_answered_with_its_own_message(app, hostile_files):
    client = Client(app.url, verbose=False, download_files=False)
    endpoints = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    uploaded = {f["orig_name"]: f for f in upload(app, hostile_files)}
    cases = [  # (endpoint, hostile arguments, what the message must say)
        ("/model_cards", {"models": None}, "models: pick at least one model"),
        ("/model_cards", {"models": ["tiny.safetensors", "/etc/passwd"]}, "'/etc/passwd' is not one of the choices"),
        ("/model_cards", {"models": ["tiny.safetensors"] * 2}, "models: a model is picked twice"),
        ("/per_class", {"threshold": "nan"}, "s_A threshold for the false-positive column (empty: none): nan is not "
                                             "a finite number"),
        ("/per_class", {"threshold": "abc"}, "'abc' is not a number"),
        ("/per_class", {"threshold": 1e308}, "1e+308 is outside -1..1"),
        ("/fp_analyse", {"param_5": "0.5"}, None),                        # a number as text is a number
        ("/fp_analyse", {"param_5": "abc"}, "Threshold: 'abc' is not a number"),
        ("/retrieve", {"k": "many"}, "K (results): 'many' is not a number"),
        ("/retrieve", {"source": "upload", "picture": uploaded["text.png"]},
         "Uploaded picture: the file is not a picture"),

        ("/retrieve", {"sample": "0"}, None),                             # the integer's digits are accepted
        ("/retrieve", {"sample": "999"}, "Indexed sample: 999 is not a sample of this dataset (0..31)"),
        ("/retrieve", {"sample": "#4"}, "Indexed sample: '#4' is not a sample number"),
        ("/localize_video", {"other_clip": "/etc/passwd", "sound": "another example clip"},
         "'/etc/passwd' is not one of the choices ('farm.mp4'"),
        ("/fp_pick_1", {}, "fp_pick_1: this is a click on a gallery picture"),
    ]
    # raw requests (gradio_client would upload a local file first): a server file, a URL, a server picture
    for path in ("/etc/passwd", "http://127.0.0.1:1/x.png", str(hostile_files["picture.png"])):
        picture = {"path": path, "meta": {"_type": "gradio.FileData"}}
        message = raw_call(app, "/retrieve", args_for(endpoints["/retrieve"], source="upload", picture=picture,
                                                      direction="picture → sounds"))
        assert message == ("Uploaded picture: only files uploaded to this server are read (upload it through the "
                           "page, or with gradio_client's handle_file)"), f"{path}: {message!r}"
    for api_name, given, expected in cases:
        message = raw_call(app, api_name, args_for(endpoints[api_name], **given))
        if expected is None:
            assert message is None, f"{api_name} {given}: {message}"
        else:
            assert message is not None and expected in message, f"{api_name} {given}: {message!r}"
            assert message_fault(message, app) is None, message
    fp = endpoints["/fp_measure"]
    client.predict(*args_for(fp), api_name="/fp_measure")                # the session's list of samples
    for position in (-1, 0, 10**9):
        for api_name in ("/fp_card", "/fp_export_card"):
            name = endpoints[api_name]["parameters"][-1]["parameter_name"]
            with pytest.raises(AppError, match="(?i)position.*(outside|not a position)"):   # in this session's list
                client.predict(*args_for(endpoints[api_name], **{name: position}), api_name=api_name)


def test_the_api_declares_names_and_integers_never_server_paths(app):
    client = Client(app.url, verbose=False, download_files=False)
    endpoints = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    declared = json.dumps(endpoints)
    assert str(ROOT) not in declared and "/tmp/" not in declared
    params = {p["parameter_name"]: p for p in endpoints["/retrieve"]["parameters"]}
    assert params["dataset"]["python_type"]["type"] == "Literal['test']"
    assert params["sample"]["python_type"]["type"] == "int"
    clips = {p["parameter_name"]: p for p in endpoints["/localize_video"]["parameters"]}["other_clip"]
    assert "'farm.mp4'" in clips["python_type"]["type"]
