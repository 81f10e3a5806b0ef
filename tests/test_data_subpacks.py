"""The share-alike and GPL sub-packs, distinct-recording counts and the faint-event check."""
from __future__ import annotations

import io
import zipfile

import numpy as np
import soundfile as sf

from avdemo.data.build_pack import PACK_DIR, PackWriter, add_recordings
from avdemo.data.catalog import Media, read_manifest
from avdemo.data.game_sounds import CUTS_PER_RECORDING, WIDELANDS, ZERO_AD_ANIMAL, ZERO_AD_ZIP
from avdemo.data.pack_docs import LICENCE_FILES, SUBPACK_LICENCES, coverage
from avdemo.data.sound_checks import EventCheck, event_stats, keep_event
from avdemo.data.sources import GPL, SHARE_ALIKE, SOURCES

RATE = 16000


def _ogg(seconds: float, freq: float, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 22050)) / 22050
    wav = (0.4 * np.sin(2 * np.pi * freq * t) * np.hanning(len(t)) + 0.002 * rng.standard_normal(len(t)))
    buf = io.BytesIO()
    sf.write(buf, wav.astype(np.float32), 22050, format="OGG", subtype="VORBIS")
    return buf.getvalue()


def test_committed_subpacks_hold_their_licences_copyright_files_and_only_their_media():
    rows = read_manifest()
    subpack_of = {s.package: s.subpack for s in SOURCES.values()}
    for subpack, licences in SUBPACK_LICENCES.items():
        names = {p.name for p in (PACK_DIR / subpack).iterdir()}
        assert set(licences) | {"ATTRIBUTION.md"} <= names, subpack
        keys = [k for k, s in SOURCES.items() if s.subpack == subpack]
        assert {f"COPYRIGHT-{k}.txt" for k in keys} <= names
        for m in rows:
            inside = m.file.startswith(f"{subpack}/")
            assert inside == (subpack_of[m.package] == subpack), m.file
    assert "LICENSE-CC-BY-SA-3.0.txt" not in {p.name for p in PACK_DIR.iterdir()}
    for m in rows:                                         # share-alike only in its sub-pack, a licence per file
        assert m.share_alike == m.file.startswith(f"{SHARE_ALIKE}/"), m.file
        assert m.licence in LICENCE_FILES or m.package in ("openclipart-svg", "fonts-symbola"), m.file
    assert "share-alike" in (PACK_DIR / "ATTRIBUTION.md").read_text().lower()


def test_coverage_counts_distinct_recordings_not_files():
    def sound(file, package, recording):
        return Media(file, f"{file}.ogg", "dog", "sound", package, recording=recording)
    media = [sound("a", "gm", "FluidR3 bank 0 program 40"), sound("b", "gm", "FluidR3 bank 0 program 40"),
             sound("c", "0ad", "0ad-data: dog"), sound("d", "0ad", "0ad-data: dog"), sound("e", "tux", "")]
    c = coverage(media)["dog"]
    assert (c.sounds, c.sound_sources, c.sound_files) == (3, 3, 5)


def test_committed_pack_counts():
    counts = coverage(read_manifest())           # 32: the target of 35 is not met (see README)
    assert sum(c.sounds >= 3 and c.sound_sources >= 2 for c in counts.values()) >= 32
    size = sum(p.stat().st_size for p in PACK_DIR.rglob("*") if p.is_file())
    assert size <= 60 * 2 ** 20


def test_faint_event_in_an_ambience_is_cut_or_dropped_and_steady_sounds_and_clicks_are_kept():
    rng = np.random.default_rng(0)
    noise = 0.05 * rng.standard_normal(3 * RATE).astype(np.float32)
    event = noise.copy()
    t = np.arange(int(0.4 * RATE)) / RATE
    event[RATE: RATE + len(t)] += (0.12 * np.sin(2 * np.pi * 500 * t)).astype(np.float32)
    assert event_stats(event).faint(EventCheck())
    kept, note = keep_event(event)
    assert note and (kept is None or len(kept) < len(event))
    steady = (0.3 * np.sin(2 * np.pi * 220 * np.arange(3 * RATE) / RATE)).astype(np.float32) + noise
    assert keep_event(steady) == (steady, "")
    click = noise[: int(0.3 * RATE)]
    assert keep_event(click)[1] == ""


def _game_fixture(tmp_path):
    widelands = tmp_path / SOURCES["widelands-data"].folder
    (widelands / WIDELANDS / "farm").mkdir(parents=True)
    for k in range(CUTS_PER_RECORDING + 1):                # one cut too many: left out
        (widelands / WIDELANDS / f"farm/sheep_0{k}.ogg").write_bytes(_ogg(1.0, 300 + 50 * k, k))
    zero_ad = tmp_path / SOURCES["0ad-data"].folder
    (zero_ad / ZERO_AD_ZIP).parent.mkdir(parents=True)
    with zipfile.ZipFile(zero_ad / ZERO_AD_ZIP, "w") as archive:
        archive.writestr(ZERO_AD_ANIMAL + "cattle_01.ogg", _ogg(1.5, 150, 9))
        archive.writestr("audio/music/unused.ogg", _ogg(0.5, 440, 10))
    return {"widelands-data": widelands, "0ad-data": zero_ad}


def test_subset_rebuild_of_game_recordings_goes_into_the_subpacks_and_gives_the_same_bytes(tmp_path):
    roots = _game_fixture(tmp_path)
    built = []
    for run in ("a", "b"):
        out = tmp_path / run
        for sub in (f"{SHARE_ALIKE}/sounds", f"{GPL}/sounds"):
            (out / sub).mkdir(parents=True)
        writer = PackWriter(out)
        add_recordings(writer, roots)
        built.append({r["file"]: (out / r["file"]).read_bytes() for r in writer.rows})
        rows = writer.rows
    assert built[0] == built[1]
    files = sorted(built[0])
    assert files == [f"{GPL}/sounds/widelands_sheep_{k}.ogg" for k in range(CUTS_PER_RECORDING)] + \
        [f"{SHARE_ALIKE}/sounds/0ad_cattle_0.ogg"]
    by_file = {r["file"]: r for r in rows}
    assert by_file[f"{SHARE_ALIKE}/sounds/0ad_cattle_0.ogg"]["licence"] == "CC-BY-SA-3.0"
    assert {r["recording"] for r in rows if r["package"] == "widelands-data"} == {"widelands-data: sheep"}
    wav, rate = sf.read(tmp_path / "a" / files[0])
    assert rate == RATE and wav.ndim == 1
