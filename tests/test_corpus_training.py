"""Chapter 11: training on token shards read from disk, window by window.

The shards are made here by chapter 10's prepare from a small parquet corpus. The checks: a
stream of shards is exactly their concatenation, its windows are chapter 5's, the corpus stage
trains (the loss falls) and resumes bit for bit, sample and eval work on its runs, bits per
byte divide by the documents' bytes, damaged shards are refused by name, and the compressor
benchmark measures the same validation text.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import signal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from minigpt.checkpoint import load_checkpoint
from minigpt.cli import main
from minigpt.compress import split_text
from minigpt.prepare import Plan, prepare
from minigpt.shard_data import TokenStream, corpus_stage
from minigpt.train import TrainConfig, get_batch, split_nll, train

WORDS = ("def f(x):\n    return x + 1\n", "class A:\n    pass\n", "import os\n",
         "for i in range(10):\n    print(i)\n", "# a comment \u00e9t\u00e9\n", "x = [1, 2, 3]\n")
TINY = dict(n_layer=1, n_head=2, n_embd=32, block_size=16, batch_size=8, eval_interval=10,
            eval_iters=2, sample_tokens=8, warmup_iters=5, lr=3e-3, min_lr=3e-4, max_time=None)


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("corpus")
    rng = random.Random(0)
    texts = ["".join(rng.choice(WORDS) for _ in range(rng.randint(5, 60))) for _ in range(80)]
    pq.write_table(pa.table({"id": [f"f{k}.py" for k in range(80)], "text": texts}),
                   folder / "code.parquet")
    prepare(Plan(f"data_files:{folder}/code.parquet", None, "bpe:300", None, 0.2),
            folder / "shards")
    return folder / "shards"


def cfg_for(shards: Path, **changes: object) -> TrainConfig:
    return TrainConfig(**{**TINY, "stage": "corpus", "data_dir": str(shards), **changes})


def test_a_stream_is_its_shards_concatenated() -> None:
    rng = np.random.default_rng(0)
    maps = [rng.integers(0, 500, size=n).astype(np.uint16) for n in (7, 1, 30, 12)]
    whole = np.concatenate(maps).astype(np.int64)
    stream = TokenStream(maps)
    assert stream.numel() == whole.size
    for _ in range(200):
        start, stop = sorted(rng.integers(0, whole.size + 1, size=2))
        assert stream[start:stop].tolist() == whole[start:stop].tolist()
    assert stream[:].dtype == torch.int64 and stream[40:].tolist() == whole[40:].tolist()


def test_windows_are_the_same_as_chapter_5s(shards: Path) -> None:
    data = corpus_stage(cfg_for(shards))
    on_disk = data.rows("train", 16, torch.device("cpu"))
    in_memory = data.train_ids[:].unfold(0, 17, 1)
    assert on_disk.size(0) == in_memory.size(0)
    a = get_batch(on_disk, 8, torch.Generator().manual_seed(3))
    b = get_batch(in_memory, 8, torch.Generator().manual_seed(3))
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_the_corpus_stage_learns_and_measures_bits_per_byte(shards: Path, tmp_path: Path) -> None:
    meta = json.loads((shards / "meta.json").read_text())
    data = corpus_stage(cfg_for(shards))
    assert data.val_bytes == meta["splits"]["val"]["bytes"]
    assert data.train_ids.numel() == meta["splits"]["train"]["tokens"]
    result = train(cfg_for(shards, max_iters=60), data, tmp_path / "run")
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    assert rows[-2]["val_loss"] < rows[0]["val_loss"] - 1.0  # it learned
    model = load_checkpoint(tmp_path / "run" / "ckpt.pt")
    assert model["train_config"]["data_dir"] == str(shards)
    nll, count = split_nll(train_model(tmp_path / "run"), data.val_ids, 16)
    assert result.val_bpb == pytest.approx(nll / data.val_bytes / math.log(2), rel=1e-6)
    assert result.val_loss == pytest.approx(nll / count, rel=1e-6)


def train_model(run: Path) -> torch.nn.Module:
    from minigpt.checkpoint import load_run
    return load_run(run, torch.device("cpu")).model


def test_an_interrupted_corpus_run_resumes_bit_for_bit(shards: Path, tmp_path: Path) -> None:
    cfg, data = cfg_for(shards, max_iters=16), corpus_stage(cfg_for(shards))
    straight: list[float] = []
    train(cfg, data, tmp_path / "a", on_step=lambda s, loss: straight.append(loss.item()))

    resumed: list[float] = []

    def ctrl_c_at_step_7(step: int, loss: torch.Tensor) -> None:
        resumed.append(loss.item())
        if step == 7:
            os.kill(os.getpid(), signal.SIGINT)

    assert train(cfg, data, tmp_path / "b", on_step=ctrl_c_at_step_7).step == 7
    train(cfg, corpus_stage(cfg), tmp_path / "b", resume=True,
          on_step=lambda s, loss: resumed.append(loss.item()))
    assert resumed == straight  # the same windows, in the same order, after the resume
    a = load_checkpoint(tmp_path / "a" / "ckpt.pt")["model"]
    b = load_checkpoint(tmp_path / "b" / "ckpt.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_train_sample_and_eval_from_the_command_line(
        shards: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = [f"{k}={'none' if v is None else v}" for k, v in TINY.items()]
    assert main(["train", "--stage", "corpus", "--data-dir", str(shards), "--out", "run",
                 "max_iters=20", *settings]) == 0
    assert "bits per byte" in capsys.readouterr().out
    assert main(["sample", "--run", "run", "--prompt", "def ", "--max-new-tokens", "20",
                 "--seed", "1"]) == 0
    assert capsys.readouterr().out.startswith("def ")
    monkeypatch.chdir(shards.parent)  # the run finds its shards from any folder
    assert main(["eval", "--run", str(tmp_path / "run"), "--split", "val"]) == 0
    out = capsys.readouterr().out
    meta = json.loads((shards / "meta.json").read_text())
    assert "bits per byte" in out and f"{meta['splits']['val']['bytes']:,} bytes" in out


def test_the_stage_refuses_what_it_cannot_train_on(
        shards: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--stage", "corpus", "--out", str(tmp_path / "r1")]) == 2
    assert "--data-dir" in capsys.readouterr().err
    assert main(["train", "--stage", "corpus", "--data-dir", str(tmp_path),
                 "--out", str(tmp_path / "r2")]) == 2
    assert "meta.json" in capsys.readouterr().err
    broken = tmp_path / "broken"
    shutil.copytree(shards, broken)
    (broken / "train-00000.bin").write_bytes(np.full(100, 60_000, np.uint16).tobytes())
    meta = json.loads((broken / "meta.json").read_text())
    meta["splits"]["train"]["tokens"] = 100 + sum(
        (broken / f"train-{k:05d}.bin").stat().st_size // 2
        for k in range(1, meta["splits"]["train"]["shards"]))
    (broken / "meta.json").write_text(json.dumps(meta))
    assert main(["train", "--stage", "corpus", "--data-dir", str(broken),
                 "--out", str(tmp_path / "r3")]) == 2
    err = capsys.readouterr().err
    assert "train-00000.bin" in err and "60000" in err and err.count("\n") == 1
    assert not (tmp_path / "r3").exists()


def test_the_compressors_see_the_validation_documents(shards: Path) -> None:
    text = split_text(shards, "val")
    meta = json.loads((shards / "meta.json").read_text())
    documents = meta["splits"]["val"]["documents"]
    assert len(text) == meta["splits"]["val"]["bytes"] + documents  # a newline after each


@pytest.mark.skipif(not all(shutil.which(c) for c in ("xz", "bzip2", "zstd")),
                    reason="needs the xz, bzip2 and zstd programs")
def test_bench_compress(shards: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "compress", "--data-dir", str(shards)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[1:]] == ["xz", "bzip2", "zstd"]
    bits = {line.split()[0]: [float(w) for w in line.split() if w.replace(".", "").isdigit()]
            for line in lines[1:]}
    assert all(0 < b < 8 for pair in bits.values() for b in pair)
    alone, given = bits["xz"]
    assert given < alone  # xz's dictionary reaches into the training text, which helps


def test_bench_code_counts_the_sampled_functions_that_parse(
        shards: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    train(cfg_for(shards, max_iters=30), corpus_stage(cfg_for(shards)), tmp_path / "run")
    capsys.readouterr()
    assert main(["bench", "code", "--run", str(tmp_path / "run"), "--samples", "6",
                 "--max-new-tokens", "40"]) == 0
    out = capsys.readouterr().out.splitlines()
    found, valid = int(out[1].split()[0]), int(out[1].split()[3])
    assert 0 <= valid <= found
    assert main(["bench", "code", "--run", str(tmp_path / "run"), "--samples", "0"]) == 2


@pytest.mark.parametrize("env, named", [({"RANK": "abc"}, "RANK='abc'"),
                                        ({"RANK": "2", "WORLD_SIZE": "2"}, "RANK=2")])
def test_a_bad_process_place_is_refused_by_name(
        env: dict[str, str], named: str, shards: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(["train", "--stage", "corpus", "--data-dir", str(shards),
                 "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert named in err and err.count("\n") == 1 and not (tmp_path / "run").exists()
