"""Chapter 15: learning-rate schedules, the speedrun ladder's model variants, and sweep --try."""

from __future__ import annotations

import csv
import json
import os
import signal
from pathlib import Path

import pytest
import torch

from minigpt.checkpoint import load_checkpoint
from minigpt.cli import main
from minigpt.data import CharTokenizer
from minigpt.hf import HFError
from minigpt.model import GPT, GPTConfig
from minigpt.optim import block_matrices, ramp
from minigpt.sample import generate
from minigpt.sweep import parse_tries, point_changes
from minigpt.train import TrainConfig, TrainData, Trainer, train

SHAPE = dict(vocab_size=65, block_size=16, n_layer=2, n_head=2, n_embd=32)
VARIANTS = [{"qk_norm": True}, {"activation": "relu2"}, {"zero_init_proj": True},
            {"tie_weights": False}, {"value_embed": True}]
TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak.\n\n" * 30
TINY = ["n_layer=1", "n_head=1", "n_embd=8", "block_size=8", "batch_size=4", "max_iters=3",
        "eval_interval=3", "eval_iters=1", "sample_tokens=0", "max_time=none"]


def model(**settings: object) -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(**SHAPE, **settings)).eval()


def ids(n: int = 16) -> torch.Tensor:
    return torch.randint(0, 65, (2, n), generator=torch.Generator().manual_seed(1))


# -- schedules --

def rate(step: int, **settings: object) -> float:
    cfg = TrainConfig(max_iters=1000, warmup_iters=100, lr=1.0, min_lr=0.1, **settings)
    return cfg.schedule().rate(step, 0.0)


def test_constant_stays_at_the_peak_after_the_warm_up() -> None:
    assert rate(49, lr_schedule="constant") == pytest.approx(0.5)
    assert all(rate(s, lr_schedule="constant") == 1.0 for s in (99, 500, 999))


def test_wsd_is_stable_then_falls_in_a_line_to_the_floor() -> None:
    assert all(rate(s, lr_schedule="wsd") == pytest.approx(1.0) for s in (99, 500, 800))
    assert rate(900, lr_schedule="wsd") == pytest.approx(0.55)  # half way down the last fifth
    assert rate(1000, lr_schedule="wsd") == pytest.approx(0.1)
    assert rate(950, lr_schedule="wsd", decay_frac=0.5) == pytest.approx(0.19)


def test_the_cosine_is_unchanged_and_decays_on_the_clock_too() -> None:
    assert rate(500) == pytest.approx(0.55)  # half way: the cosine's middle
    assert rate(250) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + 0.5 ** 0.5))  # cos(pi / 4)
    s = TrainConfig(max_iters=10**6, max_time=100.0, warmup_iters=0, lr=1.0, min_lr=0.0,
                    lr_schedule="wsd").schedule()
    assert s.rate(10, 50.0) == 1.0 and s.rate(10, 90.0) == pytest.approx(0.5)


@pytest.mark.parametrize("settings, named", [
    ({"lr_schedule": "linear"}, "lr_schedule='linear'"),
    ({"decay_frac": 0.0}, "decay_frac=0.0"),
    ({"decay_frac": 1.5}, "decay_frac=1.5"),
    ({"activation": "relu"}, "activation='relu'"),
    ({"batch_size_start": 0}, "batch_size_start=0: must be between 1 and 12"),
    ({"seq_len_start": 65}, "seq_len_start=65: must be between 1 and 64"),
    ({"ramp_frac": 0.0}, "ramp_frac=0.0"),
])
def test_bad_settings_are_refused_by_name(settings: dict[str, object], named: str) -> None:
    with pytest.raises(ValueError, match=named.replace("(", r"\(").replace(".", r"\.")):
        TrainConfig(**settings)


# -- batch-size and sequence-length ramps --

def test_a_ramp_grows_in_four_stages_and_then_holds() -> None:
    sizes = [ramp(4, 20, done / 100, 0.4) for done in range(101)]
    assert sorted(set(sizes)) == [4, 8, 12, 16, 20] and sizes == sorted(sizes)
    assert sizes[9] == 4 and sizes[10] == 8 and sizes[39] == 16 and sizes[40] == 20
    assert all(ramp(None, 20, done / 10, 0.4) == 20 for done in range(11))
    assert ramp(7, 7, 0.0, 0.4) == 7  # a start at the full size is no ramp


def ramped_data() -> TrainData:
    tokenizer = CharTokenizer.from_text(TEXT)
    return TrainData.from_texts(tokenizer, TEXT[:1800], TEXT[1800:])


def ramped_config(**settings: object) -> TrainConfig:
    return TrainConfig(n_layer=1, n_head=2, n_embd=16, block_size=16, batch_size=8,
                       max_iters=8, warmup_iters=2, eval_interval=4, eval_iters=1,
                       sample_tokens=0, **settings)


def test_each_step_runs_the_ramps_shape_and_counts_its_tokens() -> None:
    trainer = Trainer(ramped_config(batch_size_start=2, seq_len_start=4, ramp_frac=0.5),
                      ramped_data())
    shapes: list[tuple[int, ...]] = []
    trainer.model.register_forward_pre_hook(lambda _, args: shapes.append(tuple(args[0].shape)))
    for _ in range(8):
        trainer.train_step()
    # Each step is an eighth of the budget; each of the four stages a fourth of the ramp's half.
    assert shapes == [(2, 4), (3, 7), (5, 10), (6, 13), (8, 16), (8, 16), (8, 16), (8, 16)]
    assert trainer.tokens == sum(b * t for b, t in shapes)


def test_a_ramped_run_interrupted_resumes_as_the_same_run(tmp_path: Path) -> None:
    cfg, data = ramped_config(batch_size_start=2, seq_len_start=4), ramped_data()
    straight: list[float] = []
    train(cfg, data, tmp_path / "a", on_step=lambda s, loss: straight.append(loss.item()))
    resumed: list[float] = []

    def ctrl_c_at_step_3(step: int, loss: torch.Tensor) -> None:
        resumed.append(loss.item())
        if step == 3:  # inside the ramp: the resumed run must pick up its stage
            os.kill(os.getpid(), signal.SIGINT)

    assert train(cfg, data, tmp_path / "b", on_step=ctrl_c_at_step_3).step == 3
    train(cfg, data, tmp_path / "b", resume=True,
          on_step=lambda s, loss: resumed.append(loss.item()))
    assert resumed == straight
    a = load_checkpoint(tmp_path / "a" / "ckpt.pt")
    b = load_checkpoint(tmp_path / "b" / "ckpt.pt")
    assert a["tokens"] == b["tokens"] < 8 * 8 * 16  # fewer tokens than eight full batches
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


# -- model variants --

def test_the_defaults_are_chapter_4s_model() -> None:
    plain = model()
    assert plain.lm_head.weight is plain.tok_emb.weight and plain.val_emb is None
    assert isinstance(plain.blocks[0].mlp.act, torch.nn.GELU)
    assert not plain.blocks[0].attn.qk_norm
    assert all(layer.weight.abs().sum() > 0
               for b in plain.blocks for layer in (b.attn.proj, b.mlp.proj))


def test_every_variant_changes_the_function() -> None:
    x, reference = ids(), model()(ids())[0]
    for settings in VARIANTS:
        assert not torch.allclose(model(**settings)(x)[0], reference, atol=1e-4), settings


def test_variants_follow_the_training_record() -> None:
    for settings in VARIANTS:
        cfg = TrainConfig(**settings).model_config(65)
        assert all(getattr(cfg, k) == v for k, v in settings.items())


def test_zero_init_blocks_start_as_the_identity() -> None:
    m, x = model(zero_init_proj=True), ids()
    pos = m.pos_emb(torch.arange(16))
    assert torch.allclose(m(x)[0], m.lm_head(m.ln_f(m.tok_emb(x) + pos)), atol=1e-6)


def scaled_queries_and_keys(m: GPT, factor: float) -> GPT:
    with torch.no_grad():
        for block in m.blocks:
            block.attn.qkv.weight[:64].mul_(factor)  # the rows of the queries and keys
            block.attn.qkv.bias[:64].mul_(factor)
    return m


def test_qk_norm_makes_attention_blind_to_the_length_of_queries_and_keys() -> None:
    x = ids()
    for qk_norm, same in ((True, True), (False, False)):
        before = model(qk_norm=qk_norm)(x)[0]
        after = scaled_queries_and_keys(model(qk_norm=qk_norm), 30.0)(x)[0]
        assert torch.allclose(before, after, atol=1e-4) is same


def test_relu2_is_relu_squared() -> None:
    act = model(activation="relu2").blocks[0].mlp.act
    x = torch.tensor([-2.0, -0.5, 0.0, 0.5, 3.0])
    assert torch.equal(act(x), torch.tensor([0.0, 0.0, 0.0, 0.25, 9.0]))


def test_untied_and_value_embeddings_add_a_table_and_go_to_adamw() -> None:
    plain = model().num_params()
    for settings in ({"tie_weights": False}, {"value_embed": True}):
        m = model(**settings)
        assert m.num_params() - plain == 65 * 32
        matrices = {id(p) for p in block_matrices(m)}
        extra = m.lm_head.weight if "tie_weights" in settings else m.val_emb.weight
        assert id(extra) not in matrices  # an embedding-like table: AdamW's, not Muon's


@pytest.mark.parametrize("settings", VARIANTS, ids=lambda s: next(iter(s)))
def test_cached_generation_equals_uncached_for_every_variant(settings: dict[str, object]) -> None:
    m, prompt = model(**settings), ids()[:1, :3]
    fast = generate(m, prompt, 40, top_k=1, kv_cache=True)  # past block_size: the cache restarts
    assert torch.equal(fast, generate(m, prompt, 40, top_k=1, kv_cache=False))


def test_a_variant_trains(tmp_path: Path) -> None:
    corpus = tmp_path / "c.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    out = tmp_path / "run"
    assert main(["train", "--stage", "char", "--data", str(corpus), "--out", str(out), *TINY,
                 "qk_norm=true", "activation=relu2", "tie_weights=false", "value_embed=true",
                 "lr_schedule=wsd"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["qk_norm"] and not config["model"]["tie_weights"]


def test_gpt2s_layout_refuses_the_variants_it_cannot_hold(tmp_path: Path) -> None:
    for settings in VARIANTS:
        if "zero_init_proj" in settings:
            model(**settings).save_pretrained(tmp_path / "zero")  # only the start differs
            continue
        name = next(iter(settings))
        with pytest.raises(HFError, match=name):
            model(**settings).save_pretrained(tmp_path / name)


# -- sweep --try --

def test_tries_are_one_axis_after_the_baseline() -> None:
    axis = parse_tries(["qk_norm=true", "qk_norm=true muon_lr=0.04"], {}, [])
    assert axis == [("change", ["none", "qk_norm=true", "qk_norm=true muon_lr=0.04"])]
    assert point_changes((("change", "none"),)) == {}
    assert point_changes((("n_head", "2"), ("change", "qk_norm=true muon_lr=0.04"))) == {
        "n_head": 2, "qk_norm": True, "muon_lr": 0.04}
    assert parse_tries([], {}, []) == []


@pytest.mark.parametrize("spec, named", [
    ("qk_norm=maybe", "bad value"),
    ("qk_nrom=true", "did you mean qk_norm?"),
    ("lr=0.1", "set for every run already"),
    ("seed=3", "set for every run already"),
    ("none", "not a key=value setting"),
    ("", "KEY=VALUE"),
])
def test_bad_tries_are_named(spec: str, named: str, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sweep", "--out", str(tmp_path / "s"), "--try", spec, "lr=0.2"]) == 2
    err = capsys.readouterr().err
    assert f"--try {spec!r}" in err and named in err
    assert not (tmp_path / "s").exists()


def test_a_try_listed_twice_is_refused(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sweep", "--out", str(tmp_path / "s"), "--try", "qk_norm=true",
                 "--try", "qk_norm=true"]) == 2
    assert "each --try once" in capsys.readouterr().err


def test_a_tiny_ladder_runs_the_baseline_and_each_change(tmp_path: Path) -> None:
    corpus = tmp_path / "c.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    out = tmp_path / "ladder"
    assert main(["sweep", "--stage", "char", "--data", str(corpus), "--seeds", "1",
                 "--out", str(out), "--try", "qk_norm=true",
                 "--try", "activation=relu2 tie_weights=false", *TINY]) == 0
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [r["change"] for r in rows] == ["none", "qk_norm=true",
                                           "activation=relu2 tie_weights=false"]
    trained = {p.name: json.loads((p / "config.json").read_text())["train"]
               for p in out.iterdir() if p.is_dir()}
    assert trained["change=none,seed=1337"]["qk_norm"] is False
    assert trained["change=qk_norm=true,seed=1337"]["qk_norm"] is True
    both = trained["change=activation=relu2_tie_weights=false,seed=1337"]
    assert both["activation"] == "relu2" and both["tie_weights"] is False
    assert "| change | seeds |" in (out / "results.md").read_text()
    assert not (out / "scaling.png").exists()  # no change of shape on this axis
