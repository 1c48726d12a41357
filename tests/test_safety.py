"""Work that is not lost: existing runs and files, signals, torn records, diverged runs (issue 8).

Each test fails on the code before the fix it checks: a run replaced by a second `train`, a
tokenizer written over its own corpus, a SIGTERM with no final save, a Ctrl-C inside
torch.save, leftover temporaries, a torn metrics line, a NaN run that exits 0, a resumed run
whose preset changed or whose final record doubled.
"""

from __future__ import annotations

import json
import math
import os
import signal
from pathlib import Path

import pytest
import torch

from minigpt.checkpoint import load_checkpoint
from minigpt.cli import main
from minigpt.data import CharTokenizer
from minigpt.errors import UserError
from minigpt.train import TrainConfig, TrainData, Trainer, train

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"
needs_data = pytest.mark.skipif(not DATA.exists(), reason=f"no local corpus at {DATA}")
CLI_TINY = ["n_layer=1", "n_head=1", "n_embd=16", "block_size=16", "batch_size=4",
            "max_iters=20", "eval_interval=10", "eval_iters=2", "sample_tokens=20",
            "max_time=none"]
TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\n"
        "All:\nSpeak, speak.\n\n") * 30
TINY = dict(n_layer=1, n_head=2, n_embd=16, block_size=16, batch_size=8, max_iters=20,
            eval_interval=10, eval_iters=2, sample_tokens=16, warmup_iters=5, max_time=None)
RUN_FILES = ["ckpt.pt", "config.json", "loss.png", "metrics.jsonl", "samples.jsonl"]


def make_data() -> TrainData:
    tok = CharTokenizer.from_text(TEXT)
    cut = int(0.9 * len(TEXT))
    return TrainData.from_texts(tok, TEXT[:cut], TEXT[cut:])


def steps_of(path: Path) -> list[int]:
    return [json.loads(line)["step"] for line in path.read_text().splitlines()]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def cli_train(out: Path, *extra: str) -> int:
    return main(["train", "--out", str(out), "--data", str(DATA), *CLI_TINY, *extra])


# -- a new run never replaces an old one by accident ---------------------------------------


@needs_data
def test_a_second_train_into_a_run_folder_is_refused(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert cli_train(out) == 0
    before = snapshot(out)
    capsys.readouterr()
    assert cli_train(out, "n_layer=2") == 2
    err = one_line_error(capsys)
    assert "--resume" in err and "--overwrite" in err and "ckpt.pt" in err
    assert snapshot(out) == before  # not one byte of the old run changed


@pytest.mark.parametrize("name", ["config.json", "metrics.jsonl"])
def test_a_users_own_run_file_names_are_refused(name: str, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / name).write_text('{"mine": true}\n')  # a project's own file, no checkpoint
    assert main(["train", "--out", ".", "--data", str(DATA), *CLI_TINY]) == 2
    assert name in one_line_error(capsys)
    assert (tmp_path / name).read_text() == '{"mine": true}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


@needs_data
def test_overwrite_replaces_the_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert cli_train(out, "max_iters=30") == 0
    assert cli_train(out, "--overwrite") == 0
    assert "replaced once the new one's first checkpoint is saved" in capsys.readouterr().out
    assert steps_of(out / "metrics.jsonl") == [0, 10, 20, 20]  # the new run's records only
    assert load_checkpoint(out / "ckpt.pt")["step"] == 20
    assert sorted(p.name for p in out.iterdir()) == RUN_FILES
    assert main(["train", "--out", str(out), "--resume", "--overwrite"]) == 2
    assert "give one of them" in one_line_error(capsys)


def test_a_replacing_run_that_fails_early_leaves_the_old_run_whole(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = make_data()
    train(TrainConfig(**TINY), data, tmp_path)
    before = snapshot(tmp_path)
    with pytest.raises(UserError, match="--overwrite"):  # the library refuses it too
        train(TrainConfig(**TINY), data, tmp_path)

    def broken(self: Trainer) -> dict[str, float]:
        raise RuntimeError("out of memory")  # fails before the new run's first checkpoint

    monkeypatch.setattr(Trainer, "estimate", broken)
    with pytest.raises(RuntimeError, match="out of memory"):
        train(TrainConfig(**{**TINY, "n_embd": 32}), data, tmp_path, overwrite=True)
    assert snapshot(tmp_path) == before  # old config, old records, old checkpoint


# -- tokenizer train --out ----------------------------------------------------------------


def tokenizer_train(corpus: Path, out: Path, *extra: str) -> int:
    return main(["tokenizer", "train", "--input", str(corpus), "--vocab-size", "260",
                 "--out", str(out), *extra])


def test_tokenizer_train_never_writes_over_its_input(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT)
    assert tokenizer_train(corpus, corpus) == 2
    assert "--input" in one_line_error(capsys)
    assert tokenizer_train(corpus, tmp_path / "." / "corpus.txt", "--overwrite") == 2
    capsys.readouterr()
    assert corpus.read_text() == TEXT


def test_tokenizer_train_replaces_only_a_tokenizer_and_only_when_told(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT)
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    assert tokenizer_train(corpus, notes, "--overwrite") == 2
    assert "not a tokenizer file" in one_line_error(capsys)
    assert notes.read_text() == "my notes\n"
    out = tmp_path / "tok.bpe"
    assert tokenizer_train(corpus, out) == 0
    first = out.read_text()
    capsys.readouterr()
    assert tokenizer_train(corpus, out, "--vocab-size", "270") == 2
    assert "--overwrite" in one_line_error(capsys)
    assert out.read_text() == first
    assert tokenizer_train(corpus, out, "--vocab-size", "270", "--overwrite") == 0
    assert out.read_text() != first


# -- signals: SIGTERM stops like Ctrl-C, and no signal cuts a checkpoint short --------------


class Killed(Exception):
    """What SIGTERM does in these tests when the run does not handle it (instead of dying)."""


def test_sigterm_stops_the_run_with_a_final_save(tmp_path: Path) -> None:
    def die(signum: int, frame: object) -> None:
        raise Killed

    def sigterm_at_7(step: int, loss: torch.Tensor) -> None:
        if step == 7:
            os.kill(os.getpid(), signal.SIGTERM)  # what timeout, kill and schedulers send

    previous = signal.signal(signal.SIGTERM, die)
    try:
        result = train(TrainConfig(**TINY), make_data(), tmp_path, on_step=sigterm_at_7)
        assert signal.getsignal(signal.SIGTERM) is die  # put back after the run
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert result.reason == "interrupted" and result.step == 7
    assert load_checkpoint(tmp_path / "ckpt.pt")["step"] == 7


def test_sigterm_during_the_final_evaluation_stops_it_like_ctrl_c(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def die(signum: int, frame: object) -> None:
        raise Killed

    real = Trainer.whole_validation

    def sigterm_then_measure(self: Trainer) -> tuple[float, float]:
        os.kill(os.getpid(), signal.SIGTERM)  # arrives inside the measurement
        return real(self)

    monkeypatch.setattr(Trainer, "whole_validation", sigterm_then_measure)
    previous = signal.signal(signal.SIGTERM, die)
    try:
        result = train(TrainConfig(**TINY), make_data(), tmp_path)
        assert signal.getsignal(signal.SIGTERM) is die
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert result.reason == "interrupted" and result.step == 20 and result.val_loss is None
    assert load_checkpoint(tmp_path / "ckpt.pt")["step"] == 20
    assert not any(json.loads(line).get("final")
                   for line in (tmp_path / "metrics.jsonl").read_text().splitlines())
    monkeypatch.setattr(Trainer, "whole_validation", real)
    again = train(TrainConfig(**TINY), make_data(), tmp_path, resume=True)  # measures it now
    assert again.reason == "max_iters" and again.val_loss is not None


def test_a_second_ctrl_c_inside_the_save_waits_for_it(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    real_save = torch.save

    def save_with_ctrl_c(obj: dict, f: object, *args: object, **kwargs: object) -> None:
        if obj.get("step") == 7:
            os.kill(os.getpid(), signal.SIGINT)  # the user insists, mid-write
        real_save(obj, f, *args, **kwargs)

    def ctrl_c_at_7(step: int, loss: torch.Tensor) -> None:
        if step == 7:
            os.kill(os.getpid(), signal.SIGINT)  # the first Ctrl-C: stop and save

    monkeypatch.setattr(torch, "save", save_with_ctrl_c)
    with pytest.raises(KeyboardInterrupt):  # main turns it into exit status 130
        train(TrainConfig(**TINY), make_data(), tmp_path, on_step=ctrl_c_at_7)
    assert load_checkpoint(tmp_path / "ckpt.pt")["step"] == 7  # the save finished first
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


# -- stale temporaries ----------------------------------------------------------------------


def test_opening_a_run_folder_removes_stale_temporaries(tmp_path: Path) -> None:
    data = make_data()
    train(TrainConfig(**{**TINY, "max_iters": 10}), data, tmp_path)
    stale = [tmp_path / ".ckpt.pt.k2j4x8.tmp", tmp_path / ".metrics.jsonl.a1b2.tmp"]
    mine = [tmp_path / ".notes.txt.a1b2.tmp", tmp_path / "ckpt.pt.tmp"]  # not ours: kept
    for path in stale + mine:
        path.write_bytes(b"\0" * 1000)
    train(TrainConfig(**TINY), data, tmp_path, resume=True)
    assert not any(p.exists() for p in stale) and all(p.exists() for p in mine)
    stale[0].write_bytes(b"\0" * 1000)
    train(TrainConfig(**TINY), data, tmp_path, overwrite=True)  # a new run opens it too
    assert not stale[0].exists()


# -- torn and malformed records -------------------------------------------------------------


def test_a_torn_last_record_is_dropped_on_resume(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    data = make_data()
    train(TrainConfig(**{**TINY, "max_iters": 10}), data, tmp_path)
    with (tmp_path / "metrics.jsonl").open("a") as f:
        f.write('{"step": 10, "tokens": 12')  # a kill in the middle of an append
    capsys.readouterr()
    result = train(TrainConfig(**TINY), data, tmp_path, resume=True)
    assert result.step == 20
    out = capsys.readouterr().out
    assert out.count("torn last line") == 1 and "metrics.jsonl" in out
    assert steps_of(tmp_path / "metrics.jsonl") == [0, 10, 10, 20, 20]


@needs_data
def test_a_malformed_record_line_is_an_error_naming_it(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert cli_train(out, "max_iters=10") == 0
    metrics = out / "metrics.jsonl"
    lines = metrics.read_text().splitlines(keepends=True)
    metrics.write_text(lines[0] + "not json\n" + "".join(lines[1:]))
    capsys.readouterr()
    assert main(["train", "--out", str(out), "--resume"]) == 2
    assert f"{metrics}:2:" in one_line_error(capsys)


# -- a diverged run stops, and keeps its last good checkpoint ---------------------------------


def poison(trainer: Trainer) -> None:
    with torch.no_grad():
        for p in trainer.model.parameters():
            p.fill_(math.nan)


@pytest.mark.parametrize("log_interval", [10, 1000])  # found at a log step, or at evaluation
def test_a_run_whose_loss_becomes_nan_stops_unsaved(log_interval: int, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    real_step = Trainer.train_step

    def step_then_diverge(self: Trainer) -> torch.Tensor:
        loss = real_step(self)
        if self.step == 13:
            poison(self)
        return loss

    monkeypatch.setattr(Trainer, "train_step", step_then_diverge)
    cfg = TrainConfig(**{**TINY, "log_interval": log_interval})
    with pytest.raises(UserError) as e:
        train(cfg, make_data(), tmp_path)
    assert "step 20" in str(e.value) and f"{tmp_path / 'ckpt.pt'}, step 10" in str(e.value)
    assert getattr(e.value, "exit_status", None) == 1  # a failed run, not bad input
    saved = load_checkpoint(tmp_path / "ckpt.pt")
    assert saved["step"] == 10
    assert all(torch.isfinite(w).all() for w in saved["model"].values())
    assert steps_of(tmp_path / "metrics.jsonl") == [0, 10]


@needs_data
def test_a_diverged_run_exits_1_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    real_step = Trainer.train_step

    def step_then_diverge(self: Trainer) -> torch.Tensor:
        loss = real_step(self)
        if self.step == 5:
            poison(self)
        return loss

    monkeypatch.setattr(Trainer, "train_step", step_then_diverge)
    assert cli_train(tmp_path / "run") == 1
    err = one_line_error(capsys)
    assert "at step 10" in err and "step 0" in err and "nan" in err


# -- resuming keeps what the run is, and records its end once --------------------------------


@needs_data
@pytest.mark.parametrize("flag, value", [("--preset", "gpu"), ("--stage", "bpe")])
def test_resume_refuses_another_stage_or_preset(flag: str, value: str, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert cli_train(out, "max_iters=10") == 0
    before = snapshot(out)
    capsys.readouterr()
    assert main(["train", "--out", str(out), "--resume", flag, value, "max_iters=20"]) == 2
    err = one_line_error(capsys)
    assert flag.lstrip("-") in err and repr(value) in err
    assert snapshot(out) == before
    assert main(["train", "--out", str(out), "--resume", "--preset", "cpu",
                 "max_iters=20"]) == 0  # the run's own preset is fine


def test_resuming_a_finished_run_records_no_second_final(tmp_path: Path) -> None:
    data = make_data()
    first = train(TrainConfig(**TINY), data, tmp_path)
    records = (tmp_path / "metrics.jsonl").read_text()
    for _ in range(2):
        again = train(TrainConfig(**TINY), data, tmp_path, resume=True)
        assert again.val_loss == first.val_loss and again.step == 20
    assert (tmp_path / "metrics.jsonl").read_text() == records
    assert steps_of(tmp_path / "metrics.jsonl") == [0, 10, 20, 20]
