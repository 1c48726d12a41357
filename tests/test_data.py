"""Chapter 1: the corpus, the tokenizer, the split and the batches."""

from __future__ import annotations

import hashlib
import io
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch

from minigpt import corpus
from minigpt.corpus import CorpusError, load_text
from minigpt.data import CharTokenizer, get_batch, split

SAMPLE = "First Citizen:\nBefore we proceed any further, hear me speak.\n"


class FakeResponse(io.BytesIO):
    def __enter__(self) -> FakeResponse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve(monkeypatch: pytest.MonkeyPatch, payload: bytes) -> list[str]:
    """Make urlopen answer every request with payload; the list collects the URLs asked for."""
    asked: list[str] = []

    def fake_urlopen(url: str, timeout: float) -> FakeResponse:
        asked.append(url)
        return FakeResponse(payload)

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    return asked


def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(url: str, timeout: float) -> None:
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(urllib.request, "urlopen", fail)


def test_download_is_checked_saved_and_then_read_from_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    payload = SAMPLE.encode()
    monkeypatch.setattr(corpus, "TINY_SHAKESPEARE_SHA256", hashlib.sha256(payload).hexdigest())
    asked = serve(monkeypatch, payload)
    path = corpus.tiny_shakespeare_path(tmp_path)
    assert path == tmp_path / corpus.CACHE_NAME and path.read_bytes() == payload
    assert asked == [corpus.TINY_SHAKESPEARE_URL]
    assert corpus.load_tiny_shakespeare(tmp_path) == SAMPLE
    assert len(asked) == 1  # the second read came from the cache
    assert not list(tmp_path.glob("*.part"))


def test_a_download_with_the_wrong_checksum_is_not_saved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    serve(monkeypatch, b"<html>please log in</html>")
    with pytest.raises(CorpusError, match="sha256") as e:
        corpus.tiny_shakespeare_path(tmp_path)
    assert "--data" in str(e.value)
    assert list(tmp_path.iterdir()) == []


def test_a_damaged_cached_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    asked = serve(monkeypatch, b"never asked")
    (tmp_path / corpus.CACHE_NAME).write_text(SAMPLE)  # not Tiny Shakespeare
    with pytest.raises(CorpusError, match="damaged") as e:
        corpus.load_tiny_shakespeare(tmp_path)
    assert hashlib.sha256(SAMPLE.encode()).hexdigest() in str(e.value)
    assert asked == []


def test_no_network_and_no_file_says_how_to_supply_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    offline(monkeypatch)
    monkeypatch.delenv("MINIGPT_DATA", raising=False)
    monkeypatch.setenv("MINIGPT_CACHE", str(tmp_path))
    with pytest.raises(OSError) as e:  # CorpusError is an OSError: the CLI reports it
        load_text()
    message = str(e.value)
    assert "could not download" in message and "Name or service not known" in message
    assert "--data PATH" in message and "MINIGPT_DATA" in message


def test_download_from_a_file_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "input.txt"
    source.write_text(SAMPLE)
    monkeypatch.setattr(corpus, "TINY_SHAKESPEARE_SHA256", corpus.sha256_of(source))
    path = corpus.tiny_shakespeare_path(tmp_path / "cache", url=source.as_uri())
    assert path.read_text() == SAMPLE


def test_a_local_file_is_read_whatever_it_contains(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    offline(monkeypatch)
    mine = tmp_path / "my corpus.txt"
    mine.write_text("not Shakespeare at all\n")
    monkeypatch.delenv("MINIGPT_DATA", raising=False)
    assert load_text(mine) == "not Shakespeare at all\n"
    assert load_text(str(mine)) == "not Shakespeare at all\n"
    monkeypatch.setenv("MINIGPT_DATA", str(mine))
    assert load_text() == "not Shakespeare at all\n"
    with pytest.raises(CorpusError, match="no corpus file at .*missing.txt .check the path"):
        load_text(tmp_path / "missing.txt")
    monkeypatch.setenv("MINIGPT_DATA", str(tmp_path))  # a folder, not a file
    with pytest.raises(CorpusError, match="fix .MINIGPT_DATA"):
        load_text()


def test_the_local_copy_is_tiny_shakespeare() -> None:
    text = load_text()  # MINIGPT_DATA points at a local copy where there is no network
    assert len(text) == corpus.TINY_SHAKESPEARE_BYTES
    assert hashlib.sha256(text.encode()).hexdigest() == corpus.TINY_SHAKESPEARE_SHA256
    assert CharTokenizer.from_text(text).vocab_size == 65


def test_encode_decode_round_trip() -> None:
    tok = CharTokenizer.from_text(SAMPLE)
    ids = tok.encode(SAMPLE)
    assert len(ids) == len(SAMPLE) and max(ids) == tok.vocab_size - 1
    assert tok.decode(ids) == SAMPLE
    assert tok.encode("") == [] and tok.decode([]) == ""
    assert tok.chars == "".join(sorted(set(SAMPLE)))
    assert CharTokenizer.from_dict(tok.to_dict()) == tok


def test_unknown_characters_and_ids_are_named() -> None:
    tok = CharTokenizer.from_text(SAMPLE)
    with pytest.raises(ValueError, match=r"'é' \(U\+00E9\) at position 4"):
        tok.encode("hearé")
    with pytest.raises(ValueError, match="'Z'.*'é'"):
        tok.encode("Zé")
    with pytest.raises(ValueError, match="token id -1"):
        tok.decode([0, -1])
    with pytest.raises(ValueError, match=f"token id {tok.vocab_size}"):
        tok.decode([tok.vocab_size])


def test_split_is_first_ninety_percent_then_the_rest() -> None:
    ids = torch.arange(1000)
    train, val = split(ids)
    assert len(train) == 900 and len(val) == 100
    assert torch.equal(torch.cat([train, val]), ids)
    a, b = split("abcdefghij", val_fraction=0.2)
    assert (a, b) == ("abcdefgh", "ij")
    with pytest.raises(ValueError, match="val_fraction"):
        split(ids, val_fraction=1.0)


def test_batches_have_the_right_shape_and_targets_are_shifted() -> None:
    ids = torch.arange(100)  # id == position, so a window's start can be read off
    x, y = get_batch(ids, block_size=8, batch_size=5, generator=torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (5, 8) and x.dtype == torch.int64
    assert torch.equal(y, x + 1)  # every target is the id after its input
    assert torch.equal(x[:, 1:] - x[:, :-1], torch.ones(5, 7, dtype=torch.int64))  # contiguous
    assert x.min() >= 0 and y.max() <= 99


def test_batches_reach_both_ends_and_never_beyond() -> None:
    ids = torch.arange(10)
    x, y = get_batch(ids, block_size=8, batch_size=200, generator=torch.Generator().manual_seed(0))
    assert set(x[:, 0].tolist()) == {0, 1}  # the only two windows of 9 ids
    with pytest.raises(ValueError, match="block_size=10"):
        get_batch(ids, block_size=10, batch_size=1)


def test_the_same_generator_seed_gives_the_same_batches() -> None:
    ids = torch.arange(10_000)
    a = get_batch(ids, 16, 4, torch.Generator().manual_seed(42))
    torch.manual_seed(0)  # the global generator plays no part
    b = get_batch(ids, 16, 4, torch.Generator().manual_seed(42))
    c = get_batch(ids, 16, 4, torch.Generator().manual_seed(43))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])
