"""The byte-pair-encoding tokenizer of chapter 8: trainers, encoder, files, GPT-2 compatibility."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
import regex
from hypothesis import given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
# tiktoken reads GPT-2's files from this cache before it tries to download them.
os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(SHARED / "tiktoken_cache"))

from minigpt.bpe import (  # noqa: E402  (the cache folder must be set before tiktoken loads)
    GPT2_PATTERN,
    GPT4_PATTERN,
    BPETokenizer,
    TiktokenGPT2,
    TokenizerFileError,
    apply_merges,
    apply_merges_heap,
    load_gpt2,
    split_text,
)
from minigpt.bpe_train import train_bpe, train_fast, train_naive  # noqa: E402

needs_gpt2 = pytest.mark.skipif(
    not Path(os.environ["TIKTOKEN_CACHE_DIR"]).is_dir(),
    reason=f"no tiktoken cache at {os.environ['TIKTOKEN_CACHE_DIR']} (GPT-2's files; offline)",
)

HARD_TEXT = (
    "I'm sure it's 3.14159, isn't it? THEY'LL say 'twas 1,000,000  \n\n\t  x   y\r\n"
    "Café vs Cafe\u0301 — 日本語のテキスト 👍🏽 👨\u200d👩\u200d👧 "
    "\x00\x1f\x7f <|endoftext|> end   \n"
    "we've you'd she'll   'S 'T  's\u00a0\u2003spaces\u3000 १२३ ٣٤ ½ x²  \n\n\n   "
)


def shakespeare() -> str:
    path = Path(os.environ.get("MINIGPT_DATA", SHARED / "tinyshakespeare.txt"))
    if not path.is_file():
        pytest.skip(f"Tiny Shakespeare not found at {path} (set MINIGPT_DATA)")
    return path.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def small_tok() -> BPETokenizer:
    text = shakespeare()[:50_000]
    return train_bpe(text, 400, special_tokens=["<|endoftext|>", "<|pad|>"])


# --- round trips ------------------------------------------------------------------------------

# Text that is hard for tokenizers: emoji (with modifiers and joiners), combining marks, CJK,
# right-to-left scripts, control characters and long whitespace runs, mixed with ASCII.
TRICKY = st.sampled_from(
    ["👍🏽", "👨\u200d👩\u200d👧", "e\u0301", "\u0301", "日本語", "한국어", "مرحبا", "\x00", "\x1b",
     "\x7f", "\r\n", "\t", " " * 17, "\n" * 5, "\u2028", "\ufeff", "'s", "'LL", "123456", "<|"]
)
# Characters that Python's own Unicode database knows. A code point that is unassigned there
# may be a letter in a newer table: the `regex` package and tiktoken each ship their own, of
# different Unicode versions, and disagree on such characters (U+3D000 was one, with regex
# 2026.11), which says nothing about our code.
ASSIGNED = st.characters(exclude_categories=("Cn", "Cs"))
TEXTS = st.lists(st.one_of(st.text(ASSIGNED, max_size=12), TRICKY), max_size=12).map("".join)


@settings(max_examples=150, deadline=None)
@given(text=TEXTS)
def test_round_trip_trained(small_tok: BPETokenizer, text: str) -> None:
    assert small_tok.decode(small_tok.encode_ordinary(text)) == text


@settings(max_examples=60, deadline=None)
@given(text=TEXTS, pattern=st.sampled_from(["gpt2", "gpt4", "none"]))
def test_round_trip_every_pattern(text: str, pattern: str) -> None:
    tok = train_bpe("to be or not to be, that is the question 日本語 👍🏽", 300, pattern)
    assert tok.decode(tok.encode_ordinary(text)) == text


@needs_gpt2
@settings(max_examples=100, deadline=None)
@given(text=TEXTS)
def test_round_trip_gpt2(text: str) -> None:
    tok = load_gpt2()
    assert tok.decode(tok.encode(text, disallowed_special=())) == text


def test_decode_never_crashes_on_broken_utf8(small_tok: BPETokenizer) -> None:
    ids = small_tok.encode_ordinary("日本")
    assert small_tok.decode(ids[:1]) == "\ufffd"  # half a character: replaced, not an error
    assert small_tok.decode([0xE6, 0x97]) == "\ufffd"
    assert small_tok.decode_bytes(ids) == "日本".encode()


def test_decode_unknown_id_is_a_clear_error(small_tok: BPETokenizer) -> None:
    with pytest.raises(ValueError, match="token id 99999 is not in the vocabulary"):
        small_tok.decode([1, 99999])


# --- trainers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("pattern", ["gpt2", "gpt4", "none"])
def test_fast_equals_naive_on_shakespeare(pattern: str) -> None:
    text = shakespeare()[:15_000]
    assert train_fast(text, 420, pattern) == train_naive(text, 420, pattern)


@pytest.mark.parametrize(
    "text",
    [
        "aaaaaaa",  # overlapping pairs
        "aaaa aaaa aaa",
        "abababab zzyyzzyy",  # a merge that kills the count of a pair it just created
        "ab cd ef gh",  # every pair occurs once: the result is decided by ties alone
        "xyxyxyzyzyzy",
        "",
        "a",
    ],
)
def test_fast_equals_naive_on_ties_and_overlaps(text: str) -> None:
    for pattern in ("gpt2", "none"):
        assert train_fast(text, 300, pattern) == train_naive(text, 300, pattern)


@settings(max_examples=120, deadline=None)
@given(text=st.text(alphabet="ab c\n'1é", max_size=60), pattern=st.sampled_from(["gpt2", "none"]))
def test_fast_equals_naive_random(text: str, pattern: str) -> None:
    assert train_fast(text, 290, pattern) == train_naive(text, 290, pattern)


def test_ties_pick_the_smallest_pair() -> None:
    # (a, b), (b, c), (c, d) all occur once: the documented rule takes the smallest pair, (a, b)
    assert train_fast("abcd", 257, "none") == [(97, 98, 256)]
    assert train_fast("dcba", 257, "none") == [(98, 97, 256)]
    # counts win over ids: (c, d) occurs twice
    assert train_fast("abcdcd", 257, "none") == [(99, 100, 256)]


def test_training_stops_when_nothing_is_left_to_merge() -> None:
    assert train_fast("aaaa", 1000, "none") == [(97, 97, 256), (256, 256, 257)]
    with pytest.raises(ValueError, match="at least 256"):
        train_bpe("abc", 100)


def test_special_tokens_come_after_the_merges() -> None:
    tok = train_bpe("hello hello", 260, special_tokens=["<|endoftext|>"])
    assert tok.special_tokens == {"<|endoftext|>": 256 + len(tok.merges)}
    assert tok.vocab_size == 257 + len(tok.merges)


# --- encoder ----------------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(text=TEXTS)
def test_heap_merge_equals_simple_merge(small_tok: BPETokenizer, text: str) -> None:
    ids = [small_tok.byte_ids[b] for b in text.encode("utf-8", "surrogatepass")]
    assert apply_merges_heap(ids, small_tok.ranks) == apply_merges(ids, small_tok.ranks)


def test_long_pieces_and_cache_give_the_same_ids() -> None:
    text = shakespeare()[:30_000]
    tok = train_bpe(text, 500, "none")
    ids = tok.encode_ordinary(text[:5000])  # one long piece: the heap path
    assert ids == apply_merges(list(text[:5000].encode("utf-8")), tok.ranks)
    assert tok.encode_ordinary(text[:5000]) == ids  # again (long pieces are not cached)


def test_encoding_the_training_text_uses_the_learned_tokens() -> None:
    text = shakespeare()[:20_000]
    tok = train_bpe(text, 300)
    ids = tok.encode_ordinary(text)
    assert tok.decode(ids) == text
    assert len(ids) < 0.75 * len(text.encode("utf-8"))  # 44 merges already save a quarter


def test_gpt2_pattern_splits_like_tiktoken() -> None:
    from tiktoken_ext.openai_public import r50k_pat_str

    for text in (HARD_TEXT, shakespeare()[:100_000]):
        assert regex.findall(GPT2_PATTERN, text) == regex.findall(r50k_pat_str, text)


def test_gpt4_pattern_splits_like_tiktokens_cl100k(monkeypatch: pytest.MonkeyPatch) -> None:
    import tiktoken_ext.openai_public as openai_public

    # cl100k_base() fetches its ranks before it returns the pattern; the ranks are not needed
    monkeypatch.setattr(openai_public, "load_tiktoken_bpe", lambda *args, **kwargs: {})
    cl100k = openai_public.cl100k_base()["pat_str"]
    for text in (HARD_TEXT, shakespeare()[:100_000]):
        assert split_text(text, "gpt4") == regex.findall(cl100k, text)
    assert regex.findall(GPT4_PATTERN, "1234567") == ["123", "456", "7"]  # not GPT-2's rule


def test_unknown_pattern_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown split pattern 'gpt3'"):
        split_text("abc", "gpt3")


# --- special tokens ---------------------------------------------------------------------------


def test_disallowed_special_raises_with_a_clear_message(small_tok: BPETokenizer) -> None:
    with pytest.raises(ValueError, match=r"special token '<\|endoftext\|>' at character 4"):
        small_tok.encode("abc <|endoftext|>")
    with pytest.raises(ValueError, match="allowed_special"):
        small_tok.encode("<|pad|>", allowed_special={"<|endoftext|>"})


def test_allowed_and_ordinary_special_text(small_tok: BPETokenizer) -> None:
    eot, pad = small_tok.special_tokens["<|endoftext|>"], small_tok.special_tokens["<|pad|>"]
    text = "a<|endoftext|>b<|pad|>"
    both = small_tok.encode(text, allowed_special="all")
    assert both.count(eot) == 1 and both.count(pad) == 1
    assert small_tok.decode(both) == text
    only_eot = small_tok.encode(text, allowed_special={"<|endoftext|>"}, disallowed_special=())
    assert eot in only_eot and pad not in only_eot
    ordinary = small_tok.encode(text, disallowed_special=())
    assert ordinary == small_tok.encode_ordinary(text) and eot not in ordinary
    with pytest.raises(ValueError, match="not special tokens"):
        small_tok.encode("x", allowed_special={"<|nope|>"})


@needs_gpt2
def test_special_handling_matches_tiktoken() -> None:
    import tiktoken

    ref, ours = tiktoken.get_encoding("gpt2"), load_gpt2()
    text = "end.<|endoftext|>Start"
    for kwargs in ({"allowed_special": "all"}, {"disallowed_special": ()}):
        assert ours.encode(text, **kwargs) == ref.encode(text, **kwargs)
    for encoder in (ours, ref):
        with pytest.raises(ValueError):
            encoder.encode(text)


# --- files ------------------------------------------------------------------------------------


def same_tokenizer(a: BPETokenizer, b: BPETokenizer) -> None:
    assert a.merges == b.merges and a.byte_ids == b.byte_ids and a.pattern == b.pattern
    assert a.special_tokens == b.special_tokens
    text = HARD_TEXT + shakespeare()[:2000]
    assert a.encode(text, allowed_special="all") == b.encode(text, allowed_special="all")


def test_save_load_and_dict_round_trip(small_tok: BPETokenizer, tmp_path: Path) -> None:
    path = tmp_path / "tok.bpe"
    small_tok.save(path)
    same_tokenizer(BPETokenizer.load(path), small_tok)
    data = json.loads(json.dumps(small_tok.to_dict()))  # a checkpoint keeps plain JSON values
    same_tokenizer(BPETokenizer.from_dict(data), small_tok)
    # one format: the checkpoint's dictionary holds exactly the text of the file
    assert data == {"kind": "bpe", "file": path.read_text(encoding="utf-8")}


def test_round_trip_keeps_a_permuted_byte_order_and_odd_specials(tmp_path: Path) -> None:
    order = list(range(256))
    random.Random(1).shuffle(order)
    specials = {'a "quoted" # hash': 400, "tab\there é": 300, "<|endoftext|>": 301}
    tok = BPETokenizer([(order[97], order[98], 256), (256, order[99], 299)], byte_ids=order,
                       pattern="gpt4", special_tokens=specials)
    tok.save(tmp_path / "odd.bpe")
    again = BPETokenizer.load(tmp_path / "odd.bpe")
    assert again.byte_ids == order and again.special_tokens == specials
    assert again.merges == tok.merges and again.pattern == "gpt4"
    assert again.encode("abc" + "".join(specials), allowed_special="all") == tok.encode(
        "abc" + "".join(specials), allowed_special="all"
    )


def good_lines(tok: BPETokenizer, tmp_path: Path) -> list[str]:
    tok.save(tmp_path / "good.bpe")
    return (tmp_path / "good.bpe").read_text(encoding="utf-8").splitlines()


BROKEN = [
    # (line index to replace, new text or None to delete, expected line number, message)
    (0, "minigpt-bpe 2", 1, "expected 'minigpt-bpe 1' as the first line"),
    (1, "pattern gpt3", 2, "unknown split pattern 'gpt3'"),
    (1, None, 2, "expected 'pattern NAME' as the second line"),
    (1, "pattern", 2, "expected 'pattern NAME' as the second line"),
    (2, "pattern gpt2", 3, "cannot read 'pattern gpt2'"),
    (2, "token 0 byte 0x1ff", 3, "byte 0x1ff is out of range or has a token already"),
    (300, "token 298 byte 0x41", 301, "byte 0x41 is out of range or has a token already"),
    (300, "token 298 merge 297 999", 301, "merge 297 999 uses token 999, not defined yet"),
    (300, "token 298 merge 299 10", 301, "uses token 299, not defined yet"),
    (300, "token 298 merge 297 x7", 301, "'x7' is not a number"),
    (300, "token 256 merge 10 11", 301, "token id 256 is defined twice"),
    (300, "token -1 merge 10 11", 301, "token ids are integers >= 0, got -1"),
    (300, "token 298 merge 32 116", 301, "the pair 32 116 is merged twice"),
    (300, "tokn 298 merge 1 2", 301, "cannot read 'tokn 298 merge 1 2'"),
    (300, "token 298 merge 1", 301, "cannot read"),
    (300, "token 298 byte 0x41 0x42", 301, "cannot read"),
    (-2, "special 401 <|pad|>", 404, "must be a JSON string"),
    (-2, 'special 401 "unterminated', 404, "must be a JSON string"),
    (-2, 'special 399 "<|pad|>"', 404, "token id 399 is defined twice"),
    (-2, 'special 401 "<|endoftext|>"', 404, "'<|endoftext|>' is empty or defined twice"),
    (-2, 'special 401 ""', 404, "'' is empty or defined twice"),
    (2, None, 404, "(end of file) every byte needs a token, and byte 0x00 has none"),
    # the closing line: a file cut short, or one that lost or gained a line
    (-1, None, 404, "(end of file) no closing 'end N' line: the file is cut short"),
    (-1, "end 401", 405, "'end 401' does not match the 402 tokens defined above it"),
    (-1, "end lots", 405, "'lots' is not a number"),
    (300, "end 402", 301, "cannot read 'end 402'"),
]


@pytest.mark.parametrize(("index", "new", "line", "message"), BROKEN)
def test_malformed_file_names_the_line(
    small_tok: BPETokenizer, tmp_path: Path, index: int, new: str | None, line: int, message: str
) -> None:
    lines = good_lines(small_tok, tmp_path)
    assert len(lines) == 405  # header, pattern, 256 bytes, 144 merges, 2 specials, end
    assert lines[256 + 2] == "token 256 merge 32 116     # ' t'"  # the pair some cases reuse
    if new is None:
        del lines[index]
    else:
        lines[index] = new
    path = tmp_path / "broken.bpe"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(TokenizerFileError) as caught:
        BPETokenizer.load(path)
    assert str(caught.value).startswith(f"{path}:{line}: ")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)  # one line, for the command line's error


def test_a_merge_part_with_a_larger_id_names_the_line(tmp_path: Path) -> None:
    # ids 256..299 are free here, so a merged token can get a smaller id than one of its parts
    lines = good_lines(BPETokenizer([(97, 98, 300)]), tmp_path)
    lines.insert(-1, "token 299 merge 300 99")  # before the closing 'end' line
    path = tmp_path / "backwards.bpe"
    path.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(TokenizerFileError, match=r"backwards\.bpe:260: merged token 299 must have"):
        BPETokenizer.load(path)


def test_short_and_undecodable_files_name_the_line(tmp_path: Path) -> None:
    cases = {b"": "1: expected 'minigpt-bpe 1'", b"minigpt-bpe 1\n": "2: expected 'pattern NAME'",
             b"minigpt-bpe 1\npattern none\n": "2: (end of file) every byte needs a token",
             b"minigpt-bpe 1\npattern none\n# \xff\n": "3: not UTF-8 text"}
    for k, (raw, where) in enumerate(cases.items()):
        path = tmp_path / f"short{k}.bpe"
        path.write_bytes(raw)
        with pytest.raises(TokenizerFileError) as caught:
            BPETokenizer.load(path)
        assert str(caught.value).startswith(f"{path}:{where}"), caught.value


def test_comments_and_blank_lines_are_ignored(small_tok: BPETokenizer, tmp_path: Path) -> None:
    lines = good_lines(small_tok, tmp_path)
    lines[2:2] = ["", "# a comment", "   "]
    path = tmp_path / "commented.bpe"
    path.write_text("\n".join(lines), encoding="utf-8")
    assert BPETokenizer.load(path).merges == small_tok.merges


def test_from_dict_checks_its_input(small_tok: BPETokenizer) -> None:
    data = small_tok.to_dict()
    with pytest.raises(ValueError, match="not a BPE tokenizer"):
        BPETokenizer.from_dict({**data, "kind": "char"})
    # the dictionary of older checkpoints (merge lists, no file text) is refused by name
    old = {"kind": "bpe", "pattern": "gpt2", "byte_ids": list(range(256)), "merges": []}
    with pytest.raises(ValueError, match=r"tokenizer file: kind 'bpe', keys \['byte_ids'"):
        BPETokenizer.from_dict(old)
    # a damaged copy is held to the file's rules, and named by a pseudo file name
    damaged = {**data, "file": data["file"].replace("\nend ", "\ntoken 999 merge 32 116\nend ")}
    with pytest.raises(TokenizerFileError, match=r"^<tokenizer dict>:405: the pair 32 116"):
        BPETokenizer.from_dict(damaged)
    with pytest.raises(TokenizerFileError, match=r"^ckpt\.pt\[tokenizer\]:405: "):
        BPETokenizer.from_dict(damaged, source="ckpt.pt[tokenizer]")
    # a checkpoint's copy may lack the closing 'end' line (older checkpoints); a file may not
    assert BPETokenizer.from_dict({**data, "file": data["file"].rsplit("end ", 1)[0]}).merges \
        == small_tok.merges


def test_the_constructor_checks_each_rule() -> None:
    cases = [
        ({"merges": [(97, 98, 256), (97, 98, 257)]}, "the pair 97 98 is merged twice"),
        ({"merges": [(97, 98, 256), (1, 2, 256)]}, "token id 256 is defined twice"),
        ({"merges": [(97, 98, 300), (300, 1, 299)]}, "merged token 299 must have a larger id"),
        ({"merges": [(97, 999, 1000)]}, "uses token 999, not defined yet"),
        ({"byte_ids": list(range(255))}, "byte 0xff has none"),
        ({"byte_ids": [*range(255), 0]}, "token id 0 is defined twice"),
        ({"byte_ids": [*range(255), -3]}, "token ids are integers >= 0, got -3"),
        ({"special_tokens": {"": 256}}, "'' is empty or defined twice"),
        ({"special_tokens": {"<|x|>": 97}}, "token id 97 is defined twice"),
        ({"pattern": "gpt3"}, "unknown split pattern 'gpt3'"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=re.escape(message)):
            BPETokenizer(**kwargs)


def test_save_is_atomic(small_tok: BPETokenizer, tmp_path: Path,
                        monkeypatch: pytest.MonkeyPatch) -> None:
    import minigpt.files as files

    path = tmp_path / "tok.bpe"
    path.write_text("the old file\n", encoding="utf-8")
    os.chmod(path, 0o640)

    def fail(*args: object) -> None:
        raise KeyboardInterrupt  # as if stopped with Ctrl-C, after the new text was written

    for step in ("fsync", "replace"):
        with monkeypatch.context() as patch:
            patch.setattr(files.os, step, fail)
            with pytest.raises(KeyboardInterrupt):
                small_tok.save(path)
        assert path.read_text(encoding="utf-8") == "the old file\n"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["tok.bpe"]  # no temporary left
    small_tok.save(path)
    assert BPETokenizer.load(path).merges == small_tok.merges
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tok.bpe"]
    if os.name == "posix":
        assert path.stat().st_mode & 0o777 == 0o640  # the file keeps its permissions
        small_tok.save(tmp_path / "new" / "folder" / "tok.bpe")  # folders are created
        assert (tmp_path / "new" / "folder" / "tok.bpe").stat().st_mode & 0o777 == 0o644


def test_show_brackets_and_colours(small_tok: BPETokenizer) -> None:
    assert small_tok.show("the\n<|endoftext|>").endswith("[\\n][<|endoftext|>]")
    plain = small_tok.show("the king")
    assert plain.startswith("[") and plain.replace("][", "")[1:-1] == "the king"
    coloured = small_tok.show("the king", color=True)
    assert "\x1b[0m" in coloured and "[" not in coloured.replace("\x1b[", "")


# --- GPT-2 ------------------------------------------------------------------------------------


@needs_gpt2
def test_gpt2_matches_tiktoken_on_shakespeare_and_hard_text() -> None:
    import tiktoken

    ref, ours = tiktoken.get_encoding("gpt2"), load_gpt2()
    text = shakespeare()
    assert ours.encode(text) == ref.encode(text)
    assert ours.encode(HARD_TEXT, allowed_special="all") == ref.encode(
        HARD_TEXT, allowed_special="all"
    )
    assert ours.vocab_size == ref.n_vocab


@needs_gpt2
@settings(max_examples=150, deadline=None)
@given(text=TEXTS)
def test_gpt2_matches_tiktoken_on_random_text(text: str) -> None:
    import tiktoken

    ref = tiktoken.get_encoding("gpt2")
    assert load_gpt2().encode_ordinary(text) == ref.encode_ordinary(text)


@needs_gpt2
def test_recovered_merges_are_openais_merge_list() -> None:
    folder = SHARED / "gpt2_bpe"
    if not (folder / "vocab.bpe").is_file():
        pytest.skip(f"no copy of GPT-2's vocab.bpe in {folder}")
    encoder = json.loads((folder / "encoder.json").read_text(encoding="utf-8"))
    published = [
        (encoder[a], encoder[b], encoder[a + b])
        for a, b in (
            line.split()
            for line in (folder / "vocab.bpe").read_text(encoding="utf-8").splitlines()[1:]
            if line
        )
    ]
    assert load_gpt2().merges == published


def test_from_ranks_with_a_permuted_byte_order() -> None:
    # Bytes numbered in a shuffled order, as GPT-2 does, must work like the identity order.
    trained = train_bpe(shakespeare()[:20_000], 300)
    order = list(range(256))
    random.Random(0).shuffle(order)
    ranks = {bytes([b]): order[b] for b in range(256)}
    ranks.update({trained.vocab[new]: new for _, _, new in trained.merges})
    permuted = BPETokenizer.from_ranks(ranks, "gpt2")
    text = shakespeare()[20_000:25_000]
    mapped = [order[i] if i < 256 else i for i in trained.encode_ordinary(text)]
    assert permuted.encode_ordinary(text) == mapped
    assert permuted.decode(permuted.encode_ordinary(text)) == text


def test_from_ranks_refuses_a_token_that_is_no_merge() -> None:
    ranks = {bytes([b]): b for b in range(256)}
    ranks[b"abc"] = 256  # no "ab" or "bc" token below it
    with pytest.raises(ValueError, match="is no merge of two tokens"):
        BPETokenizer.from_ranks(ranks)


@needs_gpt2
def test_gpt2_round_trips_through_its_file(tmp_path: Path) -> None:
    gpt2 = load_gpt2()
    again = BPETokenizer.from_dict(gpt2.to_dict())
    assert again.byte_ids == gpt2.byte_ids and again.merges == gpt2.merges
    assert again.special_tokens == {"<|endoftext|>": 50256}
    assert again.encode(HARD_TEXT, allowed_special="all") == gpt2.encode(
        HARD_TEXT, allowed_special="all"
    )


# --- tiktoken behind our interface ------------------------------------------------------------


@needs_gpt2
def test_tiktoken_wrapper_agrees_with_ours_and_with_tiktoken() -> None:
    import tiktoken

    wrapped, ours, ref = TiktokenGPT2(), load_gpt2(), tiktoken.get_encoding("gpt2")
    text = HARD_TEXT + shakespeare()[:20_000]
    assert wrapped.encode_ordinary(text) == ours.encode_ordinary(text) == ref.encode_ordinary(text)
    for kwargs in ({"allowed_special": "all"}, {"allowed_special": ["<|endoftext|>"]},
                   {"disallowed_special": ()}, {"disallowed_special": set()}):
        assert wrapped.encode(text, **kwargs) == ours.encode(text, **kwargs)  # type: ignore[arg-type]
    for encoder in (wrapped, ours):
        with pytest.raises(ValueError, match="<|endoftext|>"):
            encoder.encode(text)  # special-token text is refused by default
    ids = wrapped.encode(text, allowed_special="all")
    assert wrapped.decode(iter(ids)) == ours.decode(ids) == text
    assert wrapped.decode(ids[:1] + [0xBF]) == ours.decode(ids[:1] + [0xBF])  # broken UTF-8
    assert wrapped.vocab_size == ours.vocab_size == 50257


@needs_gpt2
@settings(max_examples=60, deadline=None)
@given(text=TEXTS)
def test_tiktoken_wrapper_agrees_on_random_text(text: str) -> None:
    assert TiktokenGPT2().encode_ordinary(text) == load_gpt2().encode_ordinary(text)


@needs_gpt2
def test_tiktoken_wrapper_dict_and_errors() -> None:
    wrapped = TiktokenGPT2()
    assert wrapped.to_dict() == {"kind": "tiktoken", "name": "gpt2"}
    again = TiktokenGPT2.from_dict(json.loads(json.dumps(wrapped.to_dict())))
    assert again.encode("hello world") == [31373, 995]
    for bad in ({"kind": "tiktoken", "name": "cl100k_base"}, load_gpt2().to_dict()):
        with pytest.raises(ValueError, match="not tiktoken's gpt2"):
            TiktokenGPT2.from_dict(bad)
    for ids in ([1, 50257], [-1]):
        with pytest.raises(ValueError, match=f"token id {ids[-1]} is not in the vocabulary"):
            wrapped.decode(ids)


def test_importing_the_tokenizer_does_not_import_torch() -> None:
    code = "import sys, minigpt.bpe; print(sorted(m for m in sys.modules if m.startswith('torch')))"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, check=True)
    assert result.stdout.strip() == "[]"


@settings(max_examples=60, deadline=None)
@given(text=TEXTS)
def test_the_index_counts_the_tokens_encoding_gives(text: str) -> None:
    """After training, the index's token count is the length of the text's encoding."""
    from collections import Counter

    from minigpt.bpe_train import PairIndex, bpe_tokenizer, learn_merges

    index = PairIndex(Counter(split_text(text, "gpt2")))
    tokenizer = bpe_tokenizer(learn_merges(index, 300), "gpt2")
    assert index.token_count() == len(tokenizer.encode_ordinary(text))


def test_the_index_counts_shakespeares_tokens() -> None:
    from collections import Counter

    from minigpt.bpe_train import PairIndex, bpe_tokenizer, learn_merges

    text = shakespeare()[:100_000]
    index = PairIndex(Counter(split_text(text, "gpt2")))
    tokenizer = bpe_tokenizer(learn_merges(index, 512), "gpt2")
    assert index.token_count() == len(tokenizer.encode_ordinary(text)) < len(text) // 2
