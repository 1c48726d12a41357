"""Chapter 2: the bigram model."""

from __future__ import annotations

import math

import pytest
import torch

from minigpt.bigram import BigramLM, train_bigram

TEXT_IDS = torch.tensor([0, 1, 2, 3] * 200)  # a text where each id always has the same successor


def test_initial_loss_is_about_ln_vocab_size() -> None:
    torch.manual_seed(0)
    model = BigramLM(65)
    idx = torch.randint(65, (8, 32))
    logits, loss = model(idx, torch.randint(65, (8, 32)))
    assert logits.shape == (8, 32, 65)
    assert loss.item() == pytest.approx(math.log(65), abs=0.02)
    assert model(idx)[1] is None


def test_the_prediction_depends_on_the_last_token_only() -> None:
    model = BigramLM(10)
    logits, _ = model(torch.tensor([[3, 7, 3]]))
    assert torch.equal(logits[0, 0], logits[0, 2])
    assert torch.equal(logits[0, 0], model.table.weight[3])


def test_training_lowers_the_loss_and_learns_the_successors() -> None:
    torch.manual_seed(0)
    model = BigramLM(4)
    losses = train_bigram(model, TEXT_IDS, steps=100, batch_size=8, block_size=8, lr=0.1)
    assert len(losses) == 100
    assert losses[0] == pytest.approx(math.log(4), abs=0.05)
    assert losses[-1] < 0.1 < losses[0]
    out = model.generate(torch.tensor([[2]]), 6, torch.Generator().manual_seed(0))
    assert out.tolist() == [[2, 3, 0, 1, 2, 3, 0]]


def test_generation_is_reproducible_and_has_the_right_shape() -> None:
    torch.manual_seed(0)
    model = BigramLM(30)
    start = torch.zeros(2, 3, dtype=torch.long)
    a = model.generate(start, 10, torch.Generator().manual_seed(5))
    b = model.generate(start, 10, torch.Generator().manual_seed(5))
    assert a.shape == (2, 13) and torch.equal(a, b) and torch.equal(a[:, :3], start)
    assert 0 <= a.min() and a.max() < 30
