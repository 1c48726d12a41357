"""Chapter 5: accumulation, schedule, loss, resume exactness, time budget, whole-split loss."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from minigpt.checkpoint import load_checkpoint
from minigpt.data import CharTokenizer
from minigpt.model import GPT, GPTConfig
from minigpt.optim import Schedule, make_optimizers, orthogonalize, param_groups
from minigpt.runs import NoRunFolder, RunFolder, plot_losses
from minigpt.train import TrainConfig, TrainData, Trainer, accumulate_gradients, split_nll, train

TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\n"
        "All:\nSpeak, speak.\n\n") * 30
TINY = dict(n_layer=1, n_head=2, n_embd=16, block_size=16, batch_size=8, eval_interval=10,
            eval_iters=2, sample_tokens=16, warmup_iters=5, lr=3e-3, min_lr=3e-4, max_time=None)


def make_data(text: str = TEXT) -> TrainData:
    tok = CharTokenizer.from_text(text)
    cut = int(0.9 * len(text))
    return TrainData.from_texts(tok, text[:cut], text[cut:])


def tiny_model(vocab_size: int = 30) -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=vocab_size, block_size=16, n_layer=2, n_head=2, n_embd=16,
                         dropout=0.0))


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_k_micro_batches_give_the_gradient_of_one_k_times_larger_batch() -> None:
    model = tiny_model()
    g = torch.Generator().manual_seed(0)
    x, y = torch.randint(0, 30, (12, 16), generator=g), torch.randint(0, 30, (12, 16), generator=g)

    def grads(batches: list) -> list[torch.Tensor]:
        model.zero_grad(set_to_none=True)
        loss = accumulate_gradients(model, batches)
        assert loss.dim() == 0 and not loss.requires_grad
        return [p.grad.clone() for p in model.parameters()]

    big = grads([(x, y)])
    micro = grads([(x[i:i + 3], y[i:i + 3]) for i in range(0, 12, 3)])
    for a, b in zip(big, micro, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


def test_param_groups_decay_matrices_only() -> None:
    model = tiny_model()
    decay, no_decay = param_groups(model.parameters(), 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decay["params"])
    assert all(p.dim() == 1 for p in no_decay["params"]) and no_decay["params"]
    ids = [id(p) for group in (decay, no_decay) for p in group["params"]]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))


def test_schedule_warms_up_then_cosine_decays_to_min_lr() -> None:
    cfg = TrainConfig(max_iters=1000, warmup_iters=100, lr=1e-3, min_lr=1e-4)
    lrs = [cfg.schedule().rate(s, 0.0) for s in range(1001)]
    assert lrs[0] < 0.02 * cfg.lr
    assert all(a < b for a, b in zip(lrs[:99], lrs[1:100], strict=True))  # warm-up rises
    # The warm-up scales the cosine, which has started to fall: the peak is a little below lr.
    assert max(lrs) == pytest.approx(cfg.lr, rel=0.03) and lrs.index(max(lrs)) == 99
    assert all(a >= b for a, b in zip(lrs[100:], lrs[101:], strict=False))  # then only falls
    assert lrs[500] == pytest.approx((cfg.lr + cfg.min_lr) / 2, rel=1e-6)  # cosine midpoint
    assert lrs[-1] == pytest.approx(cfg.min_lr)
    # With a time budget, the clock can end the schedule before the steps do.
    timed = Schedule(peak=1e-3, floor=1e-4, warmup_iters=10, max_iters=1000, max_time=10.0)
    assert timed.rate(50, 10.0) == pytest.approx(1e-4)
    assert timed.progress(50, 5.0) == 0.5


def test_split_nll_predicts_every_token_once_in_block_windows() -> None:
    model = tiny_model()
    model.eval()
    ids = torch.randint(0, 30, (50,), generator=torch.Generator().manual_seed(1))
    nll, count = split_nll(model, ids, block_size=16, batch_size=2)
    assert count == 49
    expected = 0.0
    for start in range(0, 49, 16):  # windows 0-15, 16-31, 32-47 and the tail 48
        x, y = ids[start:min(start + 16, 49)], ids[start + 1:min(start + 17, 50)]
        logits, _ = model(x[None], y[None])
        expected += F.cross_entropy(logits[0], y, reduction="sum").item()
    assert nll == pytest.approx(expected, rel=1e-5)


def test_orthogonalize_keeps_directions_and_equalises_singular_values() -> None:
    torch.manual_seed(0)
    for shape in [(32, 96), (96, 32)]:  # wide and tall
        u, _ = torch.linalg.qr(torch.randn(shape[0], min(shape)))
        v, _ = torch.linalg.qr(torch.randn(shape[1], min(shape)))
        s = torch.logspace(0, 2, min(shape))  # singular values from 1 to 100
        g = u @ torch.diag(s) @ v.T
        o = orthogonalize(g)
        assert o.shape == g.shape
        singular = torch.linalg.svdvals(o)
        assert singular.min() > 0.5 and singular.max() < 1.3
        # same singular vectors as g: o is about u v^T, so u^T o v is (nearly) diagonal
        assert torch.allclose(u.T @ o @ v, torch.diag(torch.diagonal(u.T @ o @ v)), atol=1e-2)


def optimizers_of(model: GPT, kind: str) -> list[torch.optim.Optimizer]:
    return make_optimizers(model, kind, lr=1e-3, weight_decay=0.1, betas=(0.9, 0.99),
                           muon_lr=0.02, muon_momentum=0.95, muon_ns_steps=5, fused=False)


def test_muon_takes_the_blocks_matrices_and_adamw_the_rest() -> None:
    model = tiny_model()
    muon, adamw = optimizers_of(model, "muon")
    muon_params = {id(p) for g in muon.param_groups for p in g["params"]}
    adamw_params = {id(p) for g in adamw.param_groups for p in g["params"]}
    named = dict(model.named_parameters())
    expected = {id(p) for n, p in named.items() if n.startswith("blocks.") and p.dim() == 2}
    assert muon_params == expected and len(expected) == 4 * 2  # four matrices per block
    assert muon_params | adamw_params == {id(p) for p in model.parameters()}
    assert not muon_params & adamw_params
    assert muon.param_groups[0]["lr_scale"] == pytest.approx(20.0)  # 0.02 / 1e-3
    (only,) = optimizers_of(model, "adamw")
    assert isinstance(only, torch.optim.AdamW)


@pytest.mark.parametrize("optimizer", ["adamw", "muon"])
def test_loss_drops_with_either_optimizer(tmp_path: Path, optimizer: str) -> None:
    cfg = TrainConfig(**{**TINY, "max_iters": 40, "eval_interval": 40, "optimizer": optimizer})
    train(cfg, make_data(), tmp_path)
    losses = [r["val_loss"] for r in records(tmp_path / "metrics.jsonl") if not r.get("final")]
    assert losses[-1] < losses[0] - 0.5


def test_loss_drops_on_a_tiny_run(tmp_path: Path) -> None:
    cfg = TrainConfig(**{**TINY, "max_iters": 60, "eval_interval": 30})
    result = train(cfg, make_data(), tmp_path)
    losses = [r["val_loss"] for r in records(tmp_path / "metrics.jsonl") if not r.get("final")]
    assert [r["step"] for r in records(tmp_path / "metrics.jsonl")] == [0, 30, 60, 60]
    assert losses[-1] < losses[0] - 0.5
    assert result.reason == "max_iters" and result.val_loss < losses[0]
    for name in ("config.json", "metrics.jsonl", "samples.jsonl", "loss.png", "ckpt.pt"):
        assert (tmp_path / name).stat().st_size > 0


@pytest.mark.parametrize("optimizer", ["adamw", "muon"])
def test_interrupted_and_resumed_run_equals_uninterrupted_run(tmp_path: Path,
                                                              optimizer: str) -> None:
    cfg = TrainConfig(**{**TINY, "max_iters": 20, "dropout": 0.1,  # dropout uses the RNG too
                         "optimizer": optimizer,
                         "log_interval": 3})  # steps 3 and 6 are logged before the Ctrl-C
    data = make_data()
    straight: list[float] = []
    train(cfg, data, tmp_path / "a", on_step=lambda s, loss: straight.append(loss.item()))

    resumed: list[float] = []

    def ctrl_c_at_step_7(step: int, loss: torch.Tensor) -> None:  # 7: between evaluations
        resumed.append(loss.item())
        if step == 7:
            os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C, caught by the trainer

    first = train(cfg, data, tmp_path / "b", on_step=ctrl_c_at_step_7)
    assert first.reason == "interrupted" and first.step == 7
    assert load_checkpoint(tmp_path / "b" / "ckpt.pt")["step"] == 7
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored
    second = train(cfg, data, tmp_path / "b", resume=True,
                   on_step=lambda s, loss: resumed.append(loss.item()))
    assert second.reason == "max_iters" and second.step == 20
    assert resumed == straight  # every step's loss, bit for bit

    def comparable(run: str) -> list[dict]:
        rows = records(tmp_path / run / "metrics.jsonl")
        return [{k: v for k, v in r.items() if k != "elapsed_s"} for r in rows]

    assert comparable("b") == comparable("a")
    assert records(tmp_path / "b" / "samples.jsonl") == records(tmp_path / "a" / "samples.jsonl")
    a = load_checkpoint(tmp_path / "a" / "ckpt.pt")
    b = load_checkpoint(tmp_path / "b" / "ckpt.pt")
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_each_evaluation_records_the_losses_of_the_log_steps_before_it(tmp_path: Path) -> None:
    cfg = TrainConfig(**{**TINY, "max_iters": 20, "log_interval": 2, "sample_tokens": 0})
    seen: dict[int, float] = {}
    train(cfg, make_data(), tmp_path, on_step=lambda step, loss: seen.update({step: loss.item()}))
    rows = records(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in rows] == [0, 10, 20, 20]  # still one line per evaluation
    logged = [r.get("step_losses") for r in rows]
    assert logged[0] == [] and logged[3] is None  # nothing before step 0; the final has none
    assert [entry[0] for entry in logged[1]] == [2, 4, 6, 8, 10]
    assert [entry[0] for entry in logged[2]] == [12, 14, 16, 18, 20]
    for step, tokens, loss in logged[1] + logged[2]:
        assert tokens == step * cfg.batch_size * cfg.block_size
        assert loss == pytest.approx(seen[step], abs=1e-4)

    ax = plot_losses(tmp_path / "metrics.jsonl").axes[0]
    thin, train_curve, val_curve = ax.lines[:3]
    assert len(thin.get_xdata()) == 10 and len(train_curve.get_xdata()) == 3
    assert thin.get_linewidth() < train_curve.get_linewidth()
    assert list(thin.get_ydata()) == [entry[2] for entry in logged[1] + logged[2]]


def test_records_without_step_losses_still_plot(tmp_path: Path) -> None:
    metrics = tmp_path / "metrics.jsonl"  # as runs wrote them before step_losses
    metrics.write_text("".join(json.dumps({"step": s, "tokens": 100 * s, "train_loss": 3.0 - s,
                                           "val_loss": 3.1 - s}) + "\n" for s in (0, 1, 2)))
    ax = plot_losses(metrics, tmp_path / "loss.png").axes[0]
    assert len(ax.lines) == 2 and list(ax.lines[0].get_xdata()) == [0, 100, 200]
    assert (tmp_path / "loss.png").stat().st_size > 0


def test_max_time_stops_evaluates_and_saves(tmp_path: Path) -> None:
    cfg = TrainConfig(**{**TINY, "max_iters": 10**9, "max_time": 2.0, "eval_interval": 10**6,
                         "sample_tokens": 0})
    result = train(cfg, make_data(), tmp_path)
    assert result.reason == "max_time" and result.step < 10**9  # the clock ended it, not steps
    assert load_checkpoint(tmp_path / "ckpt.pt")["step"] == result.step
    rows = records(tmp_path / "metrics.jsonl")
    assert rows[-1]["final"] and rows[-1]["step"] == result.step
    assert rows[-2]["step"] == result.step and rows[-2]["lr"] == pytest.approx(cfg.min_lr)
    assert (tmp_path / "loss.png").exists()


@pytest.mark.parametrize("change, fault", [
    ({"n_embd": 30, "n_head": 4}, "n_head"),  # the model's rule, from GPTConfig
    ({"dropout": 1.5}, "dropout"),
    ({"optimizer": "sgd"}, "optimizer='sgd'"),
    ({"lr": float("inf")}, "lr=inf"),
    ({"weight_decay": float("nan")}, "weight_decay=nan"),
    ({"grad_clip": float("nan")}, "grad_clip=nan"),  # would silently turn clipping off
    ({"max_time": float("nan")}, "max_time=nan"),  # would silently mean no limit
    ({"beta2": 1.0}, "beta2"),
    ({"muon_momentum": -0.1}, "muon_momentum"),
    ({"muon_lr": 0.0}, "muon_lr"),
    ({"seed": -1}, "seed"),
    ({"vocab_size": 0}, "vocab_size"),
])
def test_invalid_settings_are_refused_when_made(change: dict, fault: str) -> None:
    with pytest.raises(ValueError, match=re.escape(fault)):
        TrainConfig(**change)
    with pytest.raises(ValueError, match=re.escape(fault)):  # a changed copy checks itself too
        dataclasses.replace(TrainConfig(), **change)


def test_the_model_config_is_built_from_the_settings_once() -> None:
    cfg = TrainConfig(n_layer=3, n_head=2, n_embd=16, block_size=8, dropout=0.1)
    trainer = Trainer(cfg, make_data())
    assert trainer.model.config == cfg.model_config(trainer.data.tokenizer.vocab_size)
    assert trainer.model.config.vocab_size == len(set(TEXT))


def test_a_run_without_a_folder_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                               ) -> None:
    monkeypatch.chdir(tmp_path)
    drawn: list[int] = []
    monkeypatch.setattr(Trainer, "sample", lambda self: drawn.append(self.step) or "")
    result = train(TrainConfig(**{**TINY, "max_iters": 12}), make_data())
    assert result.reason == "max_iters" and result.val_loss is not None
    assert list(tmp_path.iterdir()) == [] and drawn == []  # no files, and no sample drawn
    with pytest.raises(ValueError, match="out_dir"):
        train(TrainConfig(**TINY), make_data(), resume=True)


def test_the_run_folder_rewinds_records_to_the_checkpoint(tmp_path: Path) -> None:
    run = RunFolder(tmp_path / "run")
    run.begin({"train": {}})
    for step in (0, 10, 20):
        run.log_metrics({"step": step, "val_loss": 1.0})
        run.log_sample(step, lambda: "text")
        if step == 0:
            run.save({"step": 0})  # a new run's records reach the disk at its first save
    assert run.rewind(10) == []  # no torn lines to report
    assert [r["step"] for r in records(run.metrics)] == [0, 10]
    assert [r["step"] for r in records(run.samples)] == [0, 10]
    assert isinstance(NoRunFolder(), RunFolder)  # the loop takes either
