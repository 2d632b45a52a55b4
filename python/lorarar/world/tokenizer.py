"""The default world's tokenizer files, in CLIP's BPE format (vocab.json + merges.txt).

Same layout as openai/clip-vit-large-patch14's tokenizer: byte-level symbols (each byte and each byte + "</w>"),
then one token per merge, then <|startoftext|> and <|endoftext|>; prompts pad to 77 tokens. The merges make
every word of the world's captions a single token; any other text still tokenizes, byte by byte.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from lorarar.world.catalog import CONTENT_TOKEN, STYLE_TOKEN
from lorarar.world.subjects import CLASSES

PATTERN_WORDS = {
    "solid": "plain",
    "hstripes": "striped",
    "vstripes": "barred",
    "diagonal": "slanted",
    "dots": "dotted",
    "checker": "checkered",
    "rings": "ringed",
    "gradient": "faded",
}
COLOR_WORDS = ["red", "orange", "yellow", "green", "teal", "blue", "purple", "pink", "brown", "white", "gray", "black"]
BACKDROP_WORDS = {
    "solid": "plain",
    "vgradient": "fading",
    "radial": "glowing",
    "grid": "grid",
    "dots": "spotted",
    "stripes": "streaked",
    "speckle": "speckled",
    "horizon": "horizon",
}
WORDS = [
    "a",
    "an",
    "the",
    "of",
    "in",
    "on",
    "with",
    "and",
    "style",
    "photo",
    "drawing",
    "picture",
    CONTENT_TOKEN,
    STYLE_TOKEN,
    *list(CLASSES),
    *list(PATTERN_WORDS.values()),
    *COLOR_WORDS,
    *[w for w in BACKDROP_WORDS.values() if w not in PATTERN_WORDS.values()],
    "background",
    "outlined",
    "shadowed",
]
MAX_LENGTH = 77
BOS, EOS = "<|startoftext|>", "<|endoftext|>"


@lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """CLIP's (and GPT-2's) reversible byte -> printable character map."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs], strict=True))


def _bpe(word: tuple[str, ...], ranks: dict[tuple[str, str], int]) -> tuple[str, ...]:
    """CLIP's merge loop: repeatedly merge every occurrence of the lowest-ranked adjacent pair."""
    while len(word) > 1:
        best = min(range(len(word) - 1), key=lambda i: ranks.get((word[i], word[i + 1]), 1 << 30))
        a, b = word[best], word[best + 1]
        if (a, b) not in ranks:
            break
        merged: list[str] = []
        i = 0
        while i < len(word):
            if i < len(word) - 1 and word[i] == a and word[i + 1] == b:
                merged.append(a + b)
                i += 2
            else:
                merged.append(word[i])
                i += 1
        word = tuple(merged)
    return word


def build_merges(words: list[str]) -> list[tuple[str, str]]:
    """Adds merges until every word is one token under CLIP's algorithm."""
    byte_map = bytes_to_unicode()
    merges: list[tuple[str, str]] = []
    ranks: dict[tuple[str, str], int] = {}
    for word in words:
        symbols = [byte_map[b] for b in word.encode()]
        symbols[-1] += "</w>"
        while True:
            tokens = _bpe(tuple(symbols), ranks)
            if len(tokens) == 1:
                break
            pair = (tokens[0], tokens[1])
            ranks[pair] = len(merges)
            merges.append(pair)
    return merges


def write_tokenizer(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    byte_map = bytes_to_unicode()
    symbols = list(byte_map.values())
    vocab_list = symbols + [s + "</w>" for s in symbols]
    merges = build_merges(WORDS)
    vocab_list += ["".join(pair) for pair in merges]
    vocab_list += [BOS, EOS]
    vocab = {token: i for i, token in enumerate(vocab_list)}
    (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (out / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": MAX_LENGTH,
        "bos_token": BOS,
        "eos_token": EOS,
        "unk_token": EOS,
        "pad_token": EOS,
        "do_lower_case": True,
        "errors": "replace",
        "add_prefix_space": False,
        "clean_up_tokenization_spaces": True,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    special = {"bos_token": BOS, "eos_token": EOS, "unk_token": EOS, "pad_token": EOS}
    (out / "special_tokens_map.json").write_text(json.dumps(special, indent=2))


def vocab_size() -> int:
    return 512 + len(build_merges(WORDS)) + 2
