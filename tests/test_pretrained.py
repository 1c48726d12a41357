"""Chapter 14's shipped models: exported from a run, listed, sampled, evaluated, fine-tuned."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from minigpt import pretrained
from minigpt.cli import main
from minigpt.pretrained import shipped_model, shipped_names, train_command

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"
needs_data = pytest.mark.skipif(not DATA.exists(), reason=f"no local corpus at {DATA}")
TINY = ["n_layer=1", "n_head=2", "n_embd=16", "block_size=16", "batch_size=4", "max_iters=12",
        "eval_interval=6", "eval_iters=2", "sample_tokens=0", "max_time=none"]
SHIPPED = sorted(pretrained.SHIPPED.glob("*/card.json"))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not DATA.exists():
        pytest.skip(f"no local corpus at {DATA}")
    out = tmp_path_factory.mktemp("run") / "run"
    assert main(["train", "--stage", "char", "--preset", "cpu", "--out", str(out),
                 "--data", str(DATA), *TINY]) == 0
    return out


@pytest.fixture()
def shelf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(pretrained, "SHIPPED", tmp_path / "models")
    return tmp_path / "models"


@needs_data
def test_export_list_sample_eval(tiny_run: Path, shelf: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pretrained", "list"]) == 0
    assert "no shipped models" in capsys.readouterr().out
    assert main(["pretrained", "export", "--run", str(tiny_run), "--name", "tiny",
                 "--description", "a test model"]) == 0
    capsys.readouterr()
    assert shipped_names() == ["tiny"]
    assert sorted(p.name for p in (shelf / "tiny").iterdir()) == [
        "card.json", "config.json", "model.safetensors", "tokenizer.json"]
    card = json.loads((shelf / "tiny" / "card.json").read_text())
    final = [json.loads(line) for line in (tiny_run / "metrics.jsonl").read_text().splitlines()
             if json.loads(line).get("final")][-1]
    assert card["val_loss"] == final["val_loss"] and card["steps"] == 12
    assert "data" not in card["settings"] and card["settings"]["data_sha256"]
    assert card["command"].startswith("python -m minigpt train --stage char --preset cpu")
    assert "n_layer=1" in card["command"] and "max_time=none" in card["command"]
    assert main(["pretrained", "list"]) == 0
    listed = capsys.readouterr().out
    assert listed.startswith("tiny: a test model") and "12 steps" in listed

    # The shipped model is the run: the same logits, and eval gives the card's figure.
    from minigpt.checkpoint import load_run
    run, shipped = load_run(tiny_run), shipped_model("tiny")
    ids = torch.tensor([run.tokenizer.encode("ROMEO: hello")])
    assert torch.allclose(run.model(ids)[0], shipped.model(ids)[0], atol=1e-6)
    argv = ["sample", "--pretrained", "tiny", "--prompt", "ROMEO:", "--max-new-tokens", "20",
            "--seed", "3"]
    assert main(argv) == 0
    from_shipped = capsys.readouterr().out
    assert main(["sample", "--run", str(tiny_run), *argv[3:]]) == 0
    assert capsys.readouterr().out == from_shipped
    assert main(["eval", "--pretrained", "tiny", "--split", "val"]) == 0
    val = capsys.readouterr().out
    assert f"loss {card['val_loss']:.4f}" in val


@needs_data
def test_a_second_export_replaces_the_first_and_init_from_starts_there(
        tiny_run: Path, shelf: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for description in ("first", "second"):
        assert main(["pretrained", "export", "--run", str(tiny_run), "--name", "tiny",
                     "--description", description]) == 0
    assert json.loads((shelf / "tiny" / "card.json").read_text())["description"] == "second"
    assert sorted(p.name for p in shelf.iterdir()) == ["tiny"]  # no temporary folders left
    out = tmp_path / "more"
    assert main(["train", "--stage", "char", "--preset", "cpu", "--init-from", "pretrained:tiny",
                 "--out", str(out), "--data", str(DATA), *TINY[4:]]) == 0
    config = json.loads((out / "config.json").read_text())["train"]
    assert config["init_from"] == "pretrained:tiny" and config["n_embd"] == 16


def test_unknown_names_are_refused_with_the_list(shelf: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sample", "--pretrained", "nope"]) == 2
    err = capsys.readouterr().err
    assert "no shipped model 'nope'" in err and "pretrained list" in err
    assert main(["sample", "--pretrained", "../x"]) == 2
    assert main(["pretrained", "export", "--run", "x", "--name", "Bad Name",
                 "--description", "d"]) == 2
    assert "--name 'Bad Name'" in capsys.readouterr().err


def test_the_command_is_the_preset_and_what_differs() -> None:
    from dataclasses import asdict

    from minigpt.stages import preset
    settings = asdict(preset("cpu", "char"))
    settings.update(max_iters=4000, max_time=None, data="/somewhere/x.txt")
    assert train_command(settings, "runs/m") == (
        "python -m minigpt train --stage char --preset cpu --out runs/m max_iters=4000 "
        "max_time=none")


@pytest.mark.parametrize("card", SHIPPED, ids=[c.parent.name for c in SHIPPED])
def test_each_shipped_model_loads_and_writes(card: Path) -> None:
    name = card.parent.name
    run = shipped_model(name)
    text = run.tokenizer.decode(run.tokenizer.encode("\n"))
    assert text == "\n"
    ids = torch.tensor([run.tokenizer.encode("\n")])
    from minigpt.sample import generate
    out = generate(run.model, ids, 40, temperature=0)
    assert out.shape == (1, 41)
    assert json.loads(card.read_text())["parameters"] == run.model.num_params()


@needs_data
def test_the_shakespeare_model_reproduces_its_card(capsys: pytest.CaptureFixture[str]) -> None:
    if "shakespeare-char" not in shipped_names():
        pytest.skip("no shakespeare-char model in this checkout")
    card = json.loads((pretrained.SHIPPED / "shakespeare-char" / "card.json").read_text())
    assert main(["eval", "--pretrained", "shakespeare-char", "--split", "val",
                 "--data", str(DATA)]) == 0
    loss = float(capsys.readouterr().out.split("loss")[1].split()[0])
    assert loss == pytest.approx(card["val_loss"], abs=1e-3)  # another CPU's rounding, no more
