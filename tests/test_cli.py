"""Chapter 7: the command line end to end, on a model small enough to train in seconds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from minigpt.checkpoint import load_checkpoint
from minigpt.cli import main

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"
needs_data = pytest.mark.skipif(not DATA.exists(), reason=f"no local corpus at {DATA}")
TINY = ["n_layer=1", "n_head=1", "n_embd=16", "block_size=16", "batch_size=4", "max_iters=20",
        "eval_interval=10", "eval_iters=2", "sample_tokens=20", "max_time=none"]
FILES = ["ckpt.pt", "config.json", "loss.png", "metrics.jsonl", "samples.jsonl"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not DATA.exists():
        pytest.skip(f"no local corpus at {DATA}")
    out = tmp_path_factory.mktemp("cli") / "run"
    status = main(["train", "--stage", "char", "--preset", "cpu", "--out", str(out),
                   "--data", str(DATA), *TINY])
    assert status == 0
    return out


def test_train_writes_the_five_files(run_dir: Path) -> None:
    assert sorted(p.name for p in run_dir.iterdir()) == FILES
    config = json.loads((run_dir / "config.json").read_text())
    assert config["train"]["n_layer"] == 1 and config["train"]["data"] == str(DATA)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 10, 20, 20] and rows[-1]["final"]
    for key in ("step", "tokens", "elapsed_s", "train_loss", "val_loss", "lr"):
        assert key in rows[0]
    assert rows[1]["tokens"] == 10 * 4 * 16
    samples = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    assert [s["step"] for s in samples] == [0, 10, 20] and len(samples[-1]["text"]) == 21


def test_sample_and_eval(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["sample", "--run", str(run_dir), "--prompt", "ROMEO:", "--max-new-tokens", "30",
            "--seed", "5", "--top-k", "10", "--top-p", "0.9", "--temperature", "0.7"]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert first.startswith("ROMEO:") and len(first) == len("ROMEO:") + 30 + 1
    assert main(argv) == 0
    assert capsys.readouterr().out == first  # same seed, same text
    assert main(["eval", "--run", str(run_dir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["train", "val"]
    assert all("bits per byte" in line for line in lines)


def test_errors_are_one_line_and_status_2(run_dir: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sample", "--run", str(run_dir), "--prompt", "Zoë"]) == 2
    err = capsys.readouterr().err
    assert "ë" in err and "Traceback" not in err and err.count("\n") == 1
    assert main(["train", "--out", str(run_dir.parent / "x"), "n_layers=2"]) == 2
    err = capsys.readouterr().err
    assert "unknown setting 'n_layers'" in err and "n_layer, n_head" in err
    assert main(["train", "--out", str(run_dir.parent / "x"), "dropout=lots"]) == 2
    assert "dropout" in capsys.readouterr().err and not (run_dir.parent / "x").exists()
    assert main(["eval", "--run", str(run_dir.parent / "missing")]) == 2
    assert "missing" in capsys.readouterr().err
    (run_dir.parent / "bad.pt").write_bytes(b"not a checkpoint")
    assert main(["sample", "--run", str(run_dir.parent / "bad.pt")]) == 2
    assert "bad.pt" in capsys.readouterr().err


@needs_data
def test_resume_continues_the_run(tmp_path: Path) -> None:
    out = tmp_path / "run"
    short = [a for a in TINY if not a.startswith("max_iters")]
    assert main(["train", "--out", str(out), "--data", str(DATA), *short, "max_iters=10"]) == 0
    assert main(["train", "--out", str(out), "--resume", "max_iters=20"]) == 0
    assert load_checkpoint(out / "ckpt.pt")["step"] == 20
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [0, 10, 10, 20, 20]  # evaluations 0 and 10, final at 10; 20, final at 20


@needs_data
def test_max_time_flag_stops_the_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    unbounded = [a for a in TINY if not a.startswith(("max_iters", "max_time"))]
    argv = ["train", "--out", str(out), "--data", str(DATA), "--max-time", "1", *unbounded,
            "max_iters=1000000"]
    assert main(argv) == 0
    assert load_checkpoint(out / "ckpt.pt")["step"] < 1_000_000  # stopped by the clock
    assert "(max_time at step" in capsys.readouterr().out


@needs_data
def test_bench_train_prints_its_figures(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "train", "--preset", "cpu", "--steps", "3", "--data", str(DATA), *TINY]
    assert main(argv) == 0
    out = capsys.readouterr().out
    for word in ("tokens/s", "MiB", "loss:"):
        assert word in out


def test_python_dash_m_minigpt(run_dir: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "minigpt", "sample", "--run", str(run_dir),
                           "--max-new-tokens", "10", "--seed", "1"],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout) == 1 + 10 + 1  # the newline prompt, 10 characters, print's newline
    done = subprocess.run([sys.executable, "-m", "minigpt", "--help"], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=120)
    assert done.returncode == 0 and "train" in done.stdout and "bench" in done.stdout


def test_flags_and_overrides_are_one_typed_setting(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from minigpt.commands import settings

    args = argparse.Namespace(overrides=["max_time=30", "n_layer=2"], data="x.txt", max_time=30.0)
    assert settings(args) == {"max_time": 30.0, "n_layer": 2,  # typed values, and a path that
                              "data": os.path.abspath("x.txt")}  # names the file from anywhere
    out = str(tmp_path / "run")
    assert main(["train", "--out", out, "--max-time", "5", "max_time=6"]) == 2
    err = capsys.readouterr().err
    assert "--max-time 5.0 and max_time=6.0 disagree" in err and not Path(out).exists()


@pytest.mark.parametrize("argv, fault", [
    (["train", "--preset", "laptop"], "unknown preset 'laptop'; presets: cpu, gpu"),
    (["train", "--stage", "words"], "unknown stage 'words'; stages: char, bpe"),
    (["train", "vocab_size=100"], "vocab_size=100: the char stage's vocabulary"),
    (["bench", "train", "--preset", "laptop"], "unknown preset 'laptop'"),
])
def test_unknown_names_are_one_line_errors(argv: list[str], fault: str, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    if "--data" not in argv and DATA.exists():
        argv = [*argv, "--data", str(DATA)]
    if argv[0] == "train":
        argv = [*argv, "--out", str(tmp_path / "run")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert fault in err and err.count("\n") == 1


def test_commands_that_do_not_train_never_import_torch() -> None:
    """--help, the tokenizer commands and bench tokenizer start without loading PyTorch."""
    probe = ("import sys\n"
             "from minigpt.cli import build_parser, main\n"
             "build_parser()\n"
             "for argv in (['tokenizer', 'encode', '--tokenizer', 'x.bpe', '--text', 'a'],):\n"
             "    main(argv)  # a missing file: a one-line error, after the handler's imports\n"
             "import minigpt.tokenizer_cli, minigpt.tokenizer_bench\n"
             "print(sorted(m for m in ('torch', 'numpy', 'matplotlib') if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    assert "cannot read tokenizer x.bpe" in done.stderr


def test_the_parser_lists_the_tokenizer_patterns_of_chapter_8() -> None:
    from minigpt.bpe import PATTERNS
    from minigpt.cli import build_parser

    tokenizer = build_parser()._subparsers._group_actions[0].choices["tokenizer"]
    train = tokenizer._subparsers._group_actions[0].choices["train"]
    (pattern,) = [a for a in train._actions if a.dest == "pattern"]
    assert pattern.choices == list(PATTERNS)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the note is for machines without a GPU")
def test_the_gpu_preset_on_a_cpu_gets_a_note(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--preset", "gpu", "--out", str(tmp_path / "run"), *TINY,
                 "max_iters=2", "compile=false"]) == 0
    out = capsys.readouterr().out
    assert "note: the gpu preset" in out and "bench train --preset gpu" in out
    assert main(["train", "--preset", "cpu", "--out", str(tmp_path / "run2"), *TINY,
                 "max_iters=2"]) == 0
    assert "note: the gpu preset" not in capsys.readouterr().out


def test_sample_without_the_kv_cache_writes_the_same_text(
        run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["sample", "--run", str(run_dir), "--prompt", "ROMEO:", "--max-new-tokens", "40",
            "--top-k", "1"]  # greedy; 40 tokens run past the run's block_size of 16
    assert main(argv) == 0
    cached = capsys.readouterr().out
    assert main([*argv, "--no-kv-cache"]) == 0
    assert capsys.readouterr().out == cached and len(cached) == len("ROMEO:") + 40 + 1


def test_bench_generate_compares_the_two_ways(run_dir: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "generate", "--run", str(run_dir), "--new-tokens", "30"]) == 0
    out = capsys.readouterr().out
    assert "agree:      yes, the same tokens" in out
    speedup = next(line for line in out.splitlines() if line.startswith("speedup:"))
    assert float(speedup.split()[1].rstrip("x")) > 0
    assert main(["bench", "generate", "--preset", "nope"]) == 2
    assert "unknown preset 'nope'" in capsys.readouterr().err
    assert main(["bench", "generate", "--new-tokens", "0"]) == 2
    assert "--new-tokens 0" in capsys.readouterr().err
