"""Chapter 12: two gloo processes under torchrun (DDP, FSDP) train the run one process trains."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from minigpt.checkpoint import load_checkpoint, load_run
from minigpt.distributed import PlaceError, place_from_env

ROOT = Path(__file__).resolve().parents[1]
TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\n"
        "All:\nSpeak, speak.\n\n") * 40
TINY = ["n_layer=1", "n_head=2", "n_embd=16", "block_size=16", "batch_size=4", "max_iters=10",
        "eval_interval=5", "eval_iters=2", "sample_tokens=8", "warmup_iters=2", "max_time=none",
        "log_interval=1", "optimizer=adamw"]  # adamw: what fsdp can shard
TOLERANCE = 1e-5
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]


def minigpt(argv: list[str], processes: int = 1) -> subprocess.CompletedProcess[str]:
    """`python -m minigpt ARGV`, or the same under torchrun with two processes."""
    launcher = TORCHRUN if processes == 2 else [sys.executable]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    done = subprocess.run([*launcher, "-m", "minigpt", *argv], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def losses(run: Path) -> list[tuple[int, float, float | None]]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["val_loss"], r["train_loss"]) for r in rows]


def max_difference(a: Path, b: Path) -> float:
    """The largest difference of the two runs' weights and recorded losses."""
    wa, wb = load_checkpoint(a / "ckpt.pt")["model"], load_checkpoint(b / "ckpt.pt")["model"]
    assert wa.keys() == wb.keys()
    weights = max((wa[k] - wb[k]).abs().max().item() for k in wa)
    la, lb = losses(a), losses(b)
    assert [row[0] for row in la] == [row[0] for row in lb]
    records = max(abs(x - y) for ra, rb in zip(la, lb, strict=True)
                  for x, y in zip(ra[1:], rb[1:], strict=True) if x is not None)
    return max(weights, records)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """2-process runs (ddp, fsdp) with batch_size=4, and a 1-process run with grad_accum=2."""
    folder = tmp_path_factory.mktemp("ddp")
    corpus = folder / "corpus.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    data = ["--data", str(corpus)]
    two = minigpt(["train", *data, "--out", str(folder / "two"), *TINY], processes=2)
    minigpt(["train", *data, "--out", str(folder / "fsdp"), *TINY, "parallel=fsdp"], processes=2)
    minigpt(["train", *data, "--out", str(folder / "one"), *TINY, "grad_accum=2"])
    (folder / "two.out").write_text(two.stdout)
    return {"folder": folder, "two": folder / "two", "one": folder / "one",
            "fsdp": folder / "fsdp", "two.out": folder / "two.out"}


def test_two_processes_train_what_one_process_with_grad_accum_2_trains(
        runs: dict[str, Path]) -> None:
    assert max_difference(runs["two"], runs["one"]) < TOLERANCE
    two, one = load_checkpoint(runs["two"] / "ckpt.pt"), load_checkpoint(runs["one"] / "ckpt.pt")
    assert two["step"] == one["step"] == 10 and two["tokens"] == one["tokens"]


def test_fsdp_trains_what_one_process_trains_and_saves_it_whole(runs: dict[str, Path]) -> None:
    assert max_difference(runs["fsdp"], runs["one"]) < TOLERANCE
    fsdp, one = load_checkpoint(runs["fsdp"] / "ckpt.pt"), load_checkpoint(runs["one"] / "ckpt.pt")
    assert all(fsdp["model"][k].shape == w.shape for k, w in one["model"].items())
    # The optimizer's state is numbered as one process numbers it, so either can resume it.
    a, b = fsdp["optimizers"][0], one["optimizers"][0]
    assert [g["params"] for g in a["param_groups"]] == [g["params"] for g in b["param_groups"]]
    assert a["state"].keys() == b["state"].keys()
    for i, state in a["state"].items():
        for name, value in state.items():
            assert (value - b["state"][i][name]).abs().max().item() < TOLERANCE, (i, name)


def test_only_rank_0_prints(runs: dict[str, Path]) -> None:
    out = runs["two.out"].read_text()
    assert out.count("training ") == 1 and "2 processes" in out, out
    assert out.count("run saved in") == 1, out


def test_the_checkpoint_loads_without_torch_distributed(runs: dict[str, Path]) -> None:
    assert not torch.distributed.is_initialized()
    for name in ("two", "fsdp"):
        loaded = load_run(runs[name])
        assert not any(key.startswith("module.") for key in loaded.state["model"])


def test_a_two_process_checkpoint_resumes_in_one_process_as_the_same_run(
        runs: dict[str, Path]) -> None:
    folder = runs["folder"]
    for name in ("one", "two"):
        shutil.copytree(folder / name, folder / f"{name}-more")
    more = ["train", "--resume", "max_iters=15", "grad_accum=2"]
    minigpt([*more, "--out", str(folder / "one-more")])
    minigpt([*more, "--out", str(folder / "two-more")])  # one process, two's checkpoint
    assert load_checkpoint(folder / "two-more" / "ckpt.pt")["step"] == 15
    assert max_difference(folder / "two-more", folder / "one-more") < TOLERANCE
    shutil.copytree(folder / "fsdp", folder / "fsdp-more")  # and fsdp resumes fsdp
    minigpt(["train", "--resume", "max_iters=15", "--out", str(folder / "fsdp-more")],
            processes=2)
    assert max_difference(folder / "fsdp-more", folder / "one-more") < TOLERANCE


def test_ranks_agree_on_the_shape_of_chapter_15s_ramps(tmp_path: Path) -> None:
    """Every rank grows its batch and context at the same step, so the run is one run."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    ramps = ["batch_size_start=1", "seq_len_start=4", "ramp_frac=0.5"]
    data = ["--data", str(corpus)]
    minigpt(["train", *data, "--out", str(tmp_path / "two"), *TINY, *ramps], processes=2)
    minigpt(["train", *data, "--out", str(tmp_path / "one"), *TINY, *ramps, "grad_accum=2"])
    assert max_difference(tmp_path / "two", tmp_path / "one") < TOLERANCE
    two = load_checkpoint(tmp_path / "two" / "ckpt.pt")
    one = load_checkpoint(tmp_path / "one" / "ckpt.pt")
    assert two["tokens"] == one["tokens"] < 10 * 8 * 16  # ramped: fewer than 10 full steps


def test_a_bad_rank_is_refused_by_name() -> None:
    with pytest.raises(PlaceError, match="LOCAL_RANK='x'"):
        place_from_env({"LOCAL_RANK": "x"})


def test_the_corpus_stage_under_torchrun_is_the_same_run(tmp_path: Path) -> None:
    """Chapter 11's shards: two ranks turn the global batch's offsets into the same windows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from minigpt.prepare import Plan, prepare

    texts = [f"{TEXT[k * 50:k * 50 + 400]} #{k}\n" for k in range(40)]
    pq.write_table(pa.table({"id": [f"d{k}" for k in range(40)], "text": texts}),
                   tmp_path / "docs.parquet")
    prepare(Plan(f"data_files:{tmp_path}/docs.parquet", None, "bpe:300", None, 0.2),
            tmp_path / "shards")
    data = ["--stage", "corpus", "--data-dir", str(tmp_path / "shards")]
    minigpt(["train", *data, "--out", str(tmp_path / "two"), *TINY], processes=2)
    minigpt(["train", *data, "--out", str(tmp_path / "one"), *TINY, "grad_accum=2"])
    assert max_difference(tmp_path / "two", tmp_path / "one") < TOLERANCE
