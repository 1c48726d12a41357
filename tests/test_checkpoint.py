"""Chapter 5: checkpoints are written atomically and read as data only."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from minigpt.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_run,
    run_tokenizer,
    save_checkpoint,
)
from minigpt.errors import UserError
from minigpt.tokenizer import tokenizer_from_dict


def a_state(value: float) -> dict:
    return {"model": {"w": torch.full((3,), value)}, "model_args": {}, "train_config": {},
            "tokenizer": {"kind": "char", "chars": "ab"}, "step": int(value)}


def test_round_trip_and_plain_weights_only_load(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.pt"
    save_checkpoint(a_state(1.0), path)
    state = load_checkpoint(path)
    assert torch.equal(state["model"]["w"], torch.ones(3)) and state["step"] == 1
    raw = torch.load(path, weights_only=True)  # data only: no code needed to read it
    assert raw["format"] == "minigpt-checkpoint"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt"]  # no temp file left


def test_a_failed_write_keeps_the_old_checkpoint(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ckpt.pt"
    save_checkpoint(a_state(1.0), path)

    def save_half_then_fail(obj: object, f: object) -> None:
        f.write(b"PK\x03\x04 half a checkpoint")  # type: ignore[attr-defined]
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", save_half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(a_state(2.0), path)
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1  # the old one, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt"]


def test_corrupt_file_is_rejected_with_its_name(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.pt"
    save_checkpoint(a_state(1.0), path)
    path.write_bytes(path.read_bytes()[:100])  # truncated
    with pytest.raises(CheckpointError, match="not a readable checkpoint") as err:
        load_checkpoint(path)
    assert str(path) in str(err.value)
    path.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(CheckpointError, match="ckpt.pt"):
        load_checkpoint(path)


def test_foreign_torch_file_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "other.pt"
    torch.save({"weights": torch.randn(3)}, path)
    with pytest.raises(CheckpointError, match="not a MiniGPT checkpoint") as err:
        load_checkpoint(path)
    assert str(path) in str(err.value)
    torch.save({"format": "minigpt-checkpoint", "version": 999}, path)
    with pytest.raises(CheckpointError, match="version 999"):
        load_checkpoint(path)


class RunsCode:
    """An object whose unpickling would create a file: what a malicious checkpoint does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return (Path.touch, (self.marker,))


def test_pickle_with_code_is_refused_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    def plain_pickle(obj: object, path: Path) -> None:
        path.write_bytes(pickle.dumps(obj, protocol=2))

    for path, dump in ((tmp_path / "evil.pt", torch.save), (tmp_path / "evil.pkl", plain_pickle)):
        dump({"format": "minigpt-checkpoint", "payload": RunsCode(marker)}, path)
        with pytest.raises(CheckpointError, match=path.name):
            load_checkpoint(path)
        assert not marker.exists()


def test_missing_file_and_unknown_tokenizer(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        load_checkpoint(tmp_path / "nothing.pt")
    with pytest.raises(ValueError, match="unknown tokenizer kind 'morse'; known kinds: char"):
        tokenizer_from_dict({"kind": "morse"})


def test_a_checkpoint_whose_tokenizer_cannot_be_rebuilt_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "morse.pt"
    save_checkpoint({**a_state(1.0), "tokenizer": {"kind": "morse"}}, path)
    with pytest.raises(CheckpointError, match=r"morse\.pt.*unknown tokenizer kind") as e:
        run_tokenizer(path)
    assert isinstance(e.value, UserError)  # the command line reports it in one line
    with pytest.raises(CheckpointError, match=r"morse\.pt: weights do not fit .*Missing key"):
        load_run(path)  # the weights are checked first, and the message says what is wrong
