"""Checkpoint references: a local path, an ``https://`` URL, ``hf://owner/repo/path/in/repo[@revision]``
or a Google Drive file (its share link, or ``gdrive://<file id>``).

Any of them may end in ``#sha256=<64 hex digits>``, which pins the weights file's content. Remote files
are downloaded once, with a progress bar, atomically (a partial file never looks complete), into one
cache folder, and reused from there without a network afterwards:

- URLs: ``<cache_root()>/downloads/<hash of the URL>/<file name>``;
- Google Drive: ``<cache_root()>/downloads/<hash of gdrive://<file id>>/<file id>``, through Drive's
  confirmation page for large files as gdown reads it; ``$AVDEMO_GDRIVE_URL`` replaces
  ``https://drive.google.com`` (tests: a local server);
- the Hub: huggingface_hub's cache (``$HF_HOME`` / ``$HF_HUB_CACHE``), or ``<cache_root()>/hub`` when
  ``$AVDEMO_CACHE`` is set; ``$HF_ENDPOINT`` picks the server.

A ``.safetensors`` reference brings its model card (the ``.json`` next to it) along. Nothing unusable is
kept: a download whose bytes are no checkpoint (``checkpoint_format``), or a ``.safetensors`` without a
valid card, is refused and removed.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

import httpx
from tqdm import tqdm

from .cache import atomic_write, cache_root, file_sha256
from .errors import AVDemoError

GDRIVE_URL = "https://drive.google.com"    # $AVDEMO_GDRIVE_URL replaces it
MAX_PAGE_BYTES = 2**20         # a Drive confirmation page is read up to this size
MAX_HEADER_BYTES = 100 * 2**20  # safetensors' own limit on its JSON header
DEFAULT_MAX_MB = 2048          # larger downloads are refused; $AVDEMO_MAX_DOWNLOAD_MB changes it
TIMEOUT_S = 30.0
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class CheckpointRef:
    """A parsed checkpoint reference."""

    kind: str                  # "path", "url", "hf" or "gdrive"
    location: str              # the path, the URL, the Hub repository id (owner/name) or the Drive file id
    filename: str = ""         # hf: the file's path inside the repository
    revision: str | None = None  # hf: branch, tag or commit (None: the default branch)
    sha256: str | None = None  # the weights file's pinned content hash

    @property
    def name(self) -> str:
        """The file name, for people (never a server folder)."""
        return Path(self.filename or self.location.split("?")[0]).name


def _gdrive_file_id(ref: str, text: str) -> str:
    """The file id of ``gdrive://<id>`` or of a Drive link (``/file/d/<id>/view``, ``open?id=<id>``,
    ``uc?id=<id>``: gdown's ``parse_url`` reads them)."""
    if text.startswith("gdrive://"):
        file_id = text.removeprefix("gdrive://")
    else:
        from gdown.parse_url import parse_url

        file_id = parse_url(text)[0] or ""
    if not re.fullmatch(r"[-\w]+", file_id):
        raise AVDemoError(f"{ref}: a Google Drive reference is a file's share link "
                          f"(https://drive.google.com/file/d/<id>/view) or gdrive://<file id>")
    return file_id


def parse_ref(ref: str | Path) -> CheckpointRef:
    """``path``, ``https://host/x.pth.tar``, ``hf://owner/repo/dir/x.pth.tar@rev``, a Drive share link or
    ``gdrive://<file id>``, each with an optional ``#sha256=...``."""
    text, sha256 = str(ref), None
    if "#" in text and not Path(text).exists():
        text, _, fragment = text.partition("#")
        key, _, value = fragment.partition("=")
        if key != "sha256" or not _SHA256.fullmatch(value.lower()):
            raise AVDemoError(f"{ref}: the part after '#' must be sha256=<64 hex digits>")
        sha256 = value.lower()
    if text.startswith("hf://"):
        rest = text.removeprefix("hf://")
        revision = None
        if "@" in rest:
            rest, revision = rest.rsplit("@", 1)
        parts = rest.split("/")
        if len(parts) < 3 or not all(parts) or revision == "":
            raise AVDemoError(f"{ref}: a Hub reference is hf://owner/repo/path/in/repo[@revision]")
        return CheckpointRef("hf", "/".join(parts[:2]), "/".join(parts[2:]), revision, sha256)
    if text.startswith("gdrive://") or (text.startswith(("https://", "http://"))
                                        and urlparse(text).hostname == "drive.google.com"):
        return CheckpointRef("gdrive", _gdrive_file_id(str(ref), text), sha256=sha256)
    if text.startswith(("https://", "http://")):
        return CheckpointRef("url", text, sha256=sha256)
    if "://" in text:
        raise AVDemoError(f"{ref}: unsupported scheme; use a local path, https://..., hf://owner/repo/file "
                          f"or gdrive://<file id>")
    return CheckpointRef("path", text, sha256=sha256)


def max_download_bytes() -> int:
    return int(float(os.environ.get("AVDEMO_MAX_DOWNLOAD_MB", DEFAULT_MAX_MB)) * 2**20)


def _check_sha256(path: Path, expected: str | None, label: str) -> None:
    if expected and (actual := file_sha256(path)) != expected:
        raise AVDemoError(f"{label}: sha256 mismatch: the file has {actual}, the reference pins {expected}")


def checkpoint_format(path: Path) -> str | None:
    """What a file holds, from its bytes (never its name): "safetensors" (a length, then a JSON header),
    "torch" (what ``torch.save`` writes: a zip archive, a pickle or an old tar archive), else None."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        header_len = int.from_bytes(head, "little") if len(head) == 8 else 0
        if 2 <= header_len <= min(size - 8, MAX_HEADER_BYTES):
            try:
                if isinstance(json.loads(f.read(header_len)), dict):
                    return "safetensors"
            except ValueError:
                pass
        f.seek(257)
        tar = f.read(5) == b"ustar"
    pickled = head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")
    return "torch" if head.startswith(b"PK\x03\x04") or pickled or tar else None


def check_checkpoint(path: Path, label: str) -> None:
    """Refuse a file whose bytes are no checkpoint (``checkpoint_format``)."""
    if checkpoint_format(path) is None:
        raise AVDemoError(f"{label}: not a checkpoint: its bytes are neither safetensors nor a PyTorch file")


def read_card(path: Path, label: str | None = None) -> dict:
    """A model card: a JSON object with a "config" object (the model's settings); a clear error naming
    the file (``label``, else its name) and what is wrong with it otherwise."""
    label = label or path.name
    try:
        card = json.loads(path.read_bytes())
    except (UnicodeDecodeError, ValueError) as e:
        raise AVDemoError(f"{label}: the model card is not valid JSON ({e})") from None
    if not isinstance(card, dict):
        raise AVDemoError(f"{label}: the model card must be a JSON object, not a {type(card).__name__}")
    if not isinstance(card.get("config"), dict):
        raise AVDemoError(f'{label}: the model card has no "config" object (the model\'s settings)')
    return card


def _looks_like_html(head: bytes) -> bool:
    return head.lstrip()[:15].lower().startswith((b"<!doctype html", b"<html"))


def _html_error(label: str) -> AVDemoError:
    return AVDemoError(f"{label}: the server sent an HTML page, not a checkpoint (a sharing or login page? "
                       f"use the file's direct download link)")


def _too_large(label: str, size: int, limit: int) -> AVDemoError:
    return AVDemoError(f"{label}: {size / 2**20:.1f} MB is over the download limit of {limit / 2**20:.0f} MB "
                       f"(set AVDEMO_MAX_DOWNLOAD_MB to allow more)")


def download(url: str, dest: Path, sha256: str | None = None, max_bytes: int | None = None,
             check: Callable[[Path, str], None] | None = None, label: str | None = None) -> Path:
    """Fetch ``url`` into ``dest`` atomically (progress on stderr); checks type, size, ``sha256`` and
    ``check(file, label)`` (raises when the bytes are unusable). Errors name ``label`` (default: the URL
    without its query). Nothing is left at ``dest`` when anything fails."""
    limit = max_download_bytes() if max_bytes is None else max_bytes
    label = label or url.split("?")[0]

    def write(tmp: Path) -> None:
        with httpx.stream("GET", url, follow_redirects=True, timeout=TIMEOUT_S) as response:
            if response.status_code != 200:
                raise AVDemoError(f"{label}: HTTP {response.status_code} {response.reason_phrase}")
            if "text/html" in response.headers.get("content-type", ""):
                raise _html_error(label)
            size = int(response.headers.get("content-length") or 0)
            if size > limit:
                raise _too_large(label, size, limit)
            digest, received = hashlib.sha256(), 0
            with open(tmp, "wb") as f, tqdm(total=size or None, unit="B", unit_scale=True,
                                            desc=f"downloading {dest.name}") as bar:
                for chunk in response.iter_bytes(1 << 20):
                    if received == 0 and _looks_like_html(chunk):
                        raise _html_error(label)
                    received += len(chunk)
                    if received > limit:
                        raise _too_large(label, received, limit)
                    digest.update(chunk)
                    f.write(chunk)
                    bar.update(len(chunk))
        if sha256 and digest.hexdigest() != sha256:
            raise AVDemoError(f"{label}: sha256 mismatch: downloaded {digest.hexdigest()}, the reference pins "
                              f"{sha256}; the file was not kept")
        if check is not None:
            check(tmp, label)

    try:
        atomic_write(dest, write)
    except httpx.TimeoutException:
        raise AVDemoError(f"{label}: the server did not answer within {TIMEOUT_S:.0f} s") from None
    except httpx.TransportError as e:
        raise AVDemoError(f"{label}: cannot connect ({type(e).__name__}); no network? A file downloaded once "
                          f"is reused from the cache without one") from None
    return dest


def _fetch_url(ref: CheckpointRef, max_bytes: int | None) -> Path:
    folder = cache_root() / "downloads" / hashlib.sha256(ref.location.encode()).hexdigest()[:16]
    weights = folder / ref.name
    if weights.exists():
        _check_sha256(weights, ref.sha256, ref.location)
    else:
        download(ref.location, weights, ref.sha256, max_bytes, check=check_checkpoint)
    card = weights.with_suffix(".json")
    if weights.suffix == ".safetensors" and not card.exists():
        base, _, query = ref.location.partition("?")
        card_url = base[: -len(".safetensors")] + ".json" + (f"?{query}" if query else "")
        try:
            download(card_url, card, max_bytes=max_bytes, check=read_card)
        except AVDemoError as e:
            weights.unlink()
            raise AVDemoError(f"{e}; {weights.name} is unusable without its model card, so neither file was "
                              f"kept") from None
    return weights


def _gdrive_file_url(file_id: str, label: str) -> str:
    """The URL that serves a Drive file's bytes, as gdown finds it: Drive's download link when it answers
    with the file (a Content-Disposition, or anything but HTML), else the link of the confirmation page
    that Drive shows for files too large to scan for viruses (gdown's parser reads its form and token)."""
    from gdown.download import get_url_from_gdrive_confirmation
    from gdown.exceptions import FileURLRetrievalError

    url = f"{os.environ.get('AVDEMO_GDRIVE_URL') or GDRIVE_URL}/uc?id={file_id}&export=download"
    try:
        with httpx.stream("GET", url, follow_redirects=True, timeout=TIMEOUT_S) as response:
            if response.status_code == 404:
                raise AVDemoError(f"{label}: no such file on Google Drive (HTTP 404); check the file id")
            if response.status_code != 200:
                raise AVDemoError(f"{label}: Google Drive answered HTTP {response.status_code} "
                                  f"{response.reason_phrase}")
            html = "text/html" in response.headers.get("content-type", "")
            if "content-disposition" in response.headers or not html:
                return str(response.url)
            page = b""
            for chunk in response.iter_bytes():
                page += chunk
                if len(page) > MAX_PAGE_BYTES:
                    raise _html_error(label)
    except httpx.TimeoutException:
        raise AVDemoError(f"{label}: Google Drive did not answer within {TIMEOUT_S:.0f} s") from None
    except httpx.TransportError as e:
        raise AVDemoError(f"{label}: cannot connect to Google Drive ({type(e).__name__}); no network? A file "
                          f"downloaded once is reused without one") from None
    try:
        return get_url_from_gdrive_confirmation(page.decode("utf-8", "replace"))
    except FileURLRetrievalError as e:
        reason = ("it is not shared publicly (share it with 'Anyone with the link'), or its download quota is "
                  "used up (try again later)" if "Cannot retrieve the public link" in str(e) else str(e))
        raise AVDemoError(f"{label}: Google Drive sent a page, not the file: {reason}") from None


def _check_drive_checkpoint(path: Path, label: str) -> None:
    """A Drive file must be a PyTorch checkpoint: a safetensors file needs its model card next to it,
    which Drive cannot give (put ours on the Hub or behind a URL)."""
    check_checkpoint(path, label)
    if checkpoint_format(path) == "safetensors":
        raise AVDemoError(f"{label}: a safetensors file needs its model card next to it, which a Drive link "
                          f"cannot give; use an https:// or hf:// reference for our checkpoints")


def _fetch_gdrive(ref: CheckpointRef, max_bytes: int | None) -> Path:
    label = f"gdrive://{ref.location}"
    weights = cache_root() / "downloads" / hashlib.sha256(label.encode()).hexdigest()[:16] / ref.location
    if weights.exists():
        _check_sha256(weights, ref.sha256, label)
        return weights
    return download(_gdrive_file_url(ref.location, label), weights, ref.sha256, max_bytes,
                    check=_check_drive_checkpoint, label=label)


def _fetch_hf(ref: CheckpointRef, max_bytes: int | None) -> Path:
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url
    from huggingface_hub.errors import (EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError,
                                        RepositoryNotFoundError, RevisionNotFoundError)

    endpoint = os.environ.get("HF_ENDPOINT")
    cache_dir = cache_root() / "hub" if os.environ.get("AVDEMO_CACHE") else None
    limit = max_download_bytes() if max_bytes is None else max_bytes
    hf_label = lambda filename: f"hf://{ref.location}/{filename}" + (f"@{ref.revision}" if ref.revision else "")
    label = hf_label(ref.filename)

    def fetch(filename: str) -> Path:
        label = hf_label(filename)
        kwargs = dict(repo_id=ref.location, filename=filename, revision=ref.revision, cache_dir=cache_dir,
                      endpoint=endpoint)
        try:
            try:
                meta = get_hf_file_metadata(hf_hub_url(ref.location, filename, revision=ref.revision,
                                                       endpoint=endpoint))
            except HfHubHTTPError:
                raise
            except Exception:  # noqa: BLE001 - no connection (the Hub client's own transport errors)
                return Path(hf_hub_download(**kwargs, local_files_only=True))    # offline: the cached copy
            if meta.size and meta.size > limit:
                raise _too_large(label, meta.size, limit)
            return Path(hf_hub_download(**kwargs))
        except LocalEntryNotFoundError:
            raise AVDemoError(f"{label}: cannot reach the Hub ({endpoint or 'huggingface.co'}) and the file "
                              f"is not in the cache yet; no network?") from None
        except (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError) as e:
            raise AVDemoError(f"{label}: not found on the Hub ({type(e).__name__}; a private or gated repository "
                              f"needs HF_TOKEN)") from None
        except HfHubHTTPError as e:
            raise AVDemoError(f"{label}: the Hub answered {str(e).splitlines()[0][:200]}") from None

    def forget(path: Path) -> None:
        """Remove a file from the Hub cache: its snapshot link and the blob it points to."""
        blob = path.resolve()
        path.unlink(missing_ok=True)
        blob.unlink(missing_ok=True)

    weights = fetch(ref.filename)
    try:
        _check_sha256(weights, ref.sha256, label)
        check_checkpoint(weights, label)
    except AVDemoError:
        forget(weights)
        raise
    if weights.suffix == ".safetensors":
        card_name = str(Path(ref.filename).with_suffix(".json"))
        try:
            card = fetch(card_name)
        except AVDemoError as e:
            forget(weights)
            raise AVDemoError(f"{e}; {weights.name} is unusable without its model card, so it was not kept") from None
        try:
            read_card(card, hf_label(card_name))
        except AVDemoError as e:
            forget(weights)
            forget(card)
            raise AVDemoError(f"{e}; neither file was kept") from None
    return weights


def resolve_checkpoint(ref: str | Path, max_bytes: int | None = None) -> Path:
    """The local file of a checkpoint reference, downloading it first when it is remote."""
    parsed = parse_ref(ref)
    if parsed.kind == "url":
        return _fetch_url(parsed, max_bytes)
    if parsed.kind == "hf":
        return _fetch_hf(parsed, max_bytes)
    if parsed.kind == "gdrive":
        return _fetch_gdrive(parsed, max_bytes)
    path = Path(parsed.location)
    if path.is_file():
        _check_sha256(path, parsed.sha256, str(path))
    return path
