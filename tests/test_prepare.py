"""Chapter 10: documents from files and the standard library, split by id, written as shards.

Every corpus here is made by the test (text, JSON lines, parquet), except the standard library
of the running Python. The checks: the shards decode to the documents exactly, the counts in
meta.json are the shards' sizes, the split depends on ids alone, an interrupted run resumes to
the same bytes, and every bad input is one clear error with nothing half-written left behind.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from minigpt import prepare as prepare_module
from minigpt.bpe import BPETokenizer, TiktokenGPT2
from minigpt.cli import main
from minigpt.errors import CliError
from minigpt.prepare import Plan, prepare
from minigpt.shards import MIN_VAL_DOCUMENTS, Splitter, hash_fraction, open_shards
from minigpt.sources import Document, stdlib_documents, stdlib_files

WORDS = ("the king doth wake tonight and sleeps again; "
         "def f(x):\n    return x + 1\n \u00e9t\u00e9 \u2014 na\u00efve \U0001f600 ").split(" ")


def make_texts(count: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 400))) + f" #{k}\n"
            for k in range(count)]


def write_parquet(path: Path, texts: list[str], column: str = "text") -> Path:
    ids = [f"doc/{k}" for k in range(len(texts))]
    pq.write_table(pa.table({"id": ids, column: texts}), path)
    return path


def documents_of(folder: Path, split: str, tokenizer: BPETokenizer | TiktokenGPT2,
                 eot: int) -> list[str]:
    """The shards of a split cut at the end-of-text token, each piece decoded."""
    tokens = np.concatenate([np.asarray(m) for m in open_shards(folder, split)])
    starts = np.flatnonzero(tokens == eot)
    assert starts.size and starts[0] == 0  # every document starts with the marker
    ends = [*starts[1:], tokens.size]
    return [tokenizer.decode(tokens[s + 1:e].tolist()) for s, e in zip(starts, ends, strict=True)]


def plan(source: str, tokenizer: str = "bpe:300", **changes: object) -> Plan:
    settings = {"text_column": None, "max_bytes": None, "val_fraction": 0.2} | changes
    return Plan(source, tokenizer=tokenizer, **settings)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    folder = tmp_path_factory.mktemp("corpus")
    texts = make_texts(60)
    return write_parquet(folder / "docs.parquet", texts), texts


def test_the_shards_decode_to_the_documents_and_meta_counts_them(
        corpus: tuple[Path, list[str]], tmp_path: Path) -> None:
    path, texts = corpus
    meta = prepare(plan(f"data_files:{path}"), tmp_path / "out")
    tokenizer = BPETokenizer.load(tmp_path / "out" / "tokenizer.json")
    assert meta["vocab_size"] == tokenizer.vocab_size == 300 and meta["dtype"] == "uint16"
    eot = meta["end_of_text"]
    found = []
    for split in ("train", "val"):
        docs = documents_of(tmp_path / "out", split, tokenizer, eot)
        stats = meta["splits"][split]
        assert stats["documents"] == len(docs)
        assert stats["tokens"] == sum(m.size for m in open_shards(tmp_path / "out", split))
        assert stats["bytes"] == sum(len(d.encode()) for d in docs)
        found += docs
    assert sorted(found) == sorted(texts)  # every document, whole, exactly once
    assert meta["splits"]["val"]["documents"] >= MIN_VAL_DOCUMENTS
    assert json.loads((tmp_path / "out" / "meta.json").read_text()) == meta
    assert not (tmp_path / "out" / "progress.json").exists()


@pytest.mark.parametrize("kind", ["text", "jsonl"])
def test_text_and_json_lines_files(kind: str, tmp_path: Path) -> None:
    texts = make_texts(12, seed=3)
    if kind == "text":
        for k, text in enumerate(texts):
            (tmp_path / f"doc{k:02d}.txt").write_text(text, encoding="utf-8")
        pattern = str(tmp_path / "*.txt")
    else:
        lines = [json.dumps({"body": t}) for t in texts]
        (tmp_path / "docs.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        pattern = str(tmp_path / "docs.jsonl")
    column = "body" if kind == "jsonl" else None
    meta = prepare(plan(f"data_files:{pattern}", "gpt2", text_column=column), tmp_path / "out")
    tokenizer = TiktokenGPT2()
    found = [d for split in ("train", "val")
             for d in documents_of(tmp_path / "out", split, tokenizer, meta["end_of_text"])]
    assert sorted(found) == sorted(texts)
    assert meta["tokenizer"] == {"kind": "tiktoken", "name": "gpt2"}


def test_the_split_depends_on_ids_not_on_order() -> None:
    docs = [Document(f"doc/{k}", f"text {k}") for k in range(300)]

    def val_ids(order: list[Document]) -> set[str]:
        splitter = Splitter(0.05)
        out = [pair for position, doc in enumerate(order)
               for pair in splitter.assign(doc, position)]
        out += list(splitter.finish(sum(1 for split, _ in out if split == "train")))
        assert sorted(d.id for _, d in out) == sorted(d.id for d in docs)  # each one, once
        return {d.id for split, d in out if split == "val"}

    shuffled = docs[:]
    random.Random(1).shuffle(shuffled)
    expected = {d.id for d in docs if hash_fraction(d.id) < 0.05}
    assert val_ids(docs) == val_ids(shuffled) == expected and len(expected) > MIN_VAL_DOCUMENTS


def test_a_small_corpus_gets_the_floor_of_validation_documents() -> None:
    docs = [Document(f"play/{k}", "x") for k in range(10)]
    splitter = Splitter(0.001)  # by hash alone, no document would be in validation
    out = [p for position, doc in enumerate(docs) for p in splitter.assign(doc, position)]
    out += list(splitter.finish(sum(1 for split, _ in out if split == "train")))
    val = sorted((d for split, d in out if split == "val"), key=lambda d: hash_fraction(d.id))
    smallest = sorted(docs, key=lambda d: hash_fraction(d.id))[:MIN_VAL_DOCUMENTS]
    assert val == smallest


def test_training_keeps_a_document_when_the_floor_would_take_them_all() -> None:
    docs = [Document(f"d{k}", "x") for k in range(MIN_VAL_DOCUMENTS)]
    splitter = Splitter(0.001)
    out = [p for position, doc in enumerate(docs) for p in splitter.assign(doc, position)]
    out += list(splitter.finish(0))
    assert [split for split, _ in out].count("train") == 1


def test_an_interrupted_prepare_resumes_to_the_same_shards(
        corpus: tuple[Path, list[str]], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    path, _ = corpus
    monkeypatch.setattr(prepare_module, "CHUNK_BYTES", 5_000)  # many chunks, many shards
    whole = prepare(plan(f"data_files:{path}"), tmp_path / "whole")
    assert whole["splits"]["train"]["shards"] > 3

    real_write = prepare_module.Preparer.write_chunk
    calls = {"n": 0}

    def write_then_die(self: prepare_module.Preparer, *args: object, **kwargs: object) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # a Ctrl-C in the middle of the third chunk's encoding
        real_write(self, *args, **kwargs)

    monkeypatch.setattr(prepare_module.Preparer, "write_chunk", write_then_die)
    with pytest.raises(KeyboardInterrupt):
        prepare(plan(f"data_files:{path}"), tmp_path / "resumed")
    assert (tmp_path / "resumed" / "progress.json").exists()
    assert not (tmp_path / "resumed" / "meta.json").exists()  # unfinished, and it says so
    done = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "resumed").glob("*.bin")}

    monkeypatch.setattr(prepare_module.Preparer, "write_chunk", real_write)
    resumed = prepare(plan(f"data_files:{path}"), tmp_path / "resumed")
    assert resumed["splits"] == whole["splits"]
    for shard in (tmp_path / "whole").glob("*.bin"):
        assert (tmp_path / "resumed" / shard.name).read_bytes() == shard.read_bytes()
    for name, mtime in done.items():  # the shards finished before the interruption: not redone
        assert (tmp_path / "resumed" / name).stat().st_mtime_ns == mtime


def test_two_processes_write_what_one_writes(corpus: tuple[Path, list[str]],
                                             tmp_path: Path) -> None:
    path, _ = corpus
    prepare(plan(f"data_files:{path}", "gpt2"), tmp_path / "one", num_proc=1)
    prepare(plan(f"data_files:{path}", "gpt2"), tmp_path / "two", num_proc=2)
    for shard in (tmp_path / "one").glob("*.bin"):
        assert (tmp_path / "two" / shard.name).read_bytes() == shard.read_bytes()


def test_resuming_with_other_settings_is_refused(corpus: tuple[Path, list[str]],
                                                 tmp_path: Path) -> None:
    path, _ = corpus
    out = tmp_path / "out"
    out.mkdir()
    (out / "progress.json").write_text(json.dumps({"plan": {"source": "dataset:code"}}))
    with pytest.raises(CliError, match="other settings"):
        prepare(plan(f"data_files:{path}"), out)


def test_the_standard_library_is_a_corpus_with_a_few_files_that_are_not_utf8() -> None:
    files = stdlib_files()
    assert len(files) > 500 and not any("site-packages" in p.parts for p in files)
    replaced = [d.id for d in stdlib_documents() if d.replaced]
    assert 0 < len(replaced) < 20  # a handful of Latin-1 test files, decoded, not fatal


def test_the_prepare_command(corpus: tuple[Path, list[str]], tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    path, texts = corpus
    out = tmp_path / "out"
    argv = ["prepare", "--data-files", str(path), "--tokenizer", "gpt2", "--out", str(out),
            "--max-bytes", "20kB", "--num-proc", "1"]
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("train") and lines[1].startswith("val")
    meta = json.loads((out / "meta.json").read_text())
    assert 20_000 <= sum(s["bytes"] for s in meta["splits"].values()) < 20_000 + 3_000
    assert "--max-bytes 20000" in meta["command"]
    assert main(argv) == 2  # finished: not made again unless told
    assert "--overwrite" in capsys.readouterr().err
    assert main([*argv, "--overwrite"]) == 0


def bad(tmp_path: Path, name: str) -> list[str]:
    """Command lines that must fail with one line, and write no shard."""
    (tmp_path / "empty.parquet").parent.mkdir(exist_ok=True)
    write_parquet(tmp_path / "empty.parquet", [])
    write_parquet(tmp_path / "content.parquet", make_texts(5), column="content")
    (tmp_path / "mine").mkdir(exist_ok=True)
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    out = ["--out", str(tmp_path / "out")]
    return {
        "empty": ["--data-files", str(tmp_path / "empty.parquet"), "--tokenizer", "gpt2", *out],
        "no-column": ["--data-files", str(tmp_path / "content.parquet"), "--tokenizer", "gpt2",
                      *out],
        "offline": ["--dataset", "wikipedia", "--tokenizer", "gpt2", *out],
        "unknown": ["--dataset", "wikipedai", "--tokenizer", "gpt2", *out],
        "no-match": ["--data-files", str(tmp_path / "*.nothing"), "--tokenizer", "gpt2", *out],
        "bad-vocab": ["--data-files", str(tmp_path / "content.parquet"), "--tokenizer", "bpe:x",
                      *out],
        "bad-size": ["--dataset", "python-stdlib", "--tokenizer", "gpt2", "--max-bytes", "lots",
                     *out],
        "not-ours": ["--dataset", "python-stdlib", "--tokenizer", "gpt2", "--out",
                     str(tmp_path / "mine")],
    }[name]


@pytest.mark.parametrize("name, says", [
    ("empty", "no documents"), ("no-column", "no column 'text' (columns: id, content)"),
    ("offline", "--data-files"), ("unknown", "wikipedai"), ("no-match", "*.nothing"),
    ("bad-vocab", "bpe:x"), ("bad-size", "lots"), ("not-ours", "notes.txt"),
])
def test_bad_input_is_one_line_and_leaves_no_shards(
        name: str, says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["prepare", *bad(tmp_path, name)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and says in err, err
    assert not list(tmp_path.glob("out/*.bin")) and not (tmp_path / "out" / "meta.json").exists()


def test_bench_prepare_times_both_ways(corpus: tuple[Path, list[str]],
                                       capsys: pytest.CaptureFixture[str]) -> None:
    path, texts = corpus
    assert main(["bench", "prepare", "--data-files", str(path), "--tokenizer", "bpe:300",
                 "--num-proc", "2"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "MB/s" in line]
    assert [line.split(",")[0] for line in lines] == ["plain way", "prepare"]
    assert all(float(line.split("MB/s")[0].split()[-1]) > 0 for line in lines)
