"""Chapter 6's KV cache: the same tokens and logits as recomputing every position."""

from __future__ import annotations

import pytest
import torch

from minigpt.attention import attention_manual, causal_mask
from minigpt.kv_cache import KVCache, LayerCache
from minigpt.model import GPT, GPTConfig
from minigpt.sample import context_start, generate, next_logits, sample_text
from tests.test_sample import TOK

BLOCK = 8


def model_of(block_size: int = BLOCK, fused: bool = True, scale: float = 10.0) -> GPT:
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=23, block_size=block_size, n_layer=2, n_head=2, n_embd=16))
    for block in model.blocks:
        block.attn.fused = fused
    # Larger weights than the initial 0.02 spread the logits, so that greedy choices are not
    # near-ties that rounding could flip, and a wrong cache would show.
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(scale)
    return model.eval()


@pytest.mark.parametrize("block_size", [1, 2, 7, 8])
def test_window_holds_half_to_a_whole_block(block_size: int) -> None:
    step = block_size - block_size // 2
    starts = [context_start(n, block_size) for n in range(1, 60)]
    assert starts == sorted(starts)  # the window only moves forward
    for n, start in zip(range(1, 60), starts, strict=True):
        window = n - start
        assert 1 <= window <= block_size and start % step == 0
        if n > block_size:
            assert window > block_size // 2  # at least half a block of context, plus one


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("prompt_len", [3, BLOCK, BLOCK + 5, 3 * BLOCK + 1])
def test_greedy_tokens_equal_with_and_without_cache(prompt_len: int, fused: bool) -> None:
    model = model_of(fused=fused)
    prompt = torch.randint(0, 23, (2, prompt_len), generator=torch.Generator().manual_seed(1))
    new = 4 * BLOCK + 3  # runs well past block_size, through several jumps of the window
    cached = generate(model, prompt, new, temperature=0)
    plain = generate(model, prompt, new, temperature=0, kv_cache=False)
    assert cached.shape == (2, prompt_len + new)
    assert torch.equal(cached, plain)
    assert len(set(cached[0, prompt_len:].tolist())) > 2  # a real sequence, not one token


def test_cached_logits_equal_uncached_at_every_step() -> None:
    model = model_of(scale=1.0)  # the initial scale: logits of about 1, as in training
    text = torch.randint(0, 23, (1, 40), generator=torch.Generator().manual_seed(2))
    cache = KVCache(model.config.n_layer, BLOCK)
    with torch.no_grad():
        for n in range(1, 41):
            cached = next_logits(model, text[:, :n], BLOCK, cache)
            plain = next_logits(model, text[:, :n], BLOCK, None)
            assert (cached - plain).abs().max().item() < 1e-5, n
            assert cache.length == n - context_start(n, BLOCK)


def test_the_cache_feeds_one_token_per_step(monkeypatch: pytest.MonkeyPatch) -> None:
    model = model_of()
    fed: list[int] = []
    forward = model.forward
    monkeypatch.setattr(model, "forward",
                        lambda idx, *a, **k: (fed.append(idx.size(1)), forward(idx, *a, **k))[1])
    generate(model, torch.tensor([[1, 2, 3]]), 14, temperature=0)
    # 3 prompt tokens, 1 per step up to a full block, then the newest half block plus one
    assert fed == [3, 1, 1, 1, 1, 1, 5, 1, 1, 1, 5, 1, 1, 1]
    fed.clear()
    generate(model, torch.tensor([[1, 2, 3]]), 14, temperature=0, kv_cache=False)
    assert fed == [3, 4, 5, 6, 7, 8, 5, 6, 7, 8, 5, 6, 7, 8]


def test_seeded_sampling_is_reproducible_and_matches_uncached() -> None:
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=TOK.vocab_size, block_size=BLOCK, n_layer=1, n_head=1,
                          n_embd=16))
    a = sample_text(model, TOK, "ROMEO:", 40, seed=3)
    assert a == sample_text(model, TOK, "ROMEO:", 40, seed=3)
    assert a != sample_text(model, TOK, "ROMEO:", 40, seed=4)
    assert a == sample_text(model, TOK, "ROMEO:", 40, seed=3, kv_cache=False)


def test_generation_leaves_the_model_as_it_was() -> None:
    model = model_of().train()
    generate(model, torch.tensor([[1]]), 3)
    assert model.training
    logits, _ = model(torch.tensor([[1, 2, 3]]))  # no cache left behind in the model
    assert logits.shape == (1, 3, 23)


def test_a_full_cache_refuses_more_positions() -> None:
    layer = LayerCache(capacity=4)
    k = torch.zeros(1, 2, 3, 5)
    keys, values = layer.update(k, k)
    assert keys.shape == (1, 2, 3, 5) and layer.length == 3
    with pytest.raises(ValueError, match="holds 4 positions: 3 cached \\+ 2 new"):
        layer.update(torch.zeros(1, 2, 2, 5), torch.zeros(1, 2, 2, 5))
    model = model_of()
    cache = KVCache(model.config.n_layer, BLOCK)
    model(torch.zeros(1, BLOCK, dtype=torch.long), cache=cache)
    with pytest.raises(ValueError, match="sequence of 9 tokens is longer than the model's"):
        model(torch.zeros(1, 1, dtype=torch.long), cache=cache)


def test_new_queries_after_cached_keys_see_the_past_and_themselves() -> None:
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 2, 6, 4, generator=g) for _ in range(3))
    whole = attention_manual(q, k, v)
    last_two = attention_manual(q[:, :, 4:], k, v)  # queries 4 and 5 against all 6 keys
    assert torch.allclose(last_two, whole[:, :, 4:], atol=1e-6)
    sdpa = torch.nn.functional.scaled_dot_product_attention(
        q[:, :, 4:], k, v, attn_mask=causal_mask(2, 6))
    assert torch.allclose(sdpa, whole[:, :, 4:], atol=1e-6)
    assert causal_mask(2, 6).tolist() == [[True] * 5 + [False], [True] * 6]


def test_a_cache_of_several_new_positions_after_a_prefill() -> None:
    model = model_of(scale=1.0)
    text = torch.randint(0, 23, (1, BLOCK), generator=torch.Generator().manual_seed(3))
    whole, _ = model(text)
    cache = KVCache(model.config.n_layer, BLOCK)
    first, _ = model(text[:, :3], cache=cache)
    rest, _ = model(text[:, 3:], cache=cache)  # five positions at once, after three cached
    assert torch.allclose(torch.cat([first, rest], dim=1), whole, atol=1e-5)
