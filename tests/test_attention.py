"""Chapter 3: scaled dot-product attention, by hand and fused, and the causal mask."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from minigpt.attention import CausalSelfAttention, attention_manual


def qkv(*shape: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(*shape, generator=g) for _ in range(3))  # type: ignore[return-value]


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("shape", [(1, 1, 5, 4), (2, 3, 7, 8), (3, 11, 16)])
def test_manual_attention_equals_pytorchs(shape: tuple[int, ...], causal: bool) -> None:
    q, k, v = qkv(*shape)
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    assert torch.allclose(attention_manual(q, k, v, causal=causal), expected, atol=1e-5)


def test_manual_attention_by_the_formula() -> None:
    q, k, v = qkv(6, 4)
    weights = torch.softmax(q @ k.T / 2.0, dim=-1)  # sqrt(4) = 2, no mask
    assert torch.allclose(attention_manual(q, k, v, causal=False), weights @ v, atol=1e-6)
    # causal: the first position sees only itself
    assert torch.allclose(attention_manual(q, k, v)[0], v[0], atol=1e-6)


@pytest.mark.parametrize("n_head", [1, 4])
def test_module_fused_equals_manual(n_head: int) -> None:
    torch.manual_seed(0)
    attn = CausalSelfAttention(n_embd=16, n_head=n_head, block_size=10)
    x = torch.randn(3, 10, 16)
    fused = attn(x)
    attn.fused = False
    assert fused.shape == (3, 10, 16)
    assert torch.allclose(attn(x), fused, atol=1e-5)


def test_heads_are_independent_attentions_side_by_side() -> None:
    torch.manual_seed(0)
    attn = CausalSelfAttention(n_embd=12, n_head=3, block_size=8, bias=False)
    x = torch.randn(2, 8, 12)
    q, k, v = (x @ w.T for w in attn.qkv.weight.split(12))
    heads = [attention_manual(q[..., h * 4:(h + 1) * 4], k[..., h * 4:(h + 1) * 4],
                              v[..., h * 4:(h + 1) * 4]) for h in range(3)]
    expected = torch.cat(heads, dim=-1) @ attn.proj.weight.T
    assert torch.allclose(attn(x), expected, atol=1e-5)


@pytest.mark.parametrize("fused", [True, False])
def test_the_future_never_changes_the_past(fused: bool) -> None:
    torch.manual_seed(0)
    attn = CausalSelfAttention(n_embd=16, n_head=2, block_size=12, fused=fused)
    x = torch.randn(2, 12, 16)
    before = attn(x)
    for t in (0, 5, 11):
        changed = x.clone()
        changed[:, t:] = torch.randn(2, 12 - t, 16)
        after = attn(changed)
        assert torch.allclose(after[:, :t], before[:, :t], atol=1e-6)
        assert not torch.allclose(after[:, t], before[:, t])  # position t does see itself


def test_dropout_only_while_training() -> None:
    torch.manual_seed(0)
    attn = CausalSelfAttention(n_embd=16, n_head=2, block_size=8, dropout=0.5)
    x = torch.randn(2, 8, 16)
    attn.eval()
    assert torch.equal(attn(x), attn(x))
    attn.train()
    assert not torch.equal(attn(x), attn(x))


def test_bad_settings_and_long_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="n_embd=10.*n_head=3"):
        CausalSelfAttention(n_embd=10, n_head=3, block_size=8)
    attn = CausalSelfAttention(n_embd=8, n_head=2, block_size=4)
    with pytest.raises(ValueError, match="5 tokens.*block_size=4"):
        attn(torch.zeros(1, 5, 8))


def test_state_dict_is_the_same_fused_or_not() -> None:
    a = CausalSelfAttention(8, 2, block_size=4, fused=True).state_dict()
    b = CausalSelfAttention(8, 2, block_size=4, fused=False).state_dict()
    assert a.keys() == b.keys() == {"qkv.weight", "qkv.bias", "proj.weight", "proj.bias"}
