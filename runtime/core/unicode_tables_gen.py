"""Generates runtime/core/unicode_tables.cc: the Unicode data the CLIP tokenizer needs, as compact sorted ranges.

    pip install unicodedata2==16.0.0   # once, into the Python 3.11 environment
    python runtime/core/unicode_tables_gen.py [--out runtime/core/unicode_tables.cc]

The tables reproduce what Hugging Face tokenizers 0.23.3 (the backend of transformers' CLIPTokenizer) does, and
that library mixes three Unicode versions:

- its split regex runs on Oniguruma 6.9.10, whose \\p{L}, \\p{N} and \\s are Unicode 16.0: taken from
  unicodedata2 16.0.0 (the stdlib module of Python 3.11 is 14.0);
- its Lowercase normalizer is Rust's char::to_lowercase (Rust 1.99, Unicode 17.0): taken from Python's own
  str.lower() (14.0), plus LOWERCASE_SINCE_14, the mappings Unicode 15.0-17.0 added;
- its NFC normalizer (the unicode-normalization-alignments crate) has Unicode 9.0 tables: taken from
  unicodedata2 16.0.0 minus NFC_UNKNOWN_TO_TOKENIZERS, the characters with normalization data (a canonical
  decomposition or a non-zero combining class) assigned in Unicode 10.0-16.0.

The two hand-kept lists were checked code point by code point against tokenizers 0.23.3
(tests/python/test_clip_tokenizer.py keeps checking every code point).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import unicodedata
from collections.abc import Callable, Iterable
from pathlib import Path

try:
    import unicodedata2 as ucd  # type: ignore[import-not-found, unused-ignore]
except ImportError:  # pragma: no cover - a developer tool
    sys.exit("unicode_tables_gen.py needs unicodedata2 16.0.0: pip install unicodedata2==16.0.0")

UCD_VERSION = "16.0.0"  # Oniguruma 6.9.10's
PYTHON_UCD_VERSION = "14.0.0"  # Python 3.11's str.lower()

# Simple lowercase mappings of characters added in Unicode 15.0-17.0 (UnicodeData.txt field 13), as
# (first, last, offset): every code point in [first, last] lowercases to itself + offset.
LOWERCASE_SINCE_14: list[tuple[int, int, int]] = [
    (0x1C89, 0x1C89, 1),  # CYRILLIC CAPITAL LETTER TJE
    (0xA7CB, 0xA7CB, 0x0264 - 0xA7CB),  # LATIN CAPITAL LETTER RAMS HORN
    (0xA7CC, 0xA7CC, 1),
    (0xA7CE, 0xA7CE, 1),
    (0xA7D2, 0xA7D2, 1),
    (0xA7D4, 0xA7D4, 1),
    (0xA7DA, 0xA7DA, 1),
    (0xA7DC, 0xA7DC, 0x019B - 0xA7DC),  # LATIN CAPITAL LETTER LAMBDA WITH STROKE
    (0x10D50, 0x10D65, 0x20),  # Garay
    (0x16EA0, 0x16EB8, 0x1B),  # Beria Erfe
]

# Code points whose normalization data is newer than tokenizers' NFC tables (Unicode 9.0): NFC leaves them
# alone there, so it does here.
NFC_UNKNOWN_TO_TOKENIZERS: list[tuple[int, int]] = [
    (0x07FD, 0x07FD), (0x0897, 0x089F), (0x08CA, 0x08D3), (0x09FE, 0x09FE), (0x0C3C, 0x0C3C),
    (0x0D3B, 0x0D3C), (0x0EBA, 0x0EBA), (0x1715, 0x1715), (0x1ABF, 0x1ACE), (0x1DF6, 0x1DFA),
    (0xA82C, 0xA82C), (0x105C9, 0x105C9), (0x105E4, 0x105E4), (0x10D24, 0x10D27), (0x10D69, 0x10D6D),
    (0x10EAB, 0x10EAC), (0x10EFD, 0x10EFF), (0x10F46, 0x10F50), (0x10F82, 0x10F85), (0x11070, 0x11070),
    (0x1133B, 0x1133B), (0x11383, 0x11383), (0x11385, 0x11385), (0x1138E, 0x1138E), (0x11391, 0x11391),
    (0x113C5, 0x113C5), (0x113C7, 0x113C8), (0x113CE, 0x113D0), (0x1145E, 0x1145E), (0x11839, 0x1183A),
    (0x11938, 0x11938), (0x1193D, 0x1193E), (0x11943, 0x11943), (0x119E0, 0x119E0), (0x11A34, 0x11A34),
    (0x11A47, 0x11A47), (0x11A99, 0x11A99), (0x11D42, 0x11D42), (0x11D44, 0x11D45), (0x11D97, 0x11D97),
    (0x11F41, 0x11F42), (0x16121, 0x16128), (0x1612F, 0x1612F), (0x16D68, 0x16D6A), (0x16FF0, 0x16FF1),
    (0x1E08F, 0x1E08F), (0x1E130, 0x1E136), (0x1E2AE, 0x1E2AE), (0x1E2EC, 0x1E2EF), (0x1E4EC, 0x1E4EF),
    (0x1E5EE, 0x1E5EF),
]  # fmt: skip

HANGUL_FIRST, HANGUL_LAST = 0xAC00, 0xD7A3  # composed algorithmically, not tabled
CODE_POINTS = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]


def ranges(members: Iterable[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for c in sorted(members):
        if out and out[-1][1] == c - 1:
            out[-1] = (out[-1][0], c)
        else:
            out.append((c, c))
    return out


def in_ranges(c: int, spans: list[tuple[int, int]]) -> bool:
    return any(a <= c <= b for a, b in spans)


def category_ranges(keep: Callable[[str], bool]) -> list[tuple[int, int]]:
    return ranges(c for c in CODE_POINTS if keep(ucd.category(chr(c))))


def lowercase_map() -> dict[int, str]:
    out = {c: chr(c).lower() for c in CODE_POINTS if chr(c).lower() != chr(c)}
    for first, last, offset in LOWERCASE_SINCE_14:
        for c in range(first, last + 1):
            assert c not in out, f"U+{c:04X} already lowercases in Python {PYTHON_UCD_VERSION}"
            out[c] = chr(c + offset)
    return out


def lowercase_ranges(mapping: dict[int, str]) -> list[tuple[int, int, int, int]]:
    """Single code point mappings as (first, last, stride, offset) runs with disjoint spans."""
    runs: list[tuple[int, int, int, int]] = []
    for c in sorted(k for k, v in mapping.items() if len(v) == 1):
        offset = ord(mapping[c]) - c
        if runs:
            first, last, stride, run_offset = runs[-1]
            step = c - last
            if run_offset == offset and (step == stride or (first == last and step in (1, 2))):
                runs[-1] = (first, c, step, offset)
                continue
        runs.append((c, c, 1, offset))
    for (_, last, _, _), (first, _, _, _) in itertools.pairwise(runs):
        assert last < first
    return runs


def nfc_data() -> tuple[list[tuple[int, int, int]], dict[int, list[int]], list[tuple[int, int, int]]]:
    """(combining class ranges, full canonical decompositions, primary compositions) as tokenizers sees them."""
    known = [c for c in CODE_POINTS if not in_ranges(c, NFC_UNKNOWN_TO_TOKENIZERS)]
    ccc_runs: list[tuple[int, int, int]] = []
    for c in known:
        ccc = ucd.combining(chr(c))
        if not ccc:
            continue
        if ccc_runs and ccc_runs[-1][1] == c - 1 and ccc_runs[-1][2] == ccc:
            ccc_runs[-1] = (ccc_runs[-1][0], c, ccc)
        else:
            ccc_runs.append((c, c, ccc))
    decompositions: dict[int, list[int]] = {}
    compositions: list[tuple[int, int, int]] = []
    for c in known:
        if HANGUL_FIRST <= c <= HANGUL_LAST:
            continue
        nfd = ucd.normalize("NFD", chr(c))
        if nfd == chr(c):
            continue
        assert not any(in_ranges(ord(d), NFC_UNKNOWN_TO_TOKENIZERS) for d in nfd)
        decompositions[c] = [ord(d) for d in nfd]
        mapping = ucd.decomposition(chr(c)).split()
        # A primary composite: a canonical pair that NFC recomposes (not excluded, not a singleton).
        if len(mapping) == 2 and not mapping[0].startswith("<") and ucd.normalize("NFC", chr(c)) == chr(c):
            compositions.append((int(mapping[0], 16), int(mapping[1], 16), c))
    compositions.sort()
    return ccc_runs, decompositions, compositions


def rows(items: list[str], per_line: int) -> str:
    return "\n".join("    " + " ".join(items[i : i + per_line]) for i in range(0, len(items), per_line))


def table(ctype: str, name: str, items: list[str], per_line: int) -> str:
    return f"const {ctype} {name}[] = {{\n{rows(items, per_line)}\n}};\nconst size_t {name}Size = {len(items)};\n"


def generate() -> str:
    if ucd.unidata_version != UCD_VERSION:
        sys.exit(f"need unicodedata2 {UCD_VERSION} (Oniguruma's), found {ucd.unidata_version}")
    if unicodedata.unidata_version != PYTHON_UCD_VERSION:
        sys.exit(f"run with Python 3.11 (Unicode {PYTHON_UCD_VERSION} str.lower), found {unicodedata.unidata_version}")

    letters = category_ranges(lambda cat: cat.startswith("L"))
    numbers = category_ranges(lambda cat: cat.startswith("N"))
    spaces = ranges([*range(0x09, 0x0E), 0x85, *(c for c in CODE_POINTS if ucd.category(chr(c)) in ("Zs", "Zl", "Zp"))])
    lower = lowercase_map()
    lower_runs = lowercase_ranges(lower)
    lower_multi = sorted((c, [ord(x) for x in s]) for c, s in lower.items() if len(s) > 1)
    assert all(len(s) <= 3 for _, s in lower_multi)
    ccc_runs, decompositions, compositions = nfc_data()

    decomposition_entries: list[str] = []
    decomposition_data: list[str] = []
    for c, seq in sorted(decompositions.items()):
        decomposition_entries.append(f"{{0x{c:04X}, {len(decomposition_data)}, {len(seq)}}},")
        decomposition_data += [f"0x{d:04X}," for d in seq]
    assert len(decomposition_data) < 1 << 16

    def span(a: int, b: int) -> str:
        return f"{{0x{a:04X}, 0x{b:04X}}},"

    parts = [
        "// Generated by runtime/core/unicode_tables_gen.py; do not edit. Unicode data as Hugging Face tokenizers\n"
        f"// 0.23.3 uses it: categories {UCD_VERSION} (Oniguruma), lowercase 17.0 (Rust), NFC 9.0 (see the script).\n"
        "// clang-format off\n"
        '#include "core/unicode_tables.h"\n\n'
        "namespace lorarar::unicode_tables {\n",
        table("Range", "kLetters", [span(a, b) for a, b in letters], 5),
        table("Range", "kNumbers", [span(a, b) for a, b in numbers], 5),
        table("Range", "kWhitespace", [span(a, b) for a, b in spaces], 5),
        table(
            "LowercaseRange",
            "kLowercase",
            [f"{{0x{a:04X}, 0x{b:04X}, {s}, {o}}}," for a, b, s, o in lower_runs],
            4,
        ),
        table(
            "LowercaseSpecial",
            "kLowercaseSpecial",
            [f"{{0x{c:04X}, {{{', '.join(f'0x{x:04X}' for x in s)}}}}}," for c, s in lower_multi],
            2,
        ),
        table(
            "CombiningClassRange", "kCombiningClasses", [f"{{0x{a:04X}, 0x{b:04X}, {k}}}," for a, b, k in ccc_runs], 4
        ),
        table("Decomposition", "kDecompositions", decomposition_entries, 5),
        table("uint32_t", "kDecompositionData", decomposition_data, 10),
        table("Composition", "kCompositions", [f"{{0x{a:04X}, 0x{b:04X}, 0x{c:04X}}}," for a, b, c in compositions], 4),
        "}  // namespace lorarar::unicode_tables\n// clang-format on\n",
    ]
    return "\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("unicode_tables.cc"))
    args = parser.parse_args()
    args.out.write_text(generate())
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
