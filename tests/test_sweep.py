"""Chapter 15: the sweep runner trains a grid, tabulates it with its noise, and resumes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from minigpt.cli import main
from minigpt.sweep import compare, parse_grid

TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak.\n\n" * 30
TINY = ["n_layer=1", "n_head=1", "block_size=8", "batch_size=4", "max_iters=4",
        "eval_interval=4", "eval_iters=1", "sample_tokens=0", "max_time=none"]
NAMES = ["n_embd=8,seed=1337", "n_embd=16,seed=1337", "n_embd=8,seed=1338",
         "n_embd=16,seed=1338"]  # in the order they run: round by round


def sweep(corpus: Path, out: Path, *extra: str) -> int:
    return main(["sweep", "--stage", "char", "--preset", "cpu", "--data", str(corpus),
                 "--grid", "n_embd=8,16", "--seeds", "2", "--out", str(out), *TINY, *extra])


def checkpoints(out: Path) -> dict[str, int]:
    return {name: (out / name / "ckpt.pt").stat().st_mtime_ns for name in NAMES}


@pytest.fixture()
def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def test_a_tiny_sweep_runs_tabulates_and_resumes(corpus: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sweep"
    assert sweep(corpus, out) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [*NAMES, "results.csv", "results.md", "results.png", "scaling.png"])
    for name, seed in zip(NAMES, [1337, 1337, 1338, 1338], strict=True):
        config = json.loads((out / name / "config.json").read_text())
        assert config["train"]["seed"] == seed and config["train"]["max_iters"] == 4
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [(r["n_embd"], r["seeds"]) for r in rows] == [("8", "2"), ("16", "2")]
    assert all(float(r["val_loss_mean"]) > 0 and float(r["val_loss_std"]) >= 0 for r in rows)
    assert all(r["steps_mean"] == "4.0" for r in rows)
    assert int(rows[0]["params"]) < int(rows[1]["params"])
    verdicts = sorted(r["verdict"] for r in rows)
    assert verdicts[0] == "best" and verdicts[1] in ("within noise of best", "worse")
    table = (out / "results.md").read_text()
    assert "| n_embd | seeds |" in table and " ± " in table and "best" in table
    assert (out / "results.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "scaling.png").read_bytes()[:4] == b"\x89PNG"  # n_embd changes the size

    first = checkpoints(out)
    assert list(first.values()) == sorted(first.values())  # trained round by round
    capsys.readouterr()
    assert sweep(corpus, out) == 0  # everything finished: nothing is trained again
    assert capsys.readouterr().out.count("finished before: skipped") == 4
    assert checkpoints(out) == first

    for path in (out / NAMES[1]).iterdir():  # one run deleted: only it is run again
        path.unlink()
    (out / NAMES[1]).rmdir()
    assert sweep(corpus, out) == 0
    again = checkpoints(out)
    assert [again[n] == first[n] for n in NAMES] == [True, False, True, True]


def test_a_half_done_run_is_resumed_from_its_checkpoint(corpus: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sweep"
    assert main(["sweep", "--data", str(corpus), "--seeds", "1", "--out", str(out), *TINY,
                 "n_embd=8"]) == 0
    metrics = out / "seed=1337" / "metrics.jsonl"
    lines = metrics.read_text().splitlines()
    metrics.write_text("\n".join(lines[:-1]) + "\n")  # as if stopped before the final record
    capsys.readouterr()
    assert main(["sweep", "--data", str(corpus), "--seeds", "1", "--out", str(out), *TINY,
                 "n_embd=8"]) == 0
    assert "resuming" in capsys.readouterr().out
    rows = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert rows[-1]["final"] and [r["step"] for r in rows].count(0) == 1  # not started over


def test_a_folder_with_other_settings_is_refused(corpus: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sweep"
    base = ["sweep", "--data", str(corpus), "--seeds", "1", "--out", str(out), *TINY]
    assert main([*base, "n_embd=8"]) == 0
    capsys.readouterr()
    assert main([*base, "n_embd=8", "lr=0.001"]) == 2
    err = capsys.readouterr().err
    assert "lr=0.003" in err and "lr=0.001" in err and "--out" in err


@pytest.mark.parametrize("spec, named", [
    ("n_head", "write KEY=V1,V2"),
    ("n_head=", "write KEY=V1,V2"),
    ("=1,2", "write KEY=V1,V2"),
    ("n_head=1,,2", "empty value"),
    ("n_hed=1,2", "did you mean n_head?"),
    ("n_head=one", "bad value for n_head: 'one'"),
    ("n_head=1,1", "listed twice"),
    ("seed=1,2", "--seeds"),
    ("lr=0.1", "also given for every run"),
])
def test_bad_grid_specs_are_named(spec: str, named: str, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sweep", "--out", str(tmp_path / "s"), "--grid", spec, "lr=0.2"]) == 2
    err = capsys.readouterr().err
    assert f"--grid {spec!r}" in err and named in err and err.count("\n") == 1
    assert not (tmp_path / "s").exists()


def test_a_combination_that_cannot_work_stops_the_sweep_before_it_starts(
        corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sweep", "--data", str(corpus), "--grid", "n_head=2,3", "--out",
                 str(tmp_path / "s"), "n_embd=16", *TINY[:1], *TINY[2:]]) == 2
    err = capsys.readouterr().err
    assert "grid point n_head=3" in err and not (tmp_path / "s").exists()
    assert main(["sweep", "--grid", "n_head=1,2", "--grid", "n_head=4", "--out",
                 str(tmp_path / "s")]) == 2
    assert "has a --grid already" in capsys.readouterr().err
    assert main(["sweep", "--seeds", "0", "--out", str(tmp_path / "s")]) == 2
    assert "--seeds 0" in capsys.readouterr().err


def test_parse_grid_keeps_the_values_as_written() -> None:
    assert parse_grid(["lr=1e-3,0.003"], {}) == [("lr", ["1e-3", "0.003"])]


def test_noise_is_stated() -> None:
    best = [1.0, 1.1, 0.9]
    assert compare(best, best).verdict == "best"
    assert compare([1.05, 1.15, 0.95], best).verdict == "within noise of best"
    far = compare([2.0, 2.1, 1.9], best)
    assert far.verdict == "worse" and far.difference == pytest.approx(1.0)
    assert far.error == pytest.approx((2 * 0.1**2 / 3) ** 0.5)
    assert compare([2.0], best).error is None
