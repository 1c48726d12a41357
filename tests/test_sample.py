"""Chapter 6: temperature, top-k, top-p, seeds, prompts, context cropping."""

from __future__ import annotations

import pytest
import torch

from minigpt.data import CharTokenizer
from minigpt.model import GPT, GPTConfig
from minigpt.sample import context_start, generate, next_token_probs, sample_text

LOGITS = torch.tensor([2.0, 1.0, 0.5, 0.0, -1.0, 0.2])
TOK = CharTokenizer.from_text("abcdefghij klmnop\nqrstuvwxyz:ROMEO")


def small_model(block_size: int = 8) -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=TOK.vocab_size, block_size=block_size, n_layer=1, n_head=1,
                         n_embd=16))


def test_top_k_keeps_exactly_the_k_best() -> None:
    probs = next_token_probs(LOGITS, top_k=3)
    assert (probs > 0).nonzero().flatten().tolist() == [0, 1, 2]
    assert probs.sum().item() == pytest.approx(1.0)
    draws = torch.multinomial(probs, 500, replacement=True,
                              generator=torch.Generator().manual_seed(0))
    assert set(draws.tolist()) <= {0, 1, 2}


def test_top_p_keeps_the_smallest_set_reaching_p() -> None:
    full = torch.softmax(LOGITS, -1)
    order = full.argsort(descending=True)
    for p in (0.3, 0.6, 0.8, 0.95):
        kept = next_token_probs(LOGITS, top_p=p) > 0
        need = int((full[order].cumsum(0) < p).sum().item()) + 1  # tokens to reach p
        assert kept.sum().item() == need
        assert kept[order[:need]].all()
    assert torch.allclose(next_token_probs(LOGITS, top_p=1.0), full)


def test_temperature_near_zero_is_argmax() -> None:
    assert next_token_probs(LOGITS, temperature=1e-3)[0].item() > 0.999
    assert next_token_probs(LOGITS, temperature=0).tolist() == [1.0, 0, 0, 0, 0, 0]
    hot = next_token_probs(LOGITS, temperature=100.0)
    assert hot.max() - hot.min() < 0.01  # high temperature: nearly uniform
    model = small_model()
    idx = torch.tensor([TOK.encode("ROMEO")])
    out = generate(model, idx, 6, temperature=0)
    for t in range(5, 11):  # each greedy token is the argmax given what came before
        logits, _ = model(out[:, context_start(t, 8):t])
        assert out[0, t].item() == logits[0, -1].argmax().item()


def test_same_seed_same_text_other_seed_other_text() -> None:
    model = small_model()
    a = sample_text(model, TOK, "ROMEO:", 60, seed=3)
    assert a == sample_text(model, TOK, "ROMEO:", 60, seed=3)
    assert a != sample_text(model, TOK, "ROMEO:", 60, seed=4)
    assert a.startswith("ROMEO:") and len(a) == 66


def test_prompt_with_unknown_characters_names_them() -> None:
    with pytest.raises(ValueError, match="é"):
        sample_text(small_model(), TOK, "ROMEO é", 5)
    with pytest.raises(ValueError, match="empty"):
        sample_text(small_model(), TOK, "", 5)


def test_context_is_cropped_to_block_size(monkeypatch: pytest.MonkeyPatch) -> None:
    model = small_model(block_size=8)
    seen: list[int] = []
    forward = model.forward
    monkeypatch.setattr(model, "forward",
                        lambda idx, *a, **k: (seen.append(idx.size(1)), forward(idx, *a, **k))[1])
    out = generate(model, torch.tensor([TOK.encode("abc")]), 20,
                   generator=torch.Generator().manual_seed(0), kv_cache=False)
    assert out.shape == (1, 23)
    assert max(seen) == 8 and seen[:8] == [3, 4, 5, 6, 7, 8, 5, 6]
