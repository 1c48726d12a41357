"""Chapter 4: the GPT."""

from __future__ import annotations

import math

import pytest
import torch

from minigpt.model import GPT, GPTConfig


def tiny(**changes: object) -> GPT:
    torch.manual_seed(0)
    settings = dict(vocab_size=65, block_size=16, n_layer=2, n_head=2, n_embd=32)
    return GPT(GPTConfig(**{**settings, **changes}))


def formula(V: int, T: int, L: int, C: int) -> int:
    """Parameters: tied embedding, positions, L blocks, final LayerNorm."""
    attention = (3 * C * C + 3 * C) + (C * C + C)  # qkv and proj, with biases
    mlp = (4 * C * C + 4 * C) + (4 * C * C + C)  # fc and proj
    per_block = 2 * C + attention + 2 * C + mlp  # two LayerNorms, gain and shift
    return V * C + T * C + L * per_block + 2 * C


def test_shapes_and_loss() -> None:
    model = tiny()
    idx = torch.randint(65, (3, 16))
    logits, loss = model(idx)
    assert logits.shape == (3, 16, 65) and loss is None
    logits, loss = model(idx[:, :5], idx[:, 1:6])
    assert logits.shape == (3, 5, 65) and loss.shape == ()


def test_initial_loss_is_about_ln_vocab_size() -> None:
    model = tiny()
    g = torch.Generator().manual_seed(1)
    idx, targets = torch.randint(65, (8, 16), generator=g), torch.randint(65, (8, 16), generator=g)
    _, loss = model(idx, targets)
    assert loss.item() == pytest.approx(math.log(65), abs=0.1)


def test_the_future_never_changes_the_past() -> None:
    model = tiny().eval()
    idx = torch.randint(65, (2, 16))
    before, _ = model(idx)
    changed = idx.clone()
    changed[:, 9:] = (changed[:, 9:] + 1) % 65
    after, _ = model(changed)
    assert torch.allclose(after[:, :9], before[:, :9], atol=1e-5)
    assert not torch.allclose(after[:, 9], before[:, 9])


def test_manual_attention_gives_the_same_model() -> None:
    fused, manual = tiny(), tiny()
    for block in manual.blocks:
        block.attn.fused = False
    idx = torch.randint(65, (2, 16))
    assert torch.allclose(fused(idx)[0], manual(idx)[0], atol=1e-5)


def test_a_tiny_model_overfits_one_batch() -> None:
    model = tiny(vocab_size=20, n_layer=1)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(20, (2, 16), generator=g)
    y = torch.randint(20, (2, 16), generator=g)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(60):
        _, loss = model(x, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.1


def test_weight_tying() -> None:
    model = tiny()
    assert model.lm_head.weight is model.tok_emb.weight
    names = [name for name, _ in model.named_parameters()]
    assert "tok_emb.weight" in names and "lm_head.weight" not in names  # listed once


def test_parameter_count_matches_the_formula() -> None:
    assert tiny().num_params() == formula(V=65, T=16, L=2, C=32)
    assert tiny().num_params() == sum(p.numel() for p in tiny().parameters())
    with torch.device("meta"):  # the classic baby GPT, without allocating its weights
        baby = GPT(GPTConfig(vocab_size=65, block_size=256, n_layer=6, n_head=6, n_embd=384))
    assert baby.num_params() == formula(V=65, T=256, L=6, C=384) == 10_770_816


def test_gpt2_style_initialisation() -> None:
    model = tiny(n_embd=128, n_layer=4, block_size=64)
    assert model.tok_emb.weight.std().item() == pytest.approx(0.02, rel=0.05)
    residual = 0.02 / math.sqrt(2 * 4)
    assert model.blocks[0].attn.proj.weight.std().item() == pytest.approx(residual, rel=0.05)
    assert model.blocks[3].mlp.proj.weight.std().item() == pytest.approx(residual, rel=0.05)
    assert model.blocks[0].mlp.fc.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert torch.count_nonzero(model.blocks[0].mlp.fc.bias) == 0


def test_too_long_input_is_refused() -> None:
    with pytest.raises(ValueError, match="17 tokens.*block_size=16"):
        tiny()(torch.zeros(1, 17, dtype=torch.long))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"n_embd": 30, "n_head": 4}, "n_embd=30.*n_head=4"),
        ({"n_layer": 0}, "n_layer=0"),
        ({"vocab_size": -5}, "vocab_size=-5"),
        ({"block_size": 2.5}, "block_size=2.5"),
        ({"dropout": 1.0}, "dropout=1.0"),
        ({"dropout": -0.1}, "dropout=-0.1"),
    ],
)
def test_impossible_settings_are_refused(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GPTConfig(**changes)


def test_dropout_is_off_in_eval_mode() -> None:
    model = tiny(dropout=0.3)
    idx = torch.randint(65, (2, 16))
    model.train()
    assert not torch.equal(model(idx)[0], model(idx)[0])
    model.eval()
    assert torch.equal(model(idx)[0], model(idx)[0])


def test_positions_are_seen() -> None:
    # A run of one repeated token: attention alone would see the same vector everywhere, so
    # every position would get the same logits. The position embedding tells them apart.
    logits, _ = tiny()(torch.zeros(1, 8, dtype=torch.long))
    assert not torch.allclose(logits[0, 1:], logits[0, :1].expand(7, -1), atol=1e-4)
