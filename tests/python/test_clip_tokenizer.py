"""The native CLIP tokenizer (lorarar._native.ClipTokenizer) against transformers.CLIPTokenizer, id for id.

transformers 5's CLIPTokenizer is the Hugging Face tokenizers backend: NFC, whitespace runs to " ", lowercase,
CLIP's split regex, byte-level BPE with "</w>", special tokens cut out of the raw text first. Two vocabularies: the
world's (every caption word one token, anything else byte by byte) and a bigger one trained here with tokenizers'
BPE trainer on English and synthetic multilingual text, so that words take many overlapping merges.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import random
import re
import textwrap
import unicodedata
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers
from transformers import CLIPTokenizer

from lorarar._native import ClipTokenizer
from lorarar.errors import LoraError
from lorarar.world.tokenizer import BOS, EOS, bytes_to_unicode, write_tokenizer

MAX_LENGTH = 77
CLIP_PATTERN = r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
# Every code point costs transformers ~20 µs; LORARAR_FULL_UNICODE=1 checks all 1.1M instead of a sample.
FULL_UNICODE = os.environ.get("LORARAR_FULL_UNICODE") == "1"

Pair = tuple[CLIPTokenizer, ClipTokenizer]


# ---------------------------------------------------------------- vocabularies
def synthetic_text(rng: random.Random, words: int) -> str:
    """Words in several scripts, so that the trained vocabulary has merges beyond ASCII."""
    alphabets = [
        "abcdefghijklmnopqrstuvwxyzéèêëàâäçîïôöûüñßæœøå",
        "αβγδεζηθικλμνξοπρστυφχψωάέήίόύώς",
        "абвгдеёжзийклмнопрстуфхцчшщъыьэюяії",
        "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可她里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三已老从动两长",
        "あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほまみむめもやゆよらりるれろわをん",
        "가나다라마바사아자차카타파하고노도로모보소오조초코토포호구누두루무부수우주추쿠투푸후",
    ]
    out = []
    for _ in range(words):
        alphabet = rng.choice(alphabets)
        stem = "".join(rng.choice(alphabet[:12]) + rng.choice(alphabet) for _ in range(rng.randint(1, 4)))
        out.append(stem + rng.choice(["", "s", "ing", "ed", alphabet[0]]))
    return " ".join(out)


def write_clip_dir(out: Path, merges: Sequence[tuple[str, str]]) -> None:
    """vocab.json and merges.txt in openai/clip-vit-large-patch14's layout."""
    out.mkdir(parents=True, exist_ok=True)
    symbols = list(bytes_to_unicode().values())
    vocab: dict[str, int] = {}
    for token in [*symbols, *(s + "</w>" for s in symbols), *(a + b for a, b in merges), BOS, EOS]:
        vocab.setdefault(token, len(vocab))
    (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (out / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8")


def train_merges(texts: list[str], vocab_size: int) -> list[tuple[str, str]]:
    tok = Tokenizer(models.BPE(end_of_word_suffix="</w>"))
    tok.normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()]
    )
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(CLIP_PATTERN), behavior="removed", invert=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False),
        ]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=1,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        end_of_word_suffix="</w>",
    )
    tok.train_from_iterator(texts, trainer)
    merges = json.loads(tok.to_str())["model"]["merges"]
    pairs = [m.split(" ") if isinstance(m, str) else m for m in merges]  # "a b" in older tokenizers
    return [(a, b) for a, b in pairs]


@pytest.fixture(scope="module")
def world_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("world_tokenizer")
    write_tokenizer(path)
    return path


@pytest.fixture(scope="module")
def corpus_words() -> list[str]:
    texts = [inspect.getsource(m) for m in (argparse, random, textwrap, inspect, json.decoder)]
    return sorted({w for t in texts for w in t.split() if w.isalpha()})


@pytest.fixture(scope="module")
def big_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = random.Random(7)
    texts = [inspect.getsource(m) for m in (argparse, random, textwrap, inspect, json.decoder)]
    texts += [synthetic_text(rng, 20000)]
    path = tmp_path_factory.mktemp("big_tokenizer")
    write_clip_dir(path, train_merges(texts, 12000))
    return path


@pytest.fixture(scope="module", params=["world", "big", "big-pad!"])
def pair(request: pytest.FixtureRequest, world_dir: Path, big_dir: Path) -> Pair:
    path = world_dir if request.param == "world" else big_dir
    pad = "!" if request.param.endswith("!") else EOS  # SDXL's second tokenizer pads with "!"
    hf = CLIPTokenizer.from_pretrained(str(path), pad_token=pad)
    return hf, ClipTokenizer.from_dir(str(path), pad_token=pad)


def hf_ids(hf: CLIPTokenizer, prompts: list[str]) -> list[list[int]]:
    out = hf(prompts, padding="max_length", max_length=MAX_LENGTH, truncation=True)["input_ids"]
    return [list(ids) for ids in out]


def assert_same(pair: Pair, prompts: list[str], native_input: Callable[[str], str | bytes] | None = None) -> None:
    hf, native = pair
    expected = hf_ids(hf, prompts)
    bad = []
    for prompt, want in zip(prompts, expected, strict=True):
        got = native.encode(native_input(prompt) if native_input else prompt)
        if got != want:
            bad.append(f"{prompt!r}:\n  native {got}\n  hf     {want}")
    assert not bad, f"{len(bad)} of {len(prompts)} prompts differ, e.g.\n" + "\n".join(bad[:5])


# ---------------------------------------------------------------- prompts
WHITESPACE = " \t\n\r\v\f\x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u2028\u2029\u202f\u205f\u3000"
NOT_WHITESPACE = "\u200b\u180e\ufeff\x1c\x1d\x1e\x1f\x00\x7f\u2060"
PUNCTUATION = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~¡¿«»—–…·•©®™°§¶†‡€£¥¢"
CONTRACTIONS = ["it's", "IT'S", "we'll", "don't", "you're", "they've", "I'm", "she'd"]
CONTRACTIONS += ["'s", "''s", "'", "o'clock", "y'all", "rock'n'roll"]
MARKS = [chr(c) for c in [*range(0x300, 0x370), *range(0x1AB0, 0x1ABF), *range(0x1DC0, 0x1E00), *range(0x20D0, 0x20F1)]]
GREEK = "ΑΒΓΔΕΖΗΘΙΚΛΜΝΞΟΠΡΣΤΥΦΧΨΩαβγδεζηθικλμνξοπρστυφχψωςάέήίόύώΐΰϊϋ"
CYRILLIC = "АБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯабвгдеёжзийклмнопрстуфхцчшщъыьэюяІЇЄҐіїєґ"
LATIN = "AÀÁÂÃÄÅĀĂĄǍȀȂÆǼBCÇĆĈĊČDĎĐEÈÉÊËĒĔĖĘĚFGĜĞĠĢǦHĤĦIÌÍÎÏĨĪĬĮİIJJĴKĶǨLĹĻĽĿŁMNÑŃŅŇŊOÒÓÔÕÖØŌŎŐƠǑǪŒ" \
    "PQRŔŖŘSŚŜŞŠȘßẞTŢŤŦȚUÙÚÛÜŨŪŬŮŰŲƯǓVWŴXYÝŶŸZŹŻŽÞǅǈǋǲ"  # fmt: skip
SPECIALS = [BOS, EOS, "<|STARTOFTEXT|>", "<|EndOfText|>", "<|endoftext", "|>", "<|start<|endoftext|>oftext|>", "!"]


def random_chars(rng: random.Random, ranges: Sequence[tuple[int, int]], n: int) -> str:
    return "".join(chr(rng.randint(*rng.choice(ranges))) for _ in range(n))


def ascii_word(rng: random.Random, words: list[str]) -> str:
    w = rng.choice(words)
    return rng.choice([w, w.lower(), w.upper(), w.capitalize()])


def accented_word(rng: random.Random) -> str:
    word = "".join(rng.choice(LATIN + "aeiou") for _ in range(rng.randint(1, 8)))
    word = rng.choice([word, word.lower(), unicodedata.normalize("NFD", word), unicodedata.normalize("NFKD", word)])
    if rng.random() < 0.4:  # stacked marks in any order exercise canonical reordering and blocking
        i = rng.randint(0, len(word))
        word = word[:i] + "".join(rng.choice(MARKS) for _ in range(rng.randint(1, 4))) + word[i:]
    return word


def emoji(rng: random.Random) -> str:
    base = chr(rng.choice([rng.randint(0x1F300, 0x1FAFF), rng.randint(0x2600, 0x27BF)]))
    return rng.choice(
        [
            base,
            base + "\ufe0f",
            base + chr(rng.randint(0x1F3FB, 0x1F3FF)),
            base + "\u200d" + chr(rng.randint(0x1F300, 0x1F64F)),
            chr(rng.randint(0x1F1E6, 0x1F1FF)) + chr(rng.randint(0x1F1E6, 0x1F1FF)),
            rng.choice("0123456789#*") + "\ufe0f\u20e3",
        ]
    )


def random_prompt(rng: random.Random, words: list[str]) -> str:
    kind = rng.randrange(10)
    n = rng.randint(1, 14)
    pieces: list[str]
    if kind == 0:
        pieces = [ascii_word(rng, words) for _ in range(n)]
    elif kind == 1:
        pieces = [
            rng.choice(
                [
                    rng.choice(CONTRACTIONS),
                    str(rng.randint(0, 10 ** rng.randint(1, 9))),
                    f"{rng.random() * 100:.{rng.randint(0, 4)}f}",
                    "".join(rng.choice(PUNCTUATION) for _ in range(rng.randint(1, 4))),
                    ascii_word(rng, words) + rng.choice(PUNCTUATION) + ascii_word(rng, words),
                    ascii_word(rng, words) + rng.choice(["'s", "'S", "'ll", "'re", "'d", "'m", "'ve", "'t", "'x"]),
                ]
            )
            for _ in range(n)
        ]
    elif kind == 2:
        pieces = [accented_word(rng) for _ in range(n)]
    elif kind == 3:
        pieces = [
            "".join(rng.choice(rng.choice([GREEK, CYRILLIC])) for _ in range(rng.randint(1, 9))) for _ in range(n)
        ]
    elif kind == 4:
        cjk = [(0x4E00, 0x9FFF), (0x3040, 0x30FF), (0xAC00, 0xD7A3), (0x3400, 0x4DBF), (0xFF01, 0xFF5E)]
        pieces = [random_chars(rng, cjk, rng.randint(1, 6)) for _ in range(n)]
        if rng.random() < 0.5:  # conjoining jamo compose to syllables under NFC
            pieces.append(random_chars(rng, [(0x1100, 0x1112)], 1) + random_chars(rng, [(0x1161, 0x1175)], 1))
            pieces[-1] += random_chars(rng, [(0x11A8, 0x11C2)], rng.randint(0, 1))
    elif kind == 5:
        pieces = [emoji(rng) * rng.randint(1, 3) for _ in range(n)]
    elif kind == 6:
        pieces = [rng.choice([ascii_word(rng, words), accented_word(rng), rng.choice(SPECIALS)]) for _ in range(n)]
        separators = WHITESPACE + NOT_WHITESPACE
        return "".join(p + "".join(rng.choice(separators) for _ in range(rng.randint(0, 3))) for p in pieces)
    elif kind == 7:  # odd input: controls, replacement and noncharacters, private use, specials glued to words
        odd = [(0x00, 0x1F), (0x7F, 0x9F), (0xFFF0, 0xFFFF), (0xE000, 0xF8FF), (0x10FFF0, 0x10FFFF), (0x200B, 0x200F)]
        pieces = [
            rng.choice([random_chars(rng, odd, rng.randint(1, 3)), rng.choice(SPECIALS), rng.choice(MARKS)])
            + rng.choice(["", ascii_word(rng, words)])
            for _ in range(n)
        ]
        return "".join(pieces)
    elif kind == 8:  # longer than 77 tokens
        pieces = [
            rng.choice([ascii_word(rng, words), accented_word(rng), emoji(rng)]) for _ in range(rng.randint(60, 200))
        ]
    else:  # anything: code points from the whole range
        pieces = [
            random_chars(rng, [(0, 0xD7FF), (0xE000, 0x10FFFF), (0x20, 0x7E)], rng.randint(1, 5)) for _ in range(n)
        ]
    return rng.choice([" ", "  ", ", ", "\n"]).join(pieces)


FIXED_PROMPTS = [
    "",
    " ",
    "a photo of a cat",
    "A PHOTO OF A <|endoftext|> CAT",
    "<|startoftext|>",
    "<|startoftext|>a<|endoftext|>",
    "x<|endoftext|>y<|endoftext|>",
    "<|STARTOFTEXT|> shouting",
    "it's the cat's toy, isn't it? we'll see... I'M SURE!",
    "3.14159 is π; 1,000,000 ≠ 10^6? ¾ ½ Ⅻ ٣",
    "École, naïve café, résumé, Ångström, İstanbul, ΣΊΣΥΦΟΣ, ὈΔΥΣΣΕΎΣ, straße, STRASSE, ǅ",
    "e\u0301cole cafe\u0301 A\u030a \u1e9b\u0323 q\u0307\u0323 \u0958",
    "Привет, мир! Ёлка, ЁЖИК",
    "東京タワーの写真、서울 풍경, 中文字符",
    "👩‍👩‍👧‍👦 👍🏽 🇫🇷 🏳️‍🌈 1️⃣ ❤️",
    "tab\there\nnew line\r\nnbsp\xa0ideographic\u3000space\u2028line\u2029para\x85nel",
    "zero\u200bwidth and soft\xadhyphen and bom\ufeff and \x1cfile separator",
    "\x00\x01\x02 control \x7f\x80\x9f",
    "\ufffd replacement \uffff \U0010ffff \ue000 private",
    "\u0301 leading mark, \u0345\u0301\u0316 stacked",
    "word " * 100,
    "supercalifragilisticexpialidocious" * 5,
    "!" * 200,
    "1" * 100,
    "a,b.c;d:e!f?g",
    "Σ ΣΑ ΑΣ ΣΣ ς",
]


def test_fixed_prompts_match_transformers(pair: Pair) -> None:
    assert_same(pair, FIXED_PROMPTS)


def test_random_prompts_match_transformers(pair: Pair, corpus_words: list[str]) -> None:
    rng = random.Random(1234)
    assert_same(pair, [random_prompt(rng, corpus_words) for _ in range(1200)])


def test_ill_formed_utf8_reads_as_replacement_characters(pair: Pair) -> None:
    """bytes go in as UTF-8; transformers gets bytes.decode(errors="replace"), the same U+FFFD policy."""
    rng = random.Random(99)
    samples: list[bytes] = [b"\xff", b"a\xc0\xafb", b"\xed\xa0\x80", b"\xf0\x9f\x98", b"\xf4\x90\x80\x80", b"\xe2\x82"]
    for _ in range(500):
        text = "".join(rng.choice(["cat ", "é", "日本", "😀", " ", "'s", "<|endoftext|>"]) for _ in range(6)).encode()
        data = bytearray(text)
        for _ in range(rng.randint(1, 4)):
            data.insert(rng.randint(0, len(data)), rng.randrange(256))
        if rng.random() < 0.3:
            del data[rng.randrange(len(data))]
        samples.append(bytes(data))
    prompts = [s.decode("utf-8", errors="replace") for s in samples]
    by_prompt = dict(zip(prompts, samples, strict=True))
    assert_same(pair, prompts, native_input=lambda p: by_prompt[p])


def test_normalization_data_matches_transformers(world_dir: Path) -> None:
    """Canonical reordering and composition for every mark and every decomposable character Python knows."""
    hf = CLIPTokenizer.from_pretrained(str(world_dir))
    native = ClipTokenizer.from_dir(str(world_dir))
    probes = []
    for c in range(0x110000):
        ch = chr(c) if not 0xD800 <= c <= 0xDFFF else ""
        if ch and unicodedata.combining(ch):
            probes += [f"a{ch}{m}" for m in ("\u0301", "\u0316", "\u0334", "\u0315", "\u05b0", "\u0345")]
        if ch and unicodedata.decomposition(ch) and not unicodedata.decomposition(ch).startswith("<"):
            probes += [unicodedata.normalize("NFD", ch), unicodedata.normalize("NFD", ch) + "\u0323\u0301"]
    text = " ".join(probes)
    assert_same_tokens(hf, native, text, probes)


def sample_code_points() -> list[int]:
    """Planes 0 and 1 whole (where the scripts and the Unicode version differences are) but for the big uniform
    blocks, then every 61st code point of the rest."""
    uniform = [(0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xAC00, 0xD7A3), (0xE000, 0xF8FF), (0x17000, 0x18AFF)]
    out = []
    for c in range(0x110000):
        if 0xD800 <= c <= 0xDFFF:
            continue
        if FULL_UNICODE or (c < 0x20000 and not any(a <= c <= b for a, b in uniform)) or c % 61 == 0:
            out.append(c)
    return out


def test_every_code_point_classifies_like_transformers(world_dir: Path) -> None:
    """'x' + c + '!' splits differently for a letter, a number, punctuation and whitespace, and shows c lowercased
    and normalized. One long text per run; a failure names the code points."""
    hf = CLIPTokenizer.from_pretrained(str(world_dir))
    native = ClipTokenizer.from_dir(str(world_dir))
    probes = [f"x{chr(c)}!" for c in sample_code_points()]
    assert_same_tokens(hf, native, " ".join(probes), probes)


def assert_same_tokens(hf: CLIPTokenizer, native: ClipTokenizer, text: str, probes: list[str]) -> None:
    want = hf(text, add_special_tokens=False)["input_ids"]
    if native.tokenize(text) == want:
        return
    bad = [p for p in probes if native.tokenize(p) != hf(p, add_special_tokens=False)["input_ids"]]
    assert bad, "the joined text differs but no probe alone does"
    pytest.fail(f"{len(bad)} probes differ: " + ", ".join(" ".join(f"U+{ord(ch):04X}" for ch in p) for p in bad[:20]))


# ---------------------------------------------------------------- API and errors
def test_api(world_dir: Path) -> None:
    vocab, merges = (world_dir / "vocab.json").read_text(), (world_dir / "merges.txt").read_text()
    tok = ClipTokenizer(vocab, merges, max_length=16)
    hf = CLIPTokenizer.from_pretrained(str(world_dir))
    assert tok.vocab_size == len(hf) == len(json.loads(vocab))
    assert (tok.bos_id, tok.eos_id, tok.pad_id, tok.max_length) == (
        hf.bos_token_id,
        hf.eos_token_id,
        hf.pad_token_id,
        16,
    )
    assert tok.encode("a photo") == tok.encode(b"a photo")
    assert len(tok.encode("a " * 50)) == 16 and len(tok.encode("")) == 16
    assert tok.encode_unpadded("a photo") == hf("a photo")["input_ids"]
    assert len(tok.tokenize("a " * 50)) == 50
    assert len(tok.encode_unpadded("a " * 50)) == 16
    for length in (2, 3, 20):
        short = ClipTokenizer.from_dir(str(world_dir), max_length=length)
        for prompt in ("", "a", "a photo of a cat", "xyz " * 30):
            assert (
                short.encode(prompt)
                == hf(prompt, padding="max_length", max_length=length, truncation=True)["input_ids"]
            )


def test_from_dir_finds_a_pipeline_tokenizer_folder(tmp_path: Path, world_dir: Path) -> None:
    (tmp_path / "tokenizer").mkdir()
    for name in ("vocab.json", "merges.txt"):
        (tmp_path / "tokenizer" / name).write_bytes((world_dir / name).read_bytes())
    assert ClipTokenizer.from_dir(str(tmp_path)).encode("a cat") == ClipTokenizer.from_dir(str(world_dir)).encode(
        "a cat"
    )


@pytest.mark.parametrize(
    ("merges_edit", "message"),
    [
        (lambda m: m.replace("\n", "\n\n", 2), "merges.txt line 2: expected two tokens separated by one space"),
        (lambda m: m + "a b c\n", "expected two tokens separated by one space"),
        (lambda m: m + "zq x\n", '"zq" is not in vocab.json'),
        (lambda m: m + "# comment\n", '"comment" is not in vocab.json'),
    ],
)
def test_bad_merges_fail_as_in_transformers(
    tmp_path: Path, world_dir: Path, merges_edit: Callable[[str], str], message: str
) -> None:
    (tmp_path / "vocab.json").write_bytes((world_dir / "vocab.json").read_bytes())
    (tmp_path / "merges.txt").write_text(merges_edit((world_dir / "merges.txt").read_text()))
    with pytest.raises(LoraError) as e:
        ClipTokenizer.from_dir(str(tmp_path))
    assert message in str(e.value) and str(e.value).startswith(str(tmp_path)) and e.value.code == 2
    with pytest.raises(Exception, match="BPE"):
        CLIPTokenizer.from_pretrained(str(tmp_path))


def test_bad_vocab_and_options_raise(world_dir: Path) -> None:
    merges = (world_dir / "merges.txt").read_text()
    with pytest.raises(LoraError, match=r"vocab\.json: not a JSON object"):
        ClipTokenizer("[]", merges)
    with pytest.raises(LoraError, match=re.escape("no <|startoftext|> token")):
        ClipTokenizer('{"<|endoftext|>": 0}', "")
    with pytest.raises(LoraError, match="max_length must be at least 2"):
        ClipTokenizer((world_dir / "vocab.json").read_text(), merges, max_length=1)
    with pytest.raises(LoraError, match="not a folder"):
        ClipTokenizer.from_dir(str(world_dir / "missing"))
