"""Sparse attention (chapter 15): dense again when wide, an exact reach, the KV cache."""

from __future__ import annotations

import pytest
import torch

from minigpt.attention import attention_manual
from minigpt.kv_cache import KVCache, LayerCache, WindowCache, kept_positions
from minigpt.model import GPT, GPTConfig
from minigpt.sample import generate
from minigpt.sparse import sparse_mask
from minigpt.train import TrainConfig

BLOCK = 16


def model_of(attention: str = "dense", window: int | None = None, n_layer: int = 2,
             fused: bool = True) -> GPT:
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=11, block_size=BLOCK, n_layer=n_layer, n_head=2,
                          n_embd=16, attention=attention, attn_window=window))
    for block in model.blocks:
        block.attn.fused = fused
    return model.eval()


def logits(model: GPT, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(ids)[0]


IDS = torch.randint(0, 11, (2, BLOCK), generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("attention", ["sliding", "local"])
@pytest.mark.parametrize("window", [BLOCK, BLOCK + 5])
def test_a_window_as_wide_as_the_context_is_dense(attention: str, window: int) -> None:
    dense, sparse = model_of(), model_of(attention, window)
    assert torch.allclose(logits(dense, IDS), logits(sparse, IDS), atol=1e-6)


@pytest.mark.parametrize("n_layer,window", [(1, 4), (2, 3), (3, 2), (2, 5)])
def test_token_zero_reaches_exactly_layers_times_window_minus_one(n_layer: int,
                                                                   window: int) -> None:
    model = model_of("sliding", window, n_layer=n_layer)
    other = IDS.clone()
    other[:, 0] = (IDS[:, 0] + 1) % 11
    changed = (logits(model, IDS) - logits(model, other)).abs().amax(-1) > 1e-7
    reach = n_layer * (window - 1)
    assert changed[:, :reach + 1].all()  # just inside: position reach still hears token 0
    assert not changed[:, reach + 1:].any()


def test_local_attention_keeps_blocks_apart() -> None:
    model = model_of("local", 4, n_layer=3)
    other = IDS.clone()
    other[:, 5] = (IDS[:, 5] + 1) % 11  # a token of the second block, 4..7
    changed = (logits(model, IDS) - logits(model, other)).abs().amax(-1) > 1e-7
    assert changed[:, 5:8].all() and not changed[:, :5].any() and not changed[:, 8:].any()


@pytest.mark.parametrize("attention,window", [("sliding", 3), ("local", 5)])
def test_fused_and_manual_paths_agree(attention: str, window: int) -> None:
    fused, manual = model_of(attention, window), model_of(attention, window, fused=False)
    assert torch.allclose(logits(fused, IDS), logits(manual, IDS), atol=1e-5)


@pytest.mark.parametrize("attention,window", [("sliding", 3), ("local", 5)])
def test_sparse_attention_works_with_the_kv_cache(attention: str, window: int) -> None:
    model = model_of(attention, window)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(10.0)  # spread the logits: no near-ties for greedy decoding to flip
    prompt = IDS[:, :5]
    cached = generate(model, prompt, 3 * BLOCK, temperature=0)
    plain = generate(model, prompt, 3 * BLOCK, temperature=0, kv_cache=False)
    assert torch.equal(cached, plain)


def test_a_window_cache_stores_its_last_positions_and_returns_them_with_the_new() -> None:
    keys = torch.randn(1, 2, 12, 4, generator=torch.Generator().manual_seed(0))
    window, full = WindowCache(capacity=12, keep=3), LayerCache(capacity=12)
    for start, end in [(0, 6), (6, 7), (7, 8), (8, 12)]:  # a prefill, then steps
        k, _ = window.update(keys[:, :, start:end], -keys[:, :, start:end])
        all_k, _ = full.update(keys[:, :, start:end], -keys[:, :, start:end])
        assert torch.equal(k, all_k[:, :, -k.size(2):])  # the newest of what a full cache has
        assert k.size(2) == min(start, 3) + end - start  # kept past + new
        assert window.keys is not None and window.keys.size(2) == min(end, 3)
        assert window.length == end
    with pytest.raises(ValueError, match="holds 12 positions: 12 cached"):
        window.update(keys[:, :, :1], keys[:, :, :1])


@pytest.mark.parametrize("window", [1, 3, BLOCK - 1])
@pytest.mark.parametrize("fused", [True, False])
def test_a_window_caches_logits_are_the_uncached_models(window: int, fused: bool) -> None:
    model = model_of("sliding", window, n_layer=3, fused=fused)
    cache = KVCache(3, BLOCK, kept_positions("sliding", window))
    assert all(isinstance(layer, WindowCache) for layer in cache.layers)
    with torch.no_grad():
        steps = [model(IDS[:, :5], cache=cache)[0]]
        steps += [model(IDS[:, t:t + 1], cache=cache)[0] for t in range(5, BLOCK)]
    assert torch.allclose(torch.cat(steps, dim=1), logits(model, IDS), atol=1e-5)
    assert all(layer.keys is not None and layer.keys.size(2) == window - 1
               for layer in cache.layers)


def test_only_a_sliding_window_keeps_fewer_positions() -> None:
    assert kept_positions("sliding", 8) == 7
    assert kept_positions("local", 8) is None and kept_positions("dense", None) is None
    assert not any(isinstance(layer, WindowCache) for layer in KVCache(2, 8).layers)


def test_the_mask_rule_matches_a_loop() -> None:
    for n_keys in (1, 6, 9):
        for n_queries in range(1, n_keys + 1):
            for pattern, window in (("sliding", 2), ("local", 3)):
                mask = sparse_mask(pattern, window, n_queries, n_keys)
                for i in range(n_queries):
                    q = n_keys - n_queries + i
                    for k in range(n_keys):
                        near = q - k < window if pattern == "sliding" else k // 3 == q // 3
                        assert mask[i, k].item() == (k <= q and near)


def test_manual_attention_takes_a_mask() -> None:
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 1, 4, 8, generator=g) for _ in range(3))
    only_self = torch.eye(4, dtype=torch.bool)
    assert torch.allclose(attention_manual(q, k, v, mask=only_self), v, atol=1e-6)


@pytest.mark.parametrize("kwargs,message", [
    ({"attention": "sliding"}, "needs attn_window"),
    ({"attention": "local", "attn_window": 0}, "needs attn_window"),
    ({"attention": "sliding", "attn_window": True}, "needs attn_window"),
    ({"attn_window": 4}, "is for sparse attention"),
    ({"attention": "strided", "attn_window": 4}, "must be one of dense, sliding, local"),
])
def test_bad_patterns_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GPTConfig(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs)  # type: ignore[arg-type]


def test_a_run_reaches_the_model_through_its_settings() -> None:
    model = GPT(TrainConfig(attention="sliding", attn_window=8).model_config(vocab_size=11))
    assert all(b.attn.pattern == "sliding" and b.attn.window == 8 for b in model.blocks)
