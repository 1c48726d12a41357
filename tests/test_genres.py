"""Chapter 15: text in a genre, control tokens, the genres stage, sample --condition, bench."""

from __future__ import annotations

import dataclasses
import json
import random
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from minigpt.checkpoint import load_run
from minigpt.cli import main
from minigpt.control import ControlTokenizer
from minigpt.genres import sample_texts, segments, text_start
from minigpt.genres_data import genre_split, genres_stage, read_documents
from minigpt.kv_cache import KVCache
from minigpt.model import GPT, GPTConfig
from minigpt.stages import preset
from minigpt.tokenizer import tokenizer_from_dict
from minigpt.train import split_nll

WORDS = {  # each genre its own words, so that a classifier of word counts tells them apart
    "fiction: mystery": "detective murder clue body night gun door dark".split(),
    "press: reportage": "mayor vote senate city council police bill tax".split(),
    "religion": "god faith church prayer soul lord spirit holy".split(),
}
BLOCK = 16
TINY = ["n_layer=1", "n_head=2", "n_embd=16", "batch_size=8", "max_iters=6", "eval_interval=3",
        "eval_iters=1", "max_time=none", f"block_size={BLOCK}"]


def document(genre: str, rng: random.Random) -> str:
    sentences = [" ".join(rng.choice([*WORDS[genre], "the", "a", "of"]) for _ in range(8))
                 for _ in range(14)]
    return "\n".join(sentence.capitalize() + "." for sentence in sentences)


def write_corpus(path: Path, rows: list[dict[str, Any]]) -> Path:
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = random.Random(0)
    rows = [{"id": f"{genre[:3]}{i}", "text": document(genre, rng), "genre": genre}
            for genre in WORDS for i in range(5)]
    return write_corpus(tmp_path_factory.mktemp("genres") / "corpus.parquet", rows)


@pytest.fixture(scope="module")
def run_dir(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("genres") / "run"
    assert main(["train", "--stage", "genres", "--data", str(corpus), "--out", str(out),
                 *TINY]) == 0
    return out


def config(corpus: Path, block_size: int = BLOCK) -> Any:
    return dataclasses.replace(preset("cpu", "genres"), data=str(corpus), block_size=block_size)


def test_control_tokens_follow_the_characters_and_no_text_encodes_to_one() -> None:
    tok = ControlTokenizer.from_texts(["abc <x>", "x"], ["x", "b"])
    assert tok.controls == ["b", "x"] and tok.first_control == len("<> abcx")
    assert tok.vocab_size == tok.first_control + 2
    ids = tok.encode("<x>")
    assert all(i < tok.first_control for i in ids) and tok.control_id("x") not in ids
    assert tok.decode([tok.control_id("x"), *tok.encode("ab")]) == "<x>ab"
    again = tokenizer_from_dict(json.loads(json.dumps(tok.to_dict())))
    assert again == tok and hash(again) == hash(tok)
    assert tok != ControlTokenizer("<> abcx", ["b", "y"])
    for bad in ([], ["a", "a"], [""]):
        with pytest.raises(ValueError, match="control tokens"):
            ControlTokenizer("ab", bad)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tok.decode([tok.vocab_size])
    with pytest.raises(ValueError, match="there are: b, x"):
        tok.control_id("y")


def test_segments_put_the_control_token_before_every_piece() -> None:
    rows = segments(7, torch.arange(10), block_size=4).view(-1, 4)
    assert rows[:, 0].tolist() == [7, 7, 7]
    assert rows[:, 1:].flatten().tolist() == list(range(9))  # the tenth falls short: dropped
    assert segments(7, torch.arange(2), block_size=4).numel() == 0


def test_the_split_is_stratified_fixed_and_independent_of_row_order(corpus: Path,
                                                                     tmp_path: Path) -> None:
    documents = read_documents(corpus)
    train, val = genre_split(documents)
    assert sorted(d.genre for d in val) == sorted([*WORDS] * 2)  # two of every genre
    assert {d.id for d in train}.isdisjoint(d.id for d in val)
    assert len(train) + len(val) == len(documents)
    shuffled = pq.read_table(corpus).to_pylist()
    random.Random(1).shuffle(shuffled)
    again = genre_split(read_documents(write_corpus(tmp_path / "shuffled.parquet", shuffled)))
    assert {d.id for d in again[1]} == {d.id for d in val}


def test_every_window_begins_with_its_documents_genre(corpus: Path) -> None:
    data = genres_stage(config(corpus))
    tok = data.tokenizer
    assert isinstance(tok, ControlTokenizer) and tok.controls == sorted(WORDS)
    train, val = genre_split(read_documents(corpus))
    for split, docs in (("train", train), ("val", val)):
        rows = data.rows(split, BLOCK, torch.device("cpu"))
        assert rows.shape[1] == BLOCK + 1
        assert bool((rows[:, 0] >= tok.first_control).all())  # a control token leads each
        assert bool((rows[:, 1:-1] < tok.first_control).all())  # then text only
        assert torch.equal(rows[1:, 0], rows[:-1, -1])  # each ends with the next one's
        # The windows hold each document's text in order, under that document's genre.
        piece = BLOCK - 1
        expected = [(tok.control_id(d.genre), d.text[i : i + piece]) for d in docs
                    for i in range(0, len(d.text) // piece * piece, piece)]
        got = [(row[0], tok.decode(row[1:-1])) for row in rows.tolist()]
        assert got == expected
    # The whole-split loss of chapter 5 predicts every token after the first, window by window.
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=BLOCK, n_layer=1, n_head=1,
                          n_embd=8))
    _, count = split_nll(model, data.val_ids, BLOCK)
    assert count == BLOCK * len(data.rows("val", BLOCK, torch.device("cpu")))
    assert data.val_bytes == sum(len(text) for _, text in expected)


@pytest.mark.parametrize("setting, named", [
    ("block_size=2", "block_size=2"),
    ("vocab_size=50", "vocab_size=50"),
])
def test_the_stage_refuses_settings_it_cannot_use(corpus: Path, tmp_path: Path, setting: str,
                                                  named: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["train", "--stage", "genres", "--data", str(corpus), "--out",
                   str(tmp_path / "r"), *TINY, setting])
    err = capsys.readouterr().err
    assert status == 2 and named in err and err.count("\n") == 1


def test_bad_corpora_are_one_line_errors(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    texts = [{"id": str(i), "text": "some text, " * 40, "genre": "a" if i < 3 else "b"}
             for i in range(5)]  # genre b has two documents: none left to train on
    cases = [
        ([], "give --data PATH"),
        (["--data", str(tmp_path / "absent.parquet")], "absent.parquet"),
        (["--data", str(Path(__file__))], "not a readable parquet file"),
        (["--data", str(write_corpus(tmp_path / "no-genre.parquet",
                                     [{"text": "abc"}]))], "no column 'genre'"),
        (["--data", str(write_corpus(tmp_path / "few.parquet", texts))], "genre 'b' has 2"),
    ]
    for argv, named in cases:
        status = main(["train", "--stage", "genres", "--out", str(tmp_path / "r"), *TINY,
                       *argv])
        err = capsys.readouterr().err
        assert status == 2 and named in err and err.count("\n") == 1, err
        assert "Traceback" not in err


def test_a_tiny_run_trains_evaluates_and_keeps_its_genres(run_dir: Path) -> None:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["final"] and rows[-1]["step"] == 6
    config = json.loads((run_dir / "config.json").read_text())
    assert config["train"]["stage"] == "genres" and config["train"]["sample_tokens"] == 0
    run = load_run(run_dir, torch.device("cpu"))
    assert isinstance(run.tokenizer, ControlTokenizer)
    assert run.tokenizer.controls == sorted(WORDS)
    assert main(["eval", "--run", str(run_dir)]) == 0


def test_a_run_resumes_with_the_vocabulary_it_saved(run_dir: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    assert main(["train", "--resume", "--out", str(copy), "max_iters=8"]) == 0
    assert json.loads((copy / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 8
    other = tmp_path / "other.parquet"
    rows = pq.read_table(json.loads((copy / "config.json").read_text())["train"]["data"])
    write_corpus(other, [{**row, "text": row["text"] + "~"} for row in rows.to_pylist()])
    capsys.readouterr()
    assert main(["eval", "--run", str(copy), "--data", str(other)]) == 2
    assert "does not give the run's vocabulary" in capsys.readouterr().err


def test_the_text_window_leaves_room_for_the_control_token() -> None:
    for block_size in (3, 4, 8, 9):
        for length in range(4 * block_size):
            start = text_start(length, block_size)
            assert 0 <= start <= length
            assert 1 + length - start <= block_size - 1  # control token + text, last one free
    assert text_start(5, 3) == 4  # one position of text: the newest character alone


class Spy(GPT):
    """A GPT that records the first token of every window it is given from its start."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__(config)
        self.leads: list[list[int]] = []

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None,
                cache: KVCache | None = None) -> Any:
        if cache is None or cache.length == 0:
            self.leads.append(idx[:, 0].tolist())
        return super().forward(idx, targets, cache=cache)


@pytest.mark.parametrize("kv_cache", [True, False])
def test_the_control_token_leads_every_window_however_long_the_text(kv_cache: bool) -> None:
    tok = ControlTokenizer("abcd", ["x", "y"])
    torch.manual_seed(0)
    model = Spy(GPTConfig(vocab_size=tok.vocab_size, block_size=8, n_layer=2, n_head=2,
                          n_embd=16))
    texts = sample_texts(model, tok, ["y", "x"], "ab", 40, kv_cache=kv_cache,
                         generator=torch.Generator().manual_seed(0))
    assert [len(t) for t in texts] == [42, 42] and set("".join(texts)) <= set("abcd")
    starts = 1 + (40 + 2 - 6) // 3  # the first window, then one per jump of 3 characters
    assert len(model.leads) == (starts if kv_cache else 40)
    assert all(lead == [tok.control_id("y"), tok.control_id("x")] for lead in model.leads)


def test_the_kv_cache_draws_the_same_text_as_the_full_window() -> None:
    tok = ControlTokenizer("abcdefgh", ["x", "y", "z"])
    torch.manual_seed(1)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=8, n_layer=2, n_head=2,
                          n_embd=16))
    drawn = [sample_texts(model, tok, ["x", "z", "y"], "", 50, kv_cache=kv_cache,
                          generator=torch.Generator().manual_seed(3))
             for kv_cache in (True, False)]
    assert drawn[0] == drawn[1]


def test_swapping_the_condition_changes_the_text() -> None:
    tok = ControlTokenizer("abcdefgh", ["x", "y"])
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=8, n_layer=1, n_head=1,
                          n_embd=8))
    with torch.no_grad():
        model.tok_emb.weight[tok.first_control:] *= 30  # the control tokens weigh heavily

    def one(genre: str) -> str:
        return sample_texts(model, tok, [genre], "", 30,
                            generator=torch.Generator().manual_seed(5))[0]
    assert one("x") == one("x") and one("x") != one("y")
    assert set(one("x") + one("y")) <= set("abcdefgh")  # the control tokens are masked out


def test_sample_writes_in_the_genre_asked_for(run_dir: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    base = ["sample", "--run", str(run_dir), "--condition", "fiction: mystery", "--seed", "1",
            "--max-new-tokens", "30"]
    assert main(base) == 0
    first = capsys.readouterr().out
    assert first.startswith("<fiction: mystery>\n") and len(first) == len(
        "<fiction: mystery>\n") + 30 + 1
    assert main(base) == 0 and capsys.readouterr().out == first  # the same seed, the same text
    out = tmp_path / "s.jsonl"
    assert main([*base, "--num-samples", "3", "--prompt", "The", "--out", str(out)]) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 3 and all(line["genre"] == "fiction: mystery" for line in lines)
    assert all(line["text"].startswith("The") and len(line["text"]) == 33 for line in lines)


@pytest.mark.parametrize("argv, named", [
    (["--condition", "fiction: myster"], "religion"),  # the message lists the genres
    (["--condition", "Religion"], "'Religion' is not one"),
    ([], "give --condition"),
    (["--condition", "religion", "--num-samples", "0"], "--num-samples 0"),
    (["--condition", "religion", "--out", "x.txt"], "x.txt"),
    (["--condition", "religion", "--max-new-tokens", "-1"], "--max-new-tokens -1"),
    (["--condition", "religion", "--prompt", "\u03a9"], "U+03A9"),
    (["--condition", "religion", "--temperature", "-1"], "temperature"),
    (["--condition", "religion", "--seed", "-1"], "--seed -1"),
])
def test_bad_sample_options_are_one_line_errors(run_dir: Path, argv: list[str], named: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sample", "--run", str(run_dir), *argv]) == 2
    err = capsys.readouterr().err
    assert named in err and err.count("\n") == 1 and "Traceback" not in err


def test_bench_genres_reports_the_judge_every_genre_and_the_swap(
        run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "genres", "--run", str(run_dir), "--per-genre", "2", "--length", "40"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    accuracy = float(out.split("it assigns ")[1].split("%")[0])
    assert accuracy > 90  # the genres' own words: naive Bayes tells them apart
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:1] == ["genre"]) + 1
    table = lines[start : start + len(WORDS)]
    assert [line.split()[0] for line in table] == [g.split()[0] for g in sorted(WORDS)]
    assert all(line.rstrip().endswith("%)") and " of 2 (" in line for line in table)
    assert lines[start + len(WORDS)].startswith("all: ") and " of 6 samples" in out
    assert f"the same seed under each of the {len(WORDS)} genres" in out
    assert main(argv) == 0 and capsys.readouterr().out == out  # seeded: the same report
    assert main([*argv[:-2], "--length", "0"]) == 2
    assert "--length 0" in capsys.readouterr().err


BROWN = Path(__file__).resolve().parents[2] / "shared" / "data" / "corpora" / "brown.parquet"


@pytest.mark.skipif(not BROWN.exists(), reason=f"no copy of the Brown Corpus at {BROWN}")
def test_the_brown_corpus_has_fifteen_genres_two_held_out_of_each() -> None:
    train, val = genre_split(read_documents(BROWN))
    assert len({d.genre for d in val}) == 15 and len(val) == 30 and len(train) == 470
    assert "fiction: mystery" in {d.genre for d in val}
