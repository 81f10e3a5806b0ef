"""Pictures from the emoji sets, game-icons, Openclipart and Symbola: which drawing shows which
category, and how each is rasterised to an RGBA PNG (``rsvg-convert`` for SVG, FreeType for Symbola).

Name traps are left out on purpose (see ../shared/docs/MEDIA-SOURCES.md): cat-face expressions, the
no-evil monkeys, the Streamline ``turkey`` (a flag), the ``cricket`` alias of ``cricket-game``, Symbola's
fireworks (a black square), road signs and flags. The guitar emoji is electric in most sets and acoustic
in FxEmoji and Streamline.
"""
from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from avdemo.errors import AVDemoError

RENDER_PX = 512
EMOJI_SETS = ("noto", "noto-v1", "twemoji", "fluent-emoji", "fluent-emoji-flat", "fluent-emoji-high-contrast",
              "emojione", "emojione-monotone", "fxemoji", "streamline-emojis")
ACOUSTIC_GUITAR_SETS = ("fxemoji", "streamline-emojis")
SET_EXCLUDES = {"streamline-emojis": ("turkey",)}
TRAP_PARENTS = ("cricket-game",)
OPENCLIPART_ICON_DIRS = ("computer/", "buttons/", "signs_and_symbols/", "logos/")   # looked in last

# Emoji names (Iconify / Noto spelling); matched in every set through their code points.
EMOJI: dict[str, tuple[str, ...]] = {
    "bear growling": ("bear", "polar-bear"),
    "bee, wasp, etc. buzzing": ("honeybee",),
    "bird chirping, tweeting": ("baby-chick", "bird", "dove", "front-facing-baby-chick", "hatching-chick"),
    "bird squawking": ("eagle", "flamingo", "parrot", "peacock"),
    "camel grunting": ("camel", "two-hump-camel"),
    "camera shutter clicking": ("camera", "camera-with-flash"),
    "cat meowing": ("cat", "black-cat"),
    "cattle mooing": ("bison", "cow", "cow-face", "ox", "water-buffalo"),
    "chicken clucking": ("chicken",),
    "chicken crowing": ("rooster",),
    "chimpanzee, gorilla hooting": ("gorilla", "monkey", "monkey-face", "orangutan"),
    "cricket chirping": ("cricket",),
    "crow cawing": ("black-bird",),
    "deer, elk bugling": ("deer", "moose"),
    "dog, fox barking": ("dog", "dog-face", "fox", "guide-dog", "poodle", "service-dog"),
    "donkey, zebra braying": ("donkey", "zebra"),
    "duck, goose quacking": ("duck", "goose"),
    "elephant trumpeting": ("elephant", "mammoth"),
    "fire truck siren": ("fire-engine", "oncoming-fire-engine"),
    "fireworks banging": ("firecracker", "fireworks", "sparkler"),
    "frog croaking": ("frog",),
    "goat bleating": ("goat",),
    "hammering": ("hammer", "hammer-and-pick", "hammer-and-wrench"),
    "helicopter": ("helicopter",),
    "hippopotamus grunting": ("hippopotamus",),
    "horse neighing": ("horse", "horse-face"),
    "koala bellowing": ("koala",),
    "lion, tiger roaring": ("lion", "tiger", "tiger-face"),
    "mouse squeaking": ("mouse", "mouse-face", "rat"),
    "owl hooting": ("owl",),
    "penguins braying": ("penguin",),
    "people eating apple": ("green-apple", "red-apple"),
    "pig oinking": ("boar", "pig", "pig-face", "pig-nose"),
    "playing trumpet": ("trumpet",),
    "playing violin, fiddle": ("violin",),
    "playing drum kit": ("drum",),
    "race car, auto racing": ("racing-car",),
    "sawing wood": ("carpentry-saw",),
    "scissors cutting": ("scissors",),
    "sea lion barking": ("seal",),
    "sheep bleating": ("ewe", "ram", "sheep"),
    "squirrel chattering": ("chipmunk",),
    "thunder": ("cloud-with-lightning", "cloud-with-lightning-and-rain"),
    "turkey gobbling": ("turkey",),
    "whale, dolphin calling": ("dolphin", "orca", "spouting-whale", "whale"),
}
GUITAR = "guitar"
SYMBOLA_SKIP = ("fireworks",)

GAME_ICONS: dict[str, tuple[str, ...]] = {
    "bear growling": ("bear-face", "bear-head", "polar-bear"),
    "bee, wasp, etc. buzzing": ("bee", "wasp-sting"),
    "bird chirping, tweeting": ("bird-twitter", "dove", "hummingbird", "nest-birds"),
    "bird squawking": ("eagle-head", "flamingo", "parrot-head"),
    "camel grunting": ("camel", "camel-head"),
    "camera shutter clicking": ("photo-camera",),
    "cat meowing": ("cat",),
    "cattle mooing": ("bison", "buffalo-head", "charging-bull", "cow"),
    "chicken clucking": ("chicken",),
    "chicken crowing": ("rooster",),
    "chimpanzee, gorilla hooting": ("gorilla", "monkey"),
    "cricket chirping": ("cricket",),
    "crow cawing": ("crow-dive", "raven"),
    "cuckoo bird calling": ("cuckoo-clock",),
    "deer, elk bugling": ("deer", "deer-head", "stag-head"),
    "dog, fox barking": ("basset-hound-head", "fox", "fox-head", "jumping-dog", "sitting-dog", "sniffing-dog"),
    "donkey, zebra braying": ("donkey",),
    "duck, goose quacking": ("canadian-goose", "duck", "goose"),
    "elephant trumpeting": ("elephant", "elephant-head", "mammoth"),
    "fireworks banging": ("firework-rocket",),
    "frog croaking": ("frog",),
    "goat bleating": ("goat",),
    "hammering": ("claw-hammer", "flat-hammer", "hammer-nails"),
    "helicopter": ("helicopter",),
    "horse neighing": ("horse-head",),
    "koala bellowing": ("koala",),
    "lion, tiger roaring": ("lion", "tiger", "tiger-head"),
    "mouse squeaking": ("mouse", "rat", "seated-mouse"),
    "owl hooting": ("barn-owl", "owl"),
    "penguins braying": ("penguin",),
    "people eating apple": ("shiny-apple",),
    "pig oinking": ("boar", "pig", "pig-face"),
    "playing bass guitar": ("guitar-bass-head",),
    "playing bassoon": ("bassoon",),
    "playing drum kit": ("drum", "drum-kit"),
    "playing electric guitar": ("guitar",),
    "playing trumpet": ("trumpet",),
    "playing violin, fiddle": ("violin",),
    "race car, auto racing": ("race-car",),
    "rubber duck squeaking": ("plastic-duck",),
    "sawing wood": ("crosscut-saw", "hand-saw"),
    "scissors cutting": ("scissors",),
    "sea lion barking": ("juggling-seal",),
    "sheep bleating": ("sheep",),
    "squirrel chattering": ("squirrel",),
    "whale, dolphin calling": ("dolphin", "sperm-whale", "whale-tail"),
}

# Openclipart file names (without .svg), looked up anywhere in the package (icon folders last).
OPENCLIPART: dict[str, tuple[str, ...]] = {
    "bear growling": ("bear_peterm_01", "orso_architetto_francesc_01", "orso_architetto_francesc_02",
                      "orso_architetto_francesc_03", "orso_architetto_francesc_04", "ours_etienne_bersac_r"),
    "bee, wasp, etc. buzzing": ("abeille_tanguy_jacq_01", "bee", "bee1_mimooh_01", "bee2_mimooh_01", "bee3_mimooh_01",
                                "flying_wasp_gerald_g._01"),
    "bird chirping, tweeting": ("bird_of_peace_mauro_oliv_01", "dove_symbol", "stormo_di_uccelli_archit_01",
                                "uccello_bianco_e_nero_ar_01", "uccello_profilo_01_archi_01",
                                "uccello_profilo_02_archi_01"),
    "bird squawking": ("acquila_architetto_franc_01", "acquila_architetto_franc_02", "acquila_architetto_franc_03",
                       "acquila_architetto_franc_04", "aquila_frontale_architet_01", "eagle_01",
                       "flamand_bw_jean-victor_b_01",
                       "flamand_jean-victor_bali_01", "gabbiano_architetto_fran_01", "gull_marcelo_staudt_01",
                       "seagull_contour_nicu_buc_01", "seagull_nicu_buculei_01", "gabbiano_piccolo"),
    "camel grunting": ("camel_head_01", "contour_camel", "cammello"),
    "camera shutter clicking": ("digital-camera_aj_ashton_01", "digital_camera_nicu_bucu_01",
                                "camera_michael_tunniclif_01"),
    "cat meowing": ("cartoon_cat_gerald_g._01", "gattina_cat_architetto_f_01", "gatto_cat_architetto_fra_01",
                    "gatto_cat_architetto_fra_02", "gatto_cat_architetto_fra_03", "gatto_cat_architetto_fra_04",
                    "gatto_nero_architetto_fr_01", "kitten_gerald_g._01", "sleeping_cat_rgolan_sup_r",
                    "sleeping_cat_ron_golan_01"),
    "cattle mooing": ("bison_leif_lodahl_01", "bull_utrescu_", "vacca_pezzata_rossa_val_01", "mucca"),
    "chicken clucking": ("hen_01", "pollo_architetto_frances_01"),
    "chicken crowing": ("gallo_di_profilo_archite_01", "rooster_01"),
    "chimpanzee, gorilla hooting": ("angry_monkey_benji_park_01", "contour_baboon", "contour_orangutan",
                                    "crazy_monkey_shandy_brow_01", "happy_monkey_benji_park_01",
                                    "monkey_head_nicu_buculei_01", "sailor_monkey_nicu_bucul_01"),
    "cricket chirping": ("cavalletta_architetto_fr_01", "grass_hopper_02"),
    "crow cawing": ("crow_01",),
    "deer, elk bugling": ("deer_matt_todd_01", "fawn_mo_01"),
    "dog, fox barking": ("contour_fox", "dog_01_drawn_with_strai_01", "dog_01_drawn_with_strai_02",
                         "dog_02_drawn_with_strai_01", "dog_03_drawn_with_strai_01", "dog_04_drawn_with_strai_01",
                         "dog_05_drawn_with_strai_01", "dog_06_drawn_with_strai_01", "dog_on_leash_gerald_g._01",
                         "dog_on_leash_gerald_g._02", "beagle_copper_ganson", "black_lab_ganson",
                         "bobi_architetto_francesc_01", "bored_dog_01", "bulldog_puppy_ganson",
                         "dog_head_nicu_buculei_01", "dog_head_nicu_buculei_02", "chodovian_39_s_dog_by_m_01"),
    "duck, goose quacking": ("duck_yellow_ii_kurt_cagl_", "duck_yellow_kurt_cagle_", "jonathon_s_duck_01", "Anatra",
                             "papera"),
    "elephant trumpeting": ("contour_elephant", "elefante01_architetto_fr_01", "elefante02_architetto_fr_01",
                            "elephant_01", "elephant_outline_matthe_r", "elephant_symbol_ganson", "elefante_in_corsa"),
    "frog croaking": ("rana01_architetto_france_01", "rana02_architetto_france_01", "rana03_architetto_france_01",
                      "rana_architetto_francesc_01", "red-eye_frog_mirko_maisc_01"),
    "goat bleating": ("goat_nicu_buculei_01",),
    "hammering": ("blacksmith_hammer_ganson", "construction_hammer_jon__01", "hammer_nicu_buculei_01",
                  "hammer_peterm1"),
    "horse neighing": ("cavallo_architetto_franc_01", "cavallo_architetto_franc_02", "cavallo_architetto_franc_03",
                       "cavallo_architetto_franc_04", "cavallo_architetto_franc_05", "cavallo_architetto_franc_06",
                       "cavallo_architetto_franc_07", "horse_2_konstantin_r._01"),
    "lion, tiger roaring": ("b_w_tiger_susan_park_01", "color_tiger_susan_park_01", "leone_01_architetto_fran_01",
                            "leone_02_architetto_fran_01", "leone_architetto_frances_01", "tiger_graig_ryan_smith_-_01",
                            "tigre01_architetto_franc_01", "tigre02_architetto_franc_01", "tigre03_architetto_franc_01",
                            "tigre04_architetto_franc_01", "tigre05_architetto_franc_01"),
    "mouse squeaking": ("contour_hamster", "topo_architetto_francesc_01"),
    "owl hooting": ("gufo_civetta_architetto__01", "owl_on_branch_ganson"),
    "penguins braying": ("emperor_penguin_ralf_ste_01", "new_penguin_charles_mcco_01", "pinguino_col_piccolo_arc_01",
                         "Pinguino1", "Pinguino2", "Pinguino3", "Pinguino4"),
    "people eating apple": ("apple_bitten_dan_gerhard_01", "apple_with_worm_dan_gerh_01", "an_apple_01",
                            "another_apple_01",
                            "apple", "apple_bw", "apple_core_01", "apple_martin_schmidt-li_01r", "apple_wedge",
                            "apple_wedge_bw", "cartoon_apple_k_yager_01"),
    "pig oinking": ("a_simple_pig_01", "pig_marcelo_caiafa1", "porcinet_01"),
    "playing acoustic guitar": ("guitar_ganson", "guitar_jarno_vasamaa1", "guitar_profile_philippe__01"),
    "playing bass guitar": ("bass_guitar_a.j._ashton_",),
    "playing cello": ("cello_ganson", "cello_mo_01", "cello_mo_02"),
    "playing drum kit": ("drums_jarno_vasamaa_",),
    "playing electric guitar": ("electric_guitar_andrea__01r", "guitar_jarno_vasamaa2"),
    "playing trumpet": ("trumpet_b_flat__ganson", "trumpet_b_flat_colour_ganso", "trumpet_herald__ganson",
                        "trumpet_pocket__ganson", "trumpet_pocket_colour_ganso"),
    "playing violin, fiddle": ("violin_colour_ganson", "violin_ganson", "violin_mo_01"),
    "race car, auto racing": ("formula_one_car_gerald_g_01",),
    "rubber duck squeaking": ("rubber_duck1_ganson", "rubber_duck2_ganson", "rubber_ducks_ganson"),
    "sawing wood": ("saw_peterm_", "utensile_sega_architetto_01", "sega_per_legno"),
    "scissors cutting": ("scissors", "scissors_02", "scissors_01", "scissors_forbici_franc_", "forbici_e_pettine_sci_"),
    "sea lion barking": ("seal",),
    "sheep bleating": ("dall_sheep_ram_ganson", "pecora_architetto_france_01", "sheep-md-v0.1", "pecorella"),
    "squirrel chattering": ("cartoon_squirrel_mike_sm1", "contour_chipmunk"),
    "thunder": ("storm",),
    "turkey gobbling": ("tacchino_architetto_fran_01",),
    "whale, dolphin calling": ("bluewhale-md", "dolphin", "dolphin_01", "dolphin_enrique_meza_c_01",
                               "dolphin_enrique_meza_c_02", "orca_matthew_gates_r"),
}


@dataclass(frozen=True)
class Drawing:
    """A picture to rasterise: ``svg`` text (or ``glyph`` for Symbola), with its provenance."""
    category: str
    style: str                      # emoji set name, game-icons, openclipart, symbola
    original: str                   # icon name / file path / code point
    author: str = ""
    svg: str = ""
    glyph: str = ""


class IconSet:
    """An unpacked ``@iconify-json/*`` package: icons, aliases and the code point map."""

    def __init__(self, root: Path):
        package = root / "package"
        data = json.loads((package / "icons.json").read_text())
        self.icons: dict = data["icons"]
        self.aliases: dict = data.get("aliases", {})
        self.size = (data.get("width", 16), data.get("height", 16))
        chars = package / "chars.json"
        self.chars = {_strip_fe0f(k): v for k, v in json.loads(chars.read_text()).items()} if chars.is_file() else {}

    def parent(self, name: str) -> str | None:
        """The icon a name or alias resolves to, or None when the set has neither."""
        for _ in range(8):
            if name in self.icons:
                return name
            if name not in self.aliases:
                return None
            name = self.aliases[name]["parent"]
        return None

    def svg(self, name: str) -> str:
        icon = self.icons[name]
        width, height = icon.get("width", self.size[0]), icon.get("height", self.size[1])
        left, top = icon.get("left", 0), icon.get("top", 0)
        body = icon["body"].replace("currentColor", "#000000")
        return (f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
                f'viewBox="{left} {top} {width} {height}" width="{width}" height="{height}">{body}</svg>')


def _strip_fe0f(code: str) -> str:
    return "-".join(p for p in code.lower().split("-") if p != "fe0f")


def code_points(sets: dict[str, IconSet]) -> dict[str, set[str]]:
    """Emoji name -> its code points, from every set's ``chars.json`` (spelling differs between sets)."""
    points: dict[str, set[str]] = {}
    for icon_set in sets.values():
        for code, name in icon_set.chars.items():
            points.setdefault(name, set()).add(code)
    return points


def emoji_names(category: str, set_name: str) -> tuple[str, ...]:
    """The emoji names that show ``category`` in ``set_name`` (the guitar depends on the set)."""
    names = EMOJI.get(category, ())
    acoustic = set_name in ACOUSTIC_GUITAR_SETS
    if category == ("playing acoustic guitar" if acoustic else "playing electric guitar"):
        names = names + (GUITAR,)
    return tuple(n for n in names if n not in SET_EXCLUDES.get(set_name, ()))


def emoji_drawings(set_name: str, icon_set: IconSet, points: dict[str, set[str]], author: str) -> list[Drawing]:
    """Every matching icon of one emoji set (pose variants ``<name>-1``, ``-2`` included), each once."""
    drawings, seen = [], set()
    for category in sorted(set(EMOJI) | {"playing acoustic guitar", "playing electric guitar"}):
        for name in emoji_names(category, set_name):
            candidates = [name] + [icon_set.chars[c] for c in sorted(points.get(name, ())) if c in icon_set.chars]
            candidates += [f"{c}-{k}" for c in candidates[:1] for k in (1, 2, 3)]
            for candidate in candidates:
                parent = icon_set.parent(candidate)
                if parent is None or parent in seen or parent in TRAP_PARENTS:
                    continue
                seen.add(parent)
                drawings.append(Drawing(category, set_name, parent, author, svg=icon_set.svg(parent)))
    return drawings


def game_icon_drawings(icon_set: IconSet, author: str) -> list[Drawing]:
    drawings = []
    for category, names in sorted(GAME_ICONS.items()):
        for name in names:
            if icon_set.parent(name) is None:
                raise AVDemoError(f"game-icons has no icon {name!r} (pinned version changed?)")
            drawings.append(Drawing(category, "game-icons", name, author, svg=icon_set.svg(icon_set.parent(name))))
    return drawings


def openclipart_author(svg_text: str) -> str:
    """The ``dc:creator`` title of an Openclipart SVG, or ``unknown``."""
    match = re.search(r"<dc:creator>.*?<dc:title>(.*?)</dc:title>", svg_text, re.S)
    return match.group(1).strip() if match and match.group(1).strip() else "unknown"


def openclipart_drawings(root: Path) -> list[Drawing]:
    """The listed Openclipart drawings, found by file name (outside the icon folders where possible)."""
    svg_root = root / "usr/share/openclipart/svg"
    by_name: dict[str, Path] = {}
    paths = sorted(svg_root.rglob("*.svg"))
    for path in sorted(paths, key=lambda p: (str(p.relative_to(svg_root)).startswith(OPENCLIPART_ICON_DIRS), p)):
        by_name.setdefault(path.stem, path)
    drawings = []
    for category, stems in sorted(OPENCLIPART.items()):
        for stem in stems:
            if stem not in by_name:
                raise AVDemoError(f"openclipart-svg has no drawing {stem}.svg (pinned version changed?)")
            text = by_name[stem].read_text(errors="replace")
            drawings.append(Drawing(category, "openclipart", str(by_name[stem].relative_to(root)),
                                    openclipart_author(text), svg=text))
    return drawings


def symbola_drawings(font: Path, points: dict[str, set[str]]) -> list[Drawing]:
    """Symbola glyphs for the single-code-point emoji names the font covers."""
    from fontTools.ttLib import TTFont

    cmap = TTFont(font).getBestCmap()
    drawings, seen = [], set()
    for category in sorted(set(EMOJI) | {"playing electric guitar"}):
        for name in emoji_names(category, "symbola"):
            if name in SYMBOLA_SKIP:
                continue
            for code in sorted(points.get(name, ())):
                if "-" in code or int(code, 16) not in cmap or code in seen:
                    continue
                seen.add(code)
                drawings.append(Drawing(category, "symbola", f"U+{code.upper()} {name}", glyph=chr(int(code, 16))))
    return drawings


def rasterise(drawing: Drawing, dst: Path, font: Path | None = None) -> None:
    """Write ``drawing`` as an RGBA PNG about RENDER_PX on its long side (before cropping)."""
    if drawing.glyph:
        if font is None:
            raise AVDemoError("a Symbola glyph needs the font path")
        face = ImageFont.truetype(str(font), RENDER_PX // 2)
        image = Image.new("RGBA", (RENDER_PX, RENDER_PX), (0, 0, 0, 0))
        ImageDraw.Draw(image).text((RENDER_PX // 8, RENDER_PX // 8), drawing.glyph, font=face, fill=(0, 0, 0, 255))
        image.save(dst)
        return
    subprocess.run(["rsvg-convert", "-a", "-w", str(RENDER_PX), "-h", str(RENDER_PX), "-o", str(dst)],
                   input=drawing.svg.encode(), check=True, capture_output=True)
