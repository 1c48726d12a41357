"""Chapter 14: GPT-2's Hugging Face layout, held against transformers itself (no download)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from huggingface_hub import constants
from safetensors.torch import load_file, save_file

from minigpt.checkpoint import load_checkpoint, load_run, save_checkpoint
from minigpt.cli import main
from minigpt.commands import eval_rows
from minigpt.data import CharTokenizer
from minigpt.hf import HFError
from minigpt.model import GPT, GPTConfig
from minigpt.sample import generate
from minigpt.train import TrainConfig

transformers = pytest.importorskip("transformers")

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(SHARED / "tiktoken_cache"))
DATA = SHARED / "tinyshakespeare.txt"
needs_gpt2_tokenizer = pytest.mark.skipif(
    not Path(os.environ["TIKTOKEN_CACHE_DIR"]).is_dir() or not DATA.exists(),
    reason="GPT-2's tokenizer files (TIKTOKEN_CACHE_DIR) or Tiny Shakespeare are missing")
# Odd sizes, so that no two dimensions can be mistaken for each other.
SHAPE = {"vocab_size": 101, "n_positions": 40, "n_embd": 48, "n_layer": 3, "n_head": 3}


def randomized(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Every weight random, biases and LayerNorm gains too: a misplaced one then shows."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.2 + (p == 1).float())
    return model.eval()


def their_model(activation: str = "gelu_new", seed: int = 0) -> torch.nn.Module:
    config = transformers.GPT2Config(**SHAPE, activation_function=activation,
                                     bos_token_id=None, eos_token_id=None)
    return randomized(transformers.GPT2LMHeadModel(config), seed)


def ids(seed: int = 1, length: int = 40) -> torch.Tensor:
    return torch.randint(101, (2, length), generator=torch.Generator().manual_seed(seed))


def save_their_way(model: torch.nn.Module, folder: Path, how: str) -> Path:
    """model in folder: by save_pretrained, or by hand as safetensors or a .bin, with the
    transformer. prefix or without it (as the hub's GPT-2 files are, masks included)."""
    if how == "save_pretrained":
        model.save_pretrained(folder)
        return folder
    folder.mkdir()
    model.config.to_json_file(folder / "config.json")
    fmt, prefix = how.split("-")
    if prefix == "prefix":
        state = {k: v.clone() for k, v in model.state_dict().items()}  # lm_head.weight too
    else:
        state = {k: v.clone() for k, v in model.transformer.state_dict().items()}
        for i in range(SHAPE["n_layer"]):  # the causal masks of old files: not weights
            state[f"h.{i}.attn.bias"] = torch.ones(1, 1, 40, 40).tril()
            state[f"h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    if fmt == "safetensors":
        save_file(state, folder / "model.safetensors")
    else:
        torch.save(state, folder / "pytorch_model.bin")
    return folder


WAYS = ["save_pretrained", "safetensors-prefix", "safetensors-bare", "bin-prefix", "bin-bare"]


@pytest.mark.parametrize("how", WAYS)
@pytest.mark.parametrize("activation", ["gelu_new", "gelu"])
def test_theirs_loaded_into_ours_computes_the_same(how: str, activation: str,
                                                   tmp_path: Path) -> None:
    theirs = their_model(activation)
    folder = save_their_way(theirs, tmp_path / "model", how)
    ours = GPT.from_pretrained(folder)
    assert ours.config.gelu == ("tanh" if activation == "gelu_new" else "exact")
    assert (ours.config.block_size, ours.config.vocab_size) == (40, 101)
    x = ids()
    with torch.no_grad():
        expected = theirs(x).logits
        got, _ = ours(x)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    prompt = x[:, :8]
    greedy = theirs.generate(prompt, max_new_tokens=20, do_sample=False, pad_token_id=0,
                             attention_mask=torch.ones_like(prompt))
    assert torch.equal(generate(ours, prompt, 20, temperature=0), greedy)


@pytest.mark.parametrize("gelu", ["tanh", "exact"])
def test_ours_saved_opens_in_transformers(gelu: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    ours = randomized(GPT(GPTConfig(vocab_size=101, block_size=40, n_layer=3, n_head=3,
                                    n_embd=48, gelu=gelu)), seed=3)
    ours.save_pretrained(tmp_path / "ours")
    assert sorted(p.name for p in (tmp_path / "ours").iterdir()) == ["config.json",
                                                                      "model.safetensors"]
    theirs, info = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "ours",
                                                                output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert not info["mismatched_keys"]
    x = ids(seed=2)
    with torch.no_grad():
        torch.testing.assert_close(theirs.eval()(x).logits, ours(x)[0], atol=1e-5, rtol=0)
    again = GPT.from_pretrained(tmp_path / "ours")  # and back into ours: exactly the same
    assert again.config == ours.config
    with torch.no_grad():
        assert torch.equal(again(x)[0], ours(x)[0])


def test_saving_twice_replaces_the_files_and_leaves_no_temporaries(tmp_path: Path) -> None:
    model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=1, n_embd=8))
    model.save_pretrained(tmp_path)
    model.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["activation_function"] == "gelu" and config["eos_token_id"] is None


def test_a_model_without_biases_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=1, n_embd=8,
                          bias=False))
    with pytest.raises(HFError, match="bias=False"):
        model.save_pretrained(tmp_path / "out")
    assert not (tmp_path / "out").exists()


# -- bad input -------------------------------------------------------------------------------


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return save_their_way(their_model(), tmp_path / "model", "safetensors-prefix")


def edit_config(folder: Path, **changes: object) -> None:
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **changes}))


def rewrite_weights(folder: Path, edit: Callable[[dict[str, torch.Tensor]], None]) -> None:
    state = load_file(folder / "model.safetensors")
    edit(state)
    save_file(state, folder / "model.safetensors")


def one_line_error(folder: Path | str) -> str:
    with pytest.raises(HFError) as caught:
        GPT.from_pretrained(folder)
    message = str(caught.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("changes, fault", [
    ({"activation_function": "relu"}, "activation_function 'relu'"),
    ({"n_inner": 100}, "n_inner is 100; ours needs null or 192"),
    ({"layer_norm_epsilon": 1e-6}, "layer_norm_epsilon is 1e-06; ours needs 1e-05"),
    ({"tie_word_embeddings": False}, "tie_word_embeddings is false"),
    ({"scale_attn_by_inverse_layer_idx": True}, "scale_attn_by_inverse_layer_idx is true"),
    ({"model_type": "llama"}, "model_type 'llama'"),
    ({"n_head": 5}, "n_embd=48 must be divisible by n_head=5"),
    ({"n_layer": 2}, "holds h.2."),  # a file with more blocks than its config
    ({"n_layer": 4}, "no h.3.ln_1.weight"),
    ({"n_embd": 24, "n_head": 3}, "wte.weight is (101, 48), and config.json's shape needs"),
])
def test_settings_ours_cannot_be_are_refused(folder: Path, changes: dict[str, object],
                                             fault: str) -> None:
    edit_config(folder, **changes)
    message = one_line_error(folder)
    assert fault in message and str(folder) in message


def test_missing_files_are_named(tmp_path: Path, folder: Path) -> None:
    assert one_line_error(tmp_path / "nowhere").endswith("nowhere: no such folder")
    assert "a file; give the folder" in one_line_error(folder / "config.json")
    (folder / "model.safetensors").unlink()
    assert "neither model.safetensors nor pytorch_model.bin" in one_line_error(folder)
    (folder / "config.json").unlink()
    assert "no config.json" in one_line_error(folder)
    with pytest.raises(HFError, match="no model named"):
        GPT.from_pretrained("")


def test_damaged_files_are_refused(folder: Path) -> None:
    (folder / "config.json").write_text("{not json")
    assert "config.json: not a readable JSON file" in one_line_error(folder)
    (folder / "config.json").write_text("[1, 2]")
    assert "not a JSON object" in one_line_error(folder)
    their_model().config.to_json_file(folder / "config.json")
    (folder / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00garbage!")
    assert "model.safetensors: not readable as weights" in one_line_error(folder)


def test_weights_that_do_not_fit_are_refused(folder: Path) -> None:
    def wrong_shape(state: dict[str, torch.Tensor]) -> None:
        state["transformer.h.1.mlp.c_fc.weight"] = torch.zeros(192, 48)  # ours, untransposed
    rewrite_weights(folder, wrong_shape)
    assert "h.1.mlp.c_fc.weight is (192, 48), and config.json's shape needs (48, 192)" in (
        one_line_error(folder))

    def untied(state: dict[str, torch.Tensor]) -> None:
        state["transformer.h.1.mlp.c_fc.weight"] = torch.zeros(48, 192)
        state["lm_head.weight"] = torch.zeros(101, 48)
    rewrite_weights(folder, untied)
    assert "lm_head.weight is not wte.weight" in one_line_error(folder)


def test_a_pickle_that_holds_code_is_refused(tmp_path: Path) -> None:
    folder = save_their_way(their_model(), tmp_path / "model", "bin-prefix")
    torch.save({"weights": Path("x")}, folder / "pytorch_model.bin")  # a Python object
    message = one_line_error(folder)
    assert "pytorch_model.bin: not readable as weights" in message and "refused" in message
    torch.save([torch.zeros(1)], folder / "pytorch_model.bin")
    assert "not a dictionary of tensors" in one_line_error(folder)


def test_a_hub_name_offline_and_not_cached_says_what_to_download(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no folder called gpt2 here
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    message = one_line_error("gpt2")
    assert message.startswith("gpt2: not a folder, and not in the Hugging Face cache")
    assert "HF_HUB_OFFLINE is set" in message and str(tmp_path / "cache") in message
    assert "download config.json and model.safetensors from https://huggingface.co/gpt2" in (
        message)
    assert "no such folder, nor a hub model name" in one_line_error("not a name!")
    assert one_line_error("a/b/c") == "a/b/c: no such folder"  # a path, never sent to the hub


def test_gelu_is_a_checked_setting_that_old_checkpoints_lack(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="GPTConfig.gelu='relu': must be exact or tanh"):
        GPTConfig(gelu="relu")
    config = GPTConfig(vocab_size=3, block_size=8, n_layer=1, n_head=1, n_embd=8)
    train_config = asdict(TrainConfig(n_layer=1, n_head=1, n_embd=8, block_size=8))
    old_model_args = {k: v for k, v in asdict(config).items() if k != "gelu"}
    old_train_config = {k: v for k, v in train_config.items() if k not in ("gelu", "init_from")}
    save_checkpoint({"model": GPT(config).state_dict(), "model_args": old_model_args,
                     "train_config": old_train_config,
                     "tokenizer": CharTokenizer.from_text("ab\n").to_dict(), "step": 0},
                    tmp_path / "ckpt.pt")
    run = load_run(tmp_path)
    assert run.model.config.gelu == "exact"


def test_eval_batches_keep_their_logits_under_a_gibibyte() -> None:
    assert eval_rows(64, 65) == 32
    assert eval_rows(1024, 50257) == 5
    assert eval_rows(100_000, 50257) == 1


# -- the command line ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gpt2_vocab_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model with GPT-2's vocabulary, in the Hugging Face layout, as transformers saves."""
    config = transformers.GPT2Config(vocab_size=50257, n_positions=32, n_embd=16, n_layer=1,
                                     n_head=2)
    folder = tmp_path_factory.mktemp("hf") / "tiny-gpt2"
    randomized(transformers.GPT2LMHeadModel(config), seed=5).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("text") / "text.txt"
    path.write_text(DATA.read_text(encoding="utf-8")[:20_000], encoding="utf-8")
    return path


@needs_gpt2_tokenizer
def test_sample_and_eval_from_hf(gpt2_vocab_dir: Path, corpus: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["sample", "--from-hf", str(gpt2_vocab_dir), "--prompt", "ROMEO:",
            "--max-new-tokens", "5", "--seed", "1", "--device", "cpu"]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert first.startswith("ROMEO:")
    assert main(argv) == 0 and capsys.readouterr().out == first
    assert main(["eval", "--from-hf", str(gpt2_vocab_dir), "--data", str(corpus),
                 "--device", "cpu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["train", "val"]
    with pytest.raises(SystemExit) as caught:
        main(["sample", "--from-hf", str(gpt2_vocab_dir), "--run", "x"])
    assert caught.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


@needs_gpt2_tokenizer
def test_a_vocabulary_too_small_for_gpt2s_tokenizer_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = save_their_way(their_model(), tmp_path / "model", "save_pretrained")
    capsys.readouterr()  # transformers' progress bar
    assert main(["sample", "--from-hf", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "a vocabulary of 101 tokens, fewer than GPT-2's tokenizer's 50,257" in err
    assert err.count("\n") == 1


TINY_RUN = ["batch_size=2", "max_iters=2", "eval_interval=2", "eval_iters=1", "sample_tokens=4",
            "max_time=none", "optimizer=adamw", "lr=1e-12", "min_lr=1e-12", "weight_decay=0",
            "warmup_iters=0", "device=cpu"]


@needs_gpt2_tokenizer
def test_train_init_from_hf_starts_from_its_weights(gpt2_vocab_dir: Path, corpus: Path,
                                                     tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ft"
    assert main(["train", "--init-from", f"hf:{gpt2_vocab_dir}", "--out", str(out),
                 "--data", str(corpus), "block_size=16", *TINY_RUN]) == 0
    state = load_checkpoint(out / "ckpt.pt")
    assert state["model_args"]["gelu"] == "tanh" and state["model_args"]["block_size"] == 16
    assert state["train_config"]["init_from"] == f"hf:{gpt2_vocab_dir}"
    assert state["tokenizer"]["kind"] == "tiktoken"
    start = GPT.from_pretrained(gpt2_vocab_dir).state_dict()
    for name, tensor in state["model"].items():  # a learning rate of 1e-12 moves nothing
        expected = start[name][:16] if name == "pos_emb.weight" else start[name]
        torch.testing.assert_close(tensor, expected, atol=1e-6, rtol=0)
    capsys.readouterr()
    assert main(["train", "--init-from", f"hf:{gpt2_vocab_dir}", "--resume", "--out",
                 str(out)]) == 2
    assert "--init-from starts a new one" in capsys.readouterr().err


@needs_gpt2_tokenizer
@pytest.mark.parametrize("extra, fault", [
    (["n_layer=2"], "its model has n_layer=1, not 2; the weights fix the shape"),
    (["block_size=64"], "its model has 32 positions, fewer than block_size=64"),
    (["vocab_size=300"], "vocab_size=300, but the tokenizer comes with the model"),
])
def test_train_init_from_refuses_what_the_weights_cannot_be(
        gpt2_vocab_dir: Path, corpus: Path, tmp_path: Path, extra: list[str], fault: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--init-from", f"hf:{gpt2_vocab_dir}", "--out", str(tmp_path / "x"),
                 "--data", str(corpus), *extra]) == 2
    err = capsys.readouterr().err
    assert fault in err and err.count("\n") == 1


def test_train_init_from_a_run_of_ours(corpus_or_skip: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    shape = ["n_layer=1", "n_head=1", "n_embd=16", "block_size=16"]
    assert main(["train", "--out", str(first), "--data", str(corpus_or_skip), *shape,
                 *TINY_RUN]) == 0
    assert main(["train", "--init-from", str(first), "--out", str(second),
                 "--data", str(corpus_or_skip), "block_size=8", *TINY_RUN]) == 0
    before, after = (load_checkpoint(run / "ckpt.pt") for run in (first, second))
    assert after["model_args"]["n_embd"] == 16 and after["model_args"]["block_size"] == 8
    assert after["tokenizer"] == before["tokenizer"]
    torch.testing.assert_close(after["model"]["blocks.0.mlp.fc.weight"],
                               before["model"]["blocks.0.mlp.fc.weight"], atol=1e-6, rtol=0)
    capsys.readouterr()
    assert main(["train", "--init-from", "pretrained:shakespeare", "--out",
                 str(tmp_path / "x")]) == 2
    assert "no shipped model 'shakespeare'" in capsys.readouterr().err


@pytest.fixture
def corpus_or_skip(tmp_path: Path) -> Path:
    if not DATA.exists():
        pytest.skip(f"no local corpus at {DATA}")
    path = tmp_path / "text.txt"
    path.write_text(DATA.read_text(encoding="utf-8")[:20_000], encoding="utf-8")
    return path


def test_bench_hf_prints_its_figures(gpt2_vocab_dir: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "hf", "--from-hf", str(gpt2_vocab_dir), "--tokens", "3",
                 "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    for label in ("load:", "forward:", "generate:", "memory:"):
        assert label in out
    assert main(["bench", "hf", "--tokens", "0"]) == 2


@needs_gpt2_tokenizer
def test_train_from_hf_is_init_from_hf(gpt2_vocab_dir: Path, corpus: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ft"
    assert main(["train", "--from-hf", str(gpt2_vocab_dir), "--out", str(out),
                 "--data", str(corpus), "block_size=16", *TINY_RUN]) == 0
    assert load_checkpoint(out / "ckpt.pt")["train_config"]["init_from"] == \
        f"hf:{gpt2_vocab_dir}"
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["train", "--from-hf", "x", "--init-from", "y", "--out", str(tmp_path / "z")])
    assert "not allowed with argument" in capsys.readouterr().err
