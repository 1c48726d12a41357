"""Chapter 13: FLOPs and peaks, the speed settings, the ladder, target_loss, the random stage."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from minigpt import ladder as ladder_module
from minigpt.checkpoint import load_run
from minigpt.cli import main
from minigpt.commands import gpu_on_cpu_note
from minigpt.data import CharTokenizer
from minigpt.ladder import RUNG_KEYS, bench_ladder, ladder_rows, ladder_table
from minigpt.mfu import datasheet_peak, device_peak, flops_per_token, measured_peak
from minigpt.model import GPT, GPTConfig
from minigpt.stages import preset, stage_data
from minigpt.train import (
    DeviceError,
    TrainConfig,
    TrainData,
    Trainer,
    accumulate_gradients,
    pick_device,
    split_nll,
    train,
)

TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\n"
        "All:\nSpeak, speak.\n\n") * 30
TINY = dict(n_layer=1, n_head=2, n_embd=16, block_size=16, batch_size=4, eval_interval=10,
            eval_iters=2, sample_tokens=8, warmup_iters=5, max_time=None, device="cpu")
TINY_ARGS = ["n_layer=1", "n_head=1", "n_embd=16", "block_size=16", "batch_size=4",
             "device=cpu"]


def make_data(text: str = TEXT) -> TrainData:
    cut = int(0.9 * len(text))
    return TrainData.from_texts(CharTokenizer.from_text(text), text[:cut], text[cut:])


def model_of(**settings: object) -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=65, block_size=16, n_layer=2, n_head=2, n_embd=32,
                         **settings))


# -- FLOPs and peaks ------------------------------------------------------------------------

def test_flops_per_token_is_6n_plus_the_attention_term() -> None:
    model = model_of()
    weights = sum(p.numel() for name, p in model.named_parameters() if name != "pos_emb.weight")
    assert flops_per_token(model) == 6 * weights + 12 * 2 * 16 * 32
    longer = GPT(GPTConfig(vocab_size=65, block_size=32, n_layer=2, n_head=2, n_embd=32))
    assert flops_per_token(longer) - flops_per_token(model) == 12 * 2 * 16 * 32  # T doubled


@pytest.mark.parametrize("name, label", [
    ("NVIDIA H100 80GB HBM3", "H100 SXM"), ("NVIDIA H100 PCIe", "H100 PCIe"),
    ("NVIDIA H200", "H200 SXM"), ("NVIDIA A100-SXM4-40GB", "A100"),
    ("NVIDIA A100 80GB PCIe", "A100"), ("NVIDIA L4", "L4"), ("NVIDIA L40S", "L40S"),
    ("NVIDIA A10", "A10"), ("NVIDIA GeForce RTX 4090", "RTX 4090"),
    ("NVIDIA GeForce RTX 3090", "RTX 3090"),
    ("NVIDIA H100 NVL", None), ("NVIDIA H200 NVL", None), ("NVIDIA GH200 480GB", None),
    ("NVIDIA A10G", None), ("NVIDIA L40", None), ("NVIDIA GeForce RTX 4090 D", None),
    ("NVIDIA GeForce RTX 4090 Laptop GPU", None), ("NVIDIA GeForce RTX 3090 Ti", None),
    ("Tesla V100-SXM2-16GB", None),
])
def test_a_datasheet_peak_belongs_to_its_card_only(name: str, label: str | None) -> None:
    found = datasheet_peak(name, "bfloat16")
    assert (found[0] if found else None) == label


def test_no_h100_is_given_an_a100_figure() -> None:
    a100 = datasheet_peak("NVIDIA A100-SXM4-80GB", "bfloat16")
    for name in ("NVIDIA H100 80GB HBM3", "NVIDIA H100 PCIe"):
        h100 = datasheet_peak(name, "bfloat16")
        assert h100 is not None and a100 is not None and h100[1] > 2 * a100[1]


def test_a_gpu_peak_comes_from_its_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA Foo 9000")
    unknown = device_peak(torch.device("cuda"), "bfloat16")
    assert unknown.flops is None and unknown.source == "unknown peak for NVIDIA Foo 9000"
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H100 PCIe")
    known = device_peak(torch.device("cuda"), "tf32")
    assert known.flops == 378e12 and "H100 PCIe" in known.source and "tf32" in known.source


def test_a_cpu_peak_is_measured_once_per_process() -> None:
    first = measured_peak("cpu", "float32", 64, 1)
    assert first > 0 and measured_peak("cpu", "float32", 64, 1) == first  # the cached figure
    peak = device_peak(torch.device("cpu"), "float32")
    assert peak.flops is not None and peak.flops > 0 and "measured" in peak.source


# -- the settings ---------------------------------------------------------------------------

def test_auto_takes_apples_gpu_when_there_is_no_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert pick_device("auto") == torch.device("mps")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert pick_device("auto") == torch.device("cpu")


def test_the_attention_setting_reaches_every_block() -> None:
    manual, sdpa = model_of(attn_kernel="manual"), model_of(attn_kernel="sdpa")
    assert [b.attn.fused for b in manual.blocks] == [False, False]
    assert [b.attn.fused for b in sdpa.blocks] == [True, True]
    data = make_data()
    losses = {}
    for kind in ("manual", "sdpa"):
        trainer = Trainer(TrainConfig(**TINY, attn_kernel=kind), data)
        assert all(b.attn.fused == (kind == "sdpa") for b in trainer.model.blocks)
        losses[kind] = [trainer.train_step().item() for _ in range(3)]
    assert losses["manual"] == pytest.approx(losses["sdpa"], abs=1e-4)
    with pytest.raises(ValueError, match="attn_kernel='flash'"):
        TrainConfig(attn_kernel="flash")


def test_padded_rows_never_reach_the_loss_or_a_sample() -> None:
    plain, padded = model_of(), model_of(pad_vocab=64)
    assert padded.tok_emb.weight.shape == (128, 32) and padded.lm_head.out_features == 128
    with torch.no_grad():
        padded.load_state_dict({k: v for k, v in plain.state_dict().items()
                                if not k.endswith(("tok_emb.weight", "lm_head.weight"))},
                               strict=False)
        padded.tok_emb.weight[:65] = plain.tok_emb.weight
        padded.tok_emb.weight[65:] = 50.0  # rows that would dominate any softmax they reached
    x = torch.randint(0, 65, (4, 16), generator=torch.Generator().manual_seed(1))
    (logits, loss), (plain_logits, plain_loss) = padded(x, x), plain(x, x)
    assert logits.shape == (4, 16, 65)
    torch.testing.assert_close(logits, plain_logits)
    torch.testing.assert_close(loss, plain_loss)
    ids = torch.randint(0, 65, (300,), generator=torch.Generator().manual_seed(2))
    assert split_nll(padded, ids, 16) == pytest.approx(split_nll(plain, ids, 16), rel=1e-5)
    loss.backward()
    assert padded.tok_emb.weight.grad[65:].abs().max() == 0  # no gradient reaches the padding
    probs = F.softmax(logits[:, -1], dim=-1)
    assert torch.multinomial(probs, 50, replacement=True).max() < 65


def test_a_padded_run_saves_loads_and_samples(tmp_path: Path) -> None:
    cfg = TrainConfig(**{**TINY, "max_iters": 10}, pad_vocab=64)
    train(cfg, make_data(), tmp_path / "run")
    run = load_run(tmp_path / "run")
    assert run.model.config.pad_vocab == 64 and run.model.tok_emb.weight.size(0) == 64
    assert main(["sample", "--run", str(tmp_path / "run"), "--max-new-tokens", "20",
                 "--seed", "0"]) == 0


def test_tf32_is_refused_off_cuda() -> None:
    with pytest.raises(DeviceError, match="dtype=tf32: TF32 is a mode of NVIDIA GPUs"):
        Trainer(TrainConfig(**TINY, dtype="tf32"), make_data())


def test_float32_turns_tf32_off_and_auto_leaves_it_off_on_a_cpu() -> None:
    trainer = Trainer(TrainConfig(**TINY, dtype="float32"), make_data())
    assert trainer.precision == "highest" == torch.get_float32_matmul_precision()


@pytest.mark.parametrize("setting, fused", [(None, True), (True, True), (False, False)])
def test_fused_adamw_is_a_setting(setting: bool | None, fused: bool) -> None:
    trainer = Trainer(TrainConfig(**TINY, fused_adamw=setting), make_data())
    assert bool(trainer.optimizers[0].defaults["fused"]) is fused


def test_compile_on_a_cpu_when_asked_gives_the_same_losses() -> None:
    """torch.compile of a one-layer model on the CPU (Inductor writes C++: needs gcc).

    About 40 s with a cold compiler cache, a few seconds with a warm one.
    """
    data, losses = make_data(), {}
    for setting in (False, True):
        trainer = Trainer(TrainConfig(**TINY, compile=setting), data)
        assert (trainer.forward_model is not trainer.model) is setting
        losses[setting] = [trainer.train_step().item() for _ in range(3)]
    assert losses[True] == pytest.approx(losses[False], abs=1e-4)
    auto = Trainer(TrainConfig(**TINY, compile=None), data)
    assert auto.forward_model is auto.model  # none: compiled on CUDA only


# -- the step ------------------------------------------------------------------------------

def test_one_micro_batch_is_a_plain_forward_and_backward_bit_for_bit() -> None:
    model, twin = model_of(), model_of()
    x = torch.randint(0, 65, (4, 16), generator=torch.Generator().manual_seed(3))
    loss = accumulate_gradients(model, [(x, x)])
    _, plain = twin(x, x)
    plain.backward()
    assert torch.equal(loss, plain.detach())
    for a, b in zip(model.parameters(), twin.parameters(), strict=True):
        assert torch.equal(a.grad, b.grad)


# -- target_loss ----------------------------------------------------------------------------

def test_target_loss_stops_the_run_and_a_resume_adds_nothing(tmp_path: Path) -> None:
    cfg = TrainConfig(**{**TINY, "batch_size": 8, "sample_tokens": 0}, lr=1e-2,
                      max_iters=500, target_loss=2.6)
    result = train(cfg, make_data(), tmp_path / "run")
    assert result.reason == "target_loss" and 0 < result.step < 500
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    reached = [row for row in rows if "time_to_target_s" in row]
    assert len(reached) == 1 and reached[0]["val_loss"] <= 2.6
    assert reached[0]["time_to_target_s"] == reached[0]["elapsed_s"]
    assert rows[-1]["final"] and rows[-1]["step"] == result.step
    again = train(cfg, make_data(), tmp_path / "run", resume=True)
    assert (again.reason, again.step) == ("target_loss", result.step)
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == len(rows)


@pytest.mark.parametrize("value", [0.0, -1.0, float("nan"), float("inf")])
def test_a_target_loss_must_be_a_positive_number(value: float) -> None:
    with pytest.raises(ValueError, match="target_loss="):
        TrainConfig(target_loss=value)


# -- the ladder -----------------------------------------------------------------------------

def test_the_ladder_climbs_every_rung_that_can_run_here() -> None:
    tiny = TrainConfig(**{**TINY, "batch_size": 2})
    climbs = bench_ladder(tiny, make_data(), steps=2, rounds=2, warmup_steps=1,
                          skip=("compile",))
    assert [c.rung.key for c in climbs] == RUNG_KEYS
    ran = {c.rung.key: c.cfg for c in climbs if c.trainer is not None}
    assert set(ran) == set(RUNG_KEYS) - {"tf32", "compile"}
    assert ran["base"].attn_kernel == "manual" and ran["base"].fused_adamw is False
    top = ran["batch"]
    assert (top.attn_kernel, top.dtype, top.fused_adamw, top.pad_vocab, top.batch_size,
            top.compile) == ("sdpa", "bfloat16", True, 64, 4, False)
    assert all(c.steps == 2 and c.seconds > 0 for c in climbs if c.trainer is not None)
    rows = ladder_rows(climbs)
    assert rows[0]["vs_first"] == 1.0 and rows[0]["vs_previous"] is None
    assert rows[1]["vs_previous"] == pytest.approx(rows[1]["tokens_per_s"]
                                                   / rows[0]["tokens_per_s"])
    assert rows[0]["loss"] == pytest.approx(rows[1]["loss"], abs=1e-3)  # same arithmetic
    table = ladder_table(rows).splitlines()
    assert len(table) == 2 + len(RUNG_KEYS) and "loss after 3 steps" in table[0]
    assert "not run: dtype=tf32" in table[4] and "skipped (--skip)" in table[6]


def test_a_rung_that_fails_is_left_out_of_the_rungs_above(
        monkeypatch: pytest.MonkeyPatch) -> None:
    real = ladder_module.Trainer

    def failing(cfg: TrainConfig, data: TrainData) -> Trainer:
        if cfg.fused_adamw:
            raise RuntimeError("no fused kernel here\nsecond line")
        return real(cfg, data)

    monkeypatch.setattr(ladder_module, "Trainer", failing)
    climbs = bench_ladder(TrainConfig(**TINY), make_data(), steps=1, rounds=1, warmup_steps=1,
                          skip=("compile", "sdpa", "bf16", "pad"))
    notes = {c.rung.key: c.note for c in climbs}
    assert notes["fused"] == "not run: no fused kernel here"
    batch = next(c for c in climbs if c.rung.key == "batch")
    assert batch.trainer is not None and batch.cfg.fused_adamw is False


def test_bench_ladder_prints_a_table_and_writes_json(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ladder.json"
    assert main(["bench", "ladder", "--stage", "random", "vocab_size=300", *TINY_ARGS,
                 "--steps", "2", "--rounds", "2", "--skip", "compile", "--batch-size", "6",
                 "--json", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("bench ladder: stage random")
    assert sum(line.startswith("| ") for line in lines) == 1 + len(RUNG_KEYS)
    rows = json.loads(out.read_text())["rows"]
    assert [row["rung"] for row in rows] == RUNG_KEYS and rows[-1]["setting"] == "batch_size=6"


@pytest.mark.parametrize("flags, fault", [
    (["--skip", "warp"], "--skip warp: not a rung"), (["--skip", "base"], "--skip base"),
    (["--rounds", "0"], "--rounds 0"), (["--seconds", "nan"], "--seconds nan"),
    (["--batch-size", "0"], "--batch-size 0"),
])
def test_bench_ladder_refuses_flags_that_cannot_work(
        flags: list[str], fault: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "ladder", "--stage", "random", *flags]) == 2
    err = capsys.readouterr().err
    assert fault in err and err.count("\n") == 1


# -- bench train, bench peak, the gpu note -------------------------------------------------

def test_bench_train_prints_the_arithmetic_and_the_mfu(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    assert main(["bench", "train", "--stage", "random", "vocab_size=100", *TINY_ARGS,
                 "--steps", "2", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "MFLOP per token (6N + 12*L*T*d)" in printed
    assert "MFU:" in printed and "this CPU's float32 matmul, measured" in printed
    figures = json.loads(out.read_text())
    assert figures["bench"]["flops_per_token"] > 0 and 0 < figures["mfu"]
    assert figures["settings"]["stage"] == "random"


def test_bench_peak_prints_every_format(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "peak", "--device", "cpu", "--size", "64"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("bench peak: cpu") and "64x64" in lines[0]
    assert [line.split()[0] for line in lines[1:]] == ["float32", "tf32", "bfloat16"]
    assert "FLOP/s" in lines[1] and "none: TF32" in lines[2]


def test_the_gpu_note_counts_the_runs_arithmetic() -> None:
    cfg = preset("gpu")
    note = gpu_on_cpu_note(cfg, make_data())
    assert note.startswith("note: the gpu preset") and "bench train --preset gpu" in note
    assert "PFLOP of arithmetic, at least" in note and "hours at this CPU's" in note
    with torch.device("meta"):
        flops = flops_per_token(GPT(cfg.model_config(make_data().tokenizer.vocab_size)))
    total = cfg.max_iters * cfg.batch_size * cfg.block_size * flops
    assert f"are {total / 1e15:,.3g} PFLOP" in note
    hours = total / measured_peak("cpu", "float32", threads=torch.get_num_threads()) / 3600
    assert ("would take days here" in note) == (hours >= 24)


# -- the random stage -----------------------------------------------------------------------

def test_the_random_stage_draws_its_ids_from_the_seed() -> None:
    cfg = TrainConfig(stage="random", vocab_size=500)
    a, b = stage_data(cfg), stage_data(cfg)
    assert a.tokenizer.vocab_size == 500 and torch.equal(a.train_ids, b.train_ids)
    assert int(a.train_ids.max()) < 500 and a.val_ids.numel() == a.train_ids.numel() // 10
    other = stage_data(dataclasses.replace(cfg, seed=1))
    assert not torch.equal(a.train_ids, other.train_ids)
    assert stage_data(TrainConfig(stage="random")).tokenizer.vocab_size == 50257


def test_a_random_run_resumes_and_samples(tmp_path: Path) -> None:
    out = str(tmp_path / "run")
    args = ["train", "--stage", "random", "--out", out, "vocab_size=50", *TINY_ARGS,
            "optimizer=adamw", "max_iters=10", "eval_interval=5", "eval_iters=1",
            "sample_tokens=5"]
    assert main(args) == 0
    assert main(["train", "--out", out, "--resume", "max_iters=12"]) == 0
    assert main(["sample", "--run", out, "--max-new-tokens", "5", "--seed", "1"]) == 0
