"""Checkpoint references: https URLs and hf:// against real HTTP servers on 127.0.0.1, never the internet."""
from __future__ import annotations

import hashlib
import io
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
import torch

from avdemo import AVDemoError, load_model, save_model
from avdemo.fetch import parse_ref, resolve_checkpoint
from avdemo.index import ensure_index

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass                        # a client that hangs up mid-file (the size limit) is expected here


class Server:
    """A real HTTP server in a thread. ``files`` maps a URL path to (bytes, content type); a hub-style
    path ``/<owner>/<repo>/resolve/<revision>/<file>`` is answered with the headers the Hub sends."""

    def __init__(self):
        self.files: dict[str, tuple[bytes, str]] = {}
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self, body: bool):
                path = self.path.split("?")[0]
                server.requests.append(f"{self.command} {path}")
                found = server.files.get(path)
                if found is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    if "/resolve/" in path:
                        self.send_header("X-Error-Code", "EntryNotFound")
                        self.send_header("X-Repo-Commit", COMMIT)
                    self.end_headers()
                    return
                data, ctype = found
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
                self.send_header("X-Repo-Commit", COMMIT)
                self.end_headers()
                if body:
                    self.wfile.write(data)

            def do_HEAD(self):
                self._answer(body=False)

            def do_GET(self):
                self._answer(body=True)

        self.httpd = QuietServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class DriveServer:
    """Google Drive's download flow, as gdown meets it, on 127.0.0.1: ``/uc?id=<id>&export=download``
    answers a small file with its bytes and a Content-Disposition; a large one with the virus-scan
    warning page, whose ``download-form`` (hidden id, export, confirm, uuid) leads to ``/download``, which
    gives the bytes only with that confirm token and uuid. ``errors`` maps an id to the HTML page Drive
    shows instead (quota exceeded, sign-in for a file that is not shared); unknown ids answer 404."""

    UUID = "5a1e-77c0"

    def __init__(self):
        self.small: dict[str, bytes] = {}
        self.large: dict[str, bytes] = {}
        self.errors: dict[str, str] = {}
        self.requests: list[str] = []
        drive = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status: int, body: bytes, ctype: str, filename: str | None = None):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                if filename:
                    self.send_header("Content-Disposition", f'attachment; filename="{filename}"')
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                file_id = query.get("id", "")
                drive.requests.append(f"{parts.path} {file_id}")
                if parts.path == "/uc" and file_id in drive.small:
                    return self._send(200, drive.small[file_id], "application/octet-stream", "ours_sup.pth.tar")
                if parts.path == "/uc" and file_id in drive.errors:
                    return self._send(200, drive.errors[file_id].encode(), "text/html; charset=utf-8")
                if file_id in drive.large:
                    confirmed = query.get("confirm") == "t" and query.get("uuid") == drive.UUID
                    if parts.path == "/download" and confirmed:
                        return self._send(200, drive.large[file_id], "application/octet-stream", "big.pth.tar")
                    return self._send(200, drive.warning_page(file_id).encode(), "text/html; charset=utf-8")
                self._send(404, b"<html><body>Not Found</body></html>", "text/html")

        self.httpd = QuietServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def warning_page(self, file_id: str) -> str:
        """Drive's page for a file too large to scan (its markup as served, the form on one line)."""
        return (
            "<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title></head><body>\n"
            '<div class="uc-main"><div id="uc-text"><p class="uc-warning-caption">Google Drive can\'t scan this '
            'file for viruses.</p><p class="uc-warning-subcaption"><span class="uc-name-size"><a href="/open?id='
            f'{file_id}">big.pth.tar</a> (163M)</span> is too large for Google to scan for viruses. Would you still '
            f'like to download this file?</p><form id="download-form" action="{self.url}/download" method="get">'
            '<input type="submit" id="uc-download-link" value="Download anyway"/><input type="hidden" name="id" '
            f'value="{file_id}"><input type="hidden" name="export" value="download"><input type="hidden" '
            f'name="confirm" value="t"><input type="hidden" name="uuid" value="{self.UUID}"></form></div></div>\n'
            "</body></html>\n")

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


QUOTA_PAGE = ('<!DOCTYPE html><html><head><title>Google Drive - Quota exceeded</title></head><body>\n'
              '<div class="uc-main"><p class="uc-error-caption">Sorry, you can\'t view or download this file at '
              'this time.</p>\n<p class="uc-error-subcaption">Too many users have viewed or downloaded this file '
              'recently. Please try accessing the file again later.</p></div>\n</body></html>\n')
SIGN_IN_PAGE = "<!DOCTYPE html><html><head><title>Sign in - Google Accounts</title></head><body>Sign in</body></html>"


@pytest.fixture
def drive(monkeypatch):
    d = DriveServer()
    monkeypatch.setenv("AVDEMO_GDRIVE_URL", d.url)
    yield d
    d.stop()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.stop()


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("AVDEMO_CACHE", str(folder))
    return folder


@pytest.fixture
def ours(tmp_path, tiny_model) -> tuple[bytes, bytes]:
    """Our tiny checkpoint's weights and card, as bytes."""
    path = save_model(tiny_model, tmp_path / "src" / "tiny.safetensors", card={"notes": "served"})
    return path.read_bytes(), path.with_suffix(".json").read_bytes()


def _frames_windows(cfg):
    rng = np.random.default_rng(0)
    return (rng.integers(0, 256, size=(2, 40, 60, 3), dtype=np.uint8),
            rng.uniform(-1, 1, size=(2, cfg.audio.window_samples)).astype(np.float32))


def _left_files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_references_parse_with_revision_and_pin():
    ref = parse_ref("hf://owner/repo/ckpts/ours_sup.pth.tar@v1.0#sha256=" + "AB" * 32)
    assert (ref.kind, ref.location, ref.filename, ref.revision, ref.sha256) == \
        ("hf", "owner/repo", "ckpts/ours_sup.pth.tar", "v1.0", "ab" * 32)
    assert parse_ref("https://host/x/model.pth.tar?dl=1").name == "model.pth.tar"
    assert parse_ref("checkpoints/default.safetensors").kind == "path"
    for bad, message in (("hf://owner/model.pth", "hf://owner/repo/path"), ("s3://b/x.pth", "unsupported scheme"),
                         ("https://h/x.pth#md5=1", "sha256=<64 hex")):
        with pytest.raises(AVDemoError, match=message):
            parse_ref(bad)


def test_a_url_downloads_once_with_its_card_and_is_reused_offline(server, cache, ours, tiny_model, tiny_config):
    weights, card = ours
    server.files["/m/tiny.safetensors"] = (weights, "application/octet-stream")
    server.files["/m/tiny.json"] = (card, "application/json")
    url = f"{server.url}/m/tiny.safetensors#sha256={hashlib.sha256(weights).hexdigest()}"
    model = load_model(url)
    assert model.card["notes"] == "served"
    frames, windows = _frames_windows(tiny_config)
    np.testing.assert_allclose(model.localize(frames, windows).maps, tiny_model.localize(frames, windows).maps,
                               atol=1e-5)
    assert [f.rsplit("/", 1)[1] for f in _left_files(cache)] == ["tiny.json", "tiny.safetensors"]   # no temp files
    server.stop()                                                   # offline: the cached copy is used
    assert load_model(url).card["notes"] == "served"
    assert server.requests == ["GET /m/tiny.safetensors", "GET /m/tiny.json"]


def test_url_errors_are_clear_and_leave_nothing(server, cache, ours, monkeypatch):
    weights, _ = ours
    server.files["/w.pth.tar"] = (weights, "application/octet-stream")
    server.files["/page.pth.tar"] = (b"<!DOCTYPE html><html><body>Sign in</body></html>", "text/html; charset=utf-8")
    server.files["/sneaky.pth.tar"] = (b"\n<html><body>virus scan warning</body></html>", "application/octet-stream")
    cases = [(f"{server.url}/missing.pth.tar", "HTTP 404"),
             (f"{server.url}/page.pth.tar", "HTML page"),
             (f"{server.url}/sneaky.pth.tar", "HTML page"),
             (f"{server.url}/w.pth.tar#sha256={'0' * 64}", "sha256 mismatch"),
             (f"http://127.0.0.1:{_closed_port()}/w.pth.tar", "cannot connect")]
    for ref, message in cases:
        with pytest.raises(AVDemoError, match=message) as error:
            resolve_checkpoint(ref)
        assert str(cache) not in str(error.value)                        # no server folder in a message
    monkeypatch.setenv("AVDEMO_MAX_DOWNLOAD_MB", str(len(weights) / 2 / 2**20))
    with pytest.raises(AVDemoError, match="over the download limit"):
        resolve_checkpoint(f"{server.url}/w.pth.tar")
    assert _left_files(cache) == []


def test_a_download_that_is_no_checkpoint_or_lacks_its_card_is_not_kept(server, cache, ours):
    weights, card = ours
    server.files["/notes.pth.tar"] = (b"PKZIP? no: release notes, not weights\n" * 40, "application/octet-stream")
    server.files["/orphan.safetensors"] = (weights, "application/octet-stream")       # orphan.json: 404
    server.files["/badcard.safetensors"] = (weights, "application/octet-stream")
    server.files["/badcard.json"] = (b'{"notes": "no config"}', "application/json")
    server.files["/text.safetensors"] = (card, "application/octet-stream")            # a card as weights
    cases = [("notes.pth.tar", "notes.pth.tar: not a checkpoint: its bytes are neither safetensors nor"),
             ("orphan.safetensors", r"orphan.json: HTTP 404 .*unusable without its model card, so neither file"),
             ("badcard.safetensors", r'badcard.json: the model card has no "config" object.*neither file'),
             ("text.safetensors", "text.safetensors: not a checkpoint")]
    for name, message in cases:
        with pytest.raises(AVDemoError, match=message):
            resolve_checkpoint(f"{server.url}/{name}")
    assert _left_files(cache) == []
    server.files["/orphan.json"] = (card, "application/json")                       # fixed upstream: fetched again
    assert load_model(f"{server.url}/orphan.safetensors").card["notes"] == "served"


def test_a_hub_download_that_is_no_checkpoint_or_lacks_its_card_is_not_kept(server, cache, ours, monkeypatch):
    weights, card = ours
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    server.files["/lab/ssl/resolve/main/notes.pth.tar"] = (b"just text\n" * 50, "application/octet-stream")
    server.files["/lab/ssl/resolve/main/orphan.safetensors"] = (weights, "application/octet-stream")
    server.files["/lab/ssl/resolve/main/bad.safetensors"] = (weights, "application/octet-stream")
    server.files["/lab/ssl/resolve/main/bad.json"] = (b"[]", "application/json")
    for name, message in (("notes.pth.tar", "not a checkpoint"),
                          ("orphan.safetensors", r"orphan.json: not found on the Hub.*so it was not kept"),
                          ("bad.safetensors", r"bad.json: the model card must be a JSON object.*neither file")):
        with pytest.raises(AVDemoError, match=message):
            resolve_checkpoint(f"hf://lab/ssl/{name}")
    assert [f for f in _left_files(cache) if "/blobs/" in f or "/snapshots/" in f] == []


SMALL_ID, LARGE_ID = "1-WUEoAmp4WBj4Tbsi9Ybh2bq4W6-uYnd", "1p_eXOlZfeCo5EwY5RRkh4YnAnMZJ0Eyz"


def _torch_bytes(model) -> bytes:
    buffer = io.BytesIO()
    torch.save({"model_state_dict": model.state_dict(), "epoch": 20}, buffer)
    return buffer.getvalue()


def test_drive_links_and_gdrive_references_parse_to_the_file_id():
    for link in (f"https://drive.google.com/file/d/{SMALL_ID}/view?usp=drive_link",
                 f"https://drive.google.com/open?id={SMALL_ID}",
                 f"https://drive.google.com/uc?id={SMALL_ID}&export=download", f"gdrive://{SMALL_ID}"):
        assert (parse_ref(link).kind, parse_ref(link).location) == ("gdrive", SMALL_ID)
    assert parse_ref(f"gdrive://{SMALL_ID}#sha256={'c' * 64}").sha256 == "c" * 64
    for bad in ("https://drive.google.com/drive/folders/1AbCdEfGhIjKlMnOpQrStUvWxYz012345", "gdrive://", "gdrive://a/b"):
        with pytest.raises(AVDemoError, match="a Google Drive reference is a file's share link"):
            parse_ref(bad)


def test_a_drive_file_is_fetched_through_the_confirmation_page_pinned_and_reused_offline(
        drive, cache, tiny_model, tiny_config):
    data = _torch_bytes(tiny_model)
    drive.large[LARGE_ID] = data
    drive.small[SMALL_ID] = data
    frames, windows = _frames_windows(tiny_config)
    expected = tiny_model.localize(frames, windows).maps
    link = f"https://drive.google.com/file/d/{LARGE_ID}/view?usp=sharing#sha256={hashlib.sha256(data).hexdigest()}"
    model = load_model(link, config=tiny_config)
    np.testing.assert_allclose(model.localize(frames, windows).maps, expected, atol=1e-5)
    assert drive.requests == [f"/uc {LARGE_ID}", f"/download {LARGE_ID}"]       # the page, then the form's link
    assert resolve_checkpoint(f"gdrive://{SMALL_ID}").read_bytes() == data       # a small file: no page
    assert len(_left_files(cache)) == 2                                         # no temp files
    drive.stop()                                                                # offline: the cached copies
    assert load_model(f"gdrive://{LARGE_ID}", config=tiny_config).card["format"] == "pytorch"
    assert resolve_checkpoint(f"https://drive.google.com/open?id={SMALL_ID}").read_bytes() == data
    with pytest.raises(AVDemoError, match=f"gdrive://{LARGE_ID}: sha256 mismatch"):
        resolve_checkpoint(f"gdrive://{LARGE_ID}#sha256={'0' * 64}")
    with pytest.raises(AVDemoError, match="gdrive://never-fetched: cannot connect to Google Drive.*no network"):
        resolve_checkpoint("gdrive://never-fetched")


def test_drive_errors_are_clear_and_leave_nothing(drive, cache, tiny_model, ours, monkeypatch):
    data = _torch_bytes(tiny_model)
    drive.large["big"] = data
    drive.large["text"] = b"a text file, not weights\n" * 30
    drive.large["ours"] = ours[0]
    drive.errors["quota"] = QUOTA_PAGE
    drive.errors["private"] = SIGN_IN_PAGE
    cases = [("gdrive://missing", "gdrive://missing: no such file on Google Drive \\(HTTP 404\\)"),
             ("gdrive://quota", "gdrive://quota: Google Drive sent a page, not the file: Too many users have "
                                "viewed or downloaded this file recently"),
             ("https://drive.google.com/file/d/private/view", "gdrive://private: Google Drive sent a page, not the "
                                                              "file: it is not shared publicly"),
             (f"gdrive://big#sha256={'0' * 64}", "gdrive://big: sha256 mismatch"),
             ("gdrive://text", "gdrive://text: not a checkpoint"),
             ("gdrive://ours", "gdrive://ours: a safetensors file needs its model card")]
    for ref, message in cases:
        with pytest.raises(AVDemoError, match=message) as error:
            resolve_checkpoint(ref)
        assert str(cache) not in str(error.value)                        # no server folder in a message
    monkeypatch.setenv("AVDEMO_MAX_DOWNLOAD_MB", str(len(data) / 2 / 2**20))
    with pytest.raises(AVDemoError, match="gdrive://big: .* MB is over the download limit"):
        resolve_checkpoint("gdrive://big")
    assert _left_files(cache) == []


def test_a_local_file_can_be_pinned(tmp_path, ours):
    path = tmp_path / "w.safetensors"
    path.write_bytes(ours[0])
    assert resolve_checkpoint(f"{path}#sha256={hashlib.sha256(ours[0]).hexdigest()}") == path
    with pytest.raises(AVDemoError, match="sha256 mismatch"):
        resolve_checkpoint(f"{path}#sha256={'1' * 64}")


def test_hub_references_download_through_huggingface_hub_and_work_offline(server, cache, ours, monkeypatch,
                                                                          tiny_model, tiny_config, tmp_path):
    weights, card = ours
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    server.files["/lab/ssl/resolve/main/ckpt/tiny.safetensors"] = (weights, "application/octet-stream")
    server.files["/lab/ssl/resolve/main/ckpt/tiny.json"] = (card, "application/json")
    ref = "hf://lab/ssl/ckpt/tiny.safetensors"
    model = load_model(ref)
    frames, windows = _frames_windows(tiny_config)
    np.testing.assert_allclose(model.localize(frames, windows).maps, tiny_model.localize(frames, windows).maps,
                               atol=1e-5)
    assert (cache / "hub" / "models--lab--ssl" / "snapshots" / COMMIT / "ckpt" / "tiny.safetensors").is_file()
    with pytest.raises(AVDemoError, match="not found on the Hub"):
        resolve_checkpoint("hf://lab/ssl/ckpt/other.pth.tar")
    with pytest.raises(AVDemoError, match="sha256 mismatch"):
        resolve_checkpoint(ref + "#sha256=" + "2" * 64)
    model = load_model(ref + "#sha256=" + hashlib.sha256(weights).hexdigest())      # fetched again, pinned
    server.stop()
    assert load_model(ref).card["notes"] == "served"                                  # offline
    index = ensure_index(ref, _split(tmp_path), cache_dir=tmp_path / "index", progress=False)
    summary = index.info["summary"]                                                   # the 6-scene split
    assert (summary["n_sounding"], summary["n_non_sounding"]) == (6, 6)
    with pytest.raises(AVDemoError, match="cannot reach the Hub"):
        resolve_checkpoint("hf://lab/ssl/ckpt/never-fetched.pth.tar")


def test_the_app_picker_offers_a_hub_checkpoint_by_its_reference(server, cache, ours, monkeypatch, tmp_path):
    from avdemo.ui import models

    weights, card = ours
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setattr(models, "_STARTED_WITH", {})
    server.files["/lab/ssl/resolve/v2/tiny.safetensors"] = (weights, "application/octet-stream")
    server.files["/lab/ssl/resolve/v2/tiny.json"] = (card, "application/json")
    ref = "hf://lab/ssl/tiny.safetensors@v2"           # what AVDEMO_CHECKPOINT holds on a Space
    assert models.register_checkpoint(ref) == ref and ref in models.checkpoint_choices()
    assert models.resolve(ref).card["notes"] == "served"
    local = tmp_path / "elsewhere" / "mine.safetensors"
    local.parent.mkdir()
    local.write_bytes(weights)
    local.with_suffix(".json").write_bytes(card)
    assert models.register_checkpoint(local) == "mine.safetensors"                   # a name, not the folder
    assert models.checkpoint_file("mine.safetensors") == str(local)
    assert not any(c.startswith("/") for c in models.checkpoint_choices())


def _split(tmp_path: Path) -> Path:
    from avdemo.data.splits import build_split

    return build_split("test", 6, out=tmp_path / "data")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
