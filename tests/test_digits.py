"""Chapter 15: images as tokens, the digits stage, sampling under a condition, bench digits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from minigpt.cli import main
from minigpt.digits import (
    CLASSES,
    LEVELS,
    PIXELS,
    SEQUENCE,
    TOKENIZER,
    sample_images,
    sequences,
)
from minigpt.digits_data import digit_split, digits_stage, split_order
from minigpt.model import GPT, GPTConfig
from minigpt.stages import preset

TINY = ["n_layer=1", "n_head=2", "n_embd=16", "batch_size=8", "max_iters=6", "eval_interval=3",
        "eval_iters=1", "max_time=none"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("digits") / "run"
    assert main(["train", "--stage", "digits", "--preset", "cpu", "--out", str(out), *TINY]) == 0
    return out


def test_each_sequence_is_a_class_token_and_64_pixels() -> None:
    (train_x, train_y), _ = digit_split()
    rows = sequences(train_x, train_y)
    assert rows.shape == (len(train_y), SEQUENCE) == (len(train_y), 1 + PIXELS)
    assert torch.equal(rows[:, 0], torch.as_tensor(train_y) + LEVELS)
    assert int(rows[:, 1:].min()) >= 0 and int(rows[:, 1:].max()) < LEVELS
    assert torch.equal(rows[:, 1:].reshape(-1, 8, 8), torch.as_tensor(train_x))
    assert TOKENIZER.vocab_size == LEVELS + CLASSES


def test_bad_images_are_refused() -> None:
    good = np.zeros((2, 8, 8))
    for images, labels, words in [(np.zeros((2, 7, 8)), [1, 2], "shape"),
                                  (good + 17, [1, 2], "grey levels"),
                                  (good + 0.5, [1, 2], "grey levels"),
                                  (good, [1, 10], "digits 0 to 9")]:
        with pytest.raises(ValueError, match=words):
            sequences(images, np.array(labels))


def test_the_split_is_fixed_disjoint_and_whole() -> None:
    train, val = split_order(1797)
    again = split_order(1797)
    assert np.array_equal(train, again[0]) and np.array_equal(val, again[1])
    assert sorted([*train, *val]) == list(range(1797))
    assert len(val) == 1797 - int(1797 * 0.8)
    (_, train_y), (_, val_y) = digit_split()
    assert len(train_y) == len(train) and len(val_y) == len(val)
    assert np.bincount(val_y, minlength=10).min() >= 20  # every digit is held out


def test_the_windows_start_at_class_tokens() -> None:
    cfg = preset("cpu", "digits")
    data = digits_stage(cfg)
    for split, ids in (("train", data.train_ids), ("val", data.val_ids)):
        rows = data.rows(split, cfg.block_size, torch.device("cpu"))
        assert rows.shape == (ids.numel() // SEQUENCE, SEQUENCE + 1)  # a window per image
        assert bool((rows[:, 0] >= LEVELS).all()) and bool((rows[:, -1] >= LEVELS).all())
        assert bool((rows[:, 1:-1] < LEVELS).all())
        assert torch.equal(rows[1:, 0], rows[:-1, -1])  # each ends with the next one's class
    assert data.val_bytes == data.val_ids.numel() - 1 == SEQUENCE * len(data.rows(
        "val", cfg.block_size, torch.device("cpu")))


def test_the_stage_refuses_settings_it_cannot_use(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    for setting, named in (("block_size=64", "block_size=64"), ("vocab_size=30", "vocab_size")):
        status = main(["train", "--stage", "digits", "--out", str(tmp_path / "r"), *TINY,
                       setting])
        err = capsys.readouterr().err
        assert status == 2 and named in err and err.count("\n") == 1
    assert not (tmp_path / "r" / "ckpt.pt").exists()


def test_a_tiny_run_trains_and_measures(run_dir: Path) -> None:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["final"] and rows[-1]["step"] == 6
    assert 0 < rows[-1]["val_loss"] < 2 * np.log(TOKENIZER.vocab_size)
    config = json.loads((run_dir / "config.json").read_text())
    assert config["train"]["block_size"] == SEQUENCE and config["train"]["stage"] == "digits"
    assert (run_dir / "samples.jsonl").read_text() == ""  # no text samples for images
    assert main(["eval", "--run", str(run_dir)]) == 0


def test_sample_writes_integer_images_and_a_picture(run_dir: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    npy, png = tmp_path / "s.npy", tmp_path / "s.png"
    base = ["sample", "--run", str(run_dir), "--condition", "3", "--num-samples", "7",
            "--seed", "1"]
    assert main([*base, "--out", str(npy)]) == 0
    images = np.load(npy)
    assert images.shape == (7, 8, 8) and np.issubdtype(images.dtype, np.integer)
    assert images.min() >= 0 and images.max() <= 16
    assert main([*base, "--out", str(npy)]) == 0
    assert np.array_equal(np.load(npy), images)  # the same seed, the same images
    assert main([*base, "--out", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    capsys.readouterr()
    assert main(base) == 0
    assert capsys.readouterr().out.count("+----------------+") == 2 * 7


def test_drawing_masks_the_class_tokens() -> None:
    """A model that prefers class tokens everywhere still draws only grey levels."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=27, block_size=SEQUENCE, n_layer=1, n_head=1, n_embd=8))
    with torch.no_grad():
        model.tok_emb.weight[LEVELS:] *= 100  # tied: the class tokens' logits are large
    images = sample_images(model, [5, 5, 0, 9], generator=torch.Generator().manual_seed(0))
    assert images.shape == (4, 8, 8) and int(images.max()) < LEVELS


@pytest.mark.parametrize("argv, named", [
    (["--condition", "12"], "'12'"),
    (["--condition", "three"], "'three'"),
    (["--condition", "-1"], "'-1'"),
    ([], "--condition"),
    (["--condition", "3", "--num-samples", "0"], "--num-samples 0"),
    (["--condition", "3", "--out", "x.txt"], "x.txt"),
    (["--condition", "3", "--temperature", "-1"], "temperature"),
])
def test_bad_sample_options_are_one_line_errors(run_dir: Path, argv: list[str], named: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sample", "--run", str(run_dir), *argv]) == 2
    err = capsys.readouterr().err
    assert named in err and err.count("\n") == 1 and "Traceback" not in err


def test_condition_needs_a_conditional_stage(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("To be, or not to be, that is the question.\n" * 40, encoding="utf-8")
    run = tmp_path / "char"
    assert main(["train", "--data", str(corpus), "--out", str(run), "n_layer=1", "n_head=1",
                 "n_embd=8", "block_size=8", "max_iters=1", "eval_iters=1", "sample_tokens=0",
                 "max_time=none"]) == 0
    capsys.readouterr()
    assert main(["sample", "--run", str(run), "--condition", "3"]) == 2
    assert "--condition needs a conditional stage (digits, genres)" in capsys.readouterr().err
    assert main(["sample", "--run", str(run), "--prompt", "To", "--max-new-tokens", "5"]) == 0
    assert capsys.readouterr().out.startswith("To")
    assert main(["bench", "digits", "--run", str(run)]) == 2
    assert "digits stage" in capsys.readouterr().err
    assert main(["bench", "genres", "--run", str(run)]) == 2
    assert "genres stage" in capsys.readouterr().err


def test_bench_digits_reports_the_classifier_and_every_digit(
        run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "digits", "--run", str(run_dir), "--per-class", "2"]) == 0
    out = capsys.readouterr().out
    accuracy = float(out.split("recognises ")[1].split("%")[0])
    assert 85 < accuracy <= 100  # a linear classifier of real digits is a good judge
    lines = [line for line in out.splitlines() if line.startswith("  ")]
    assert [line.split(":")[0].strip() for line in lines] == [str(d) for d in range(10)]
    assert out.splitlines()[-1].startswith("all: ") and " of 20 " in out.splitlines()[-1]
