"""GPT and Bigram against independent plain-torch computations."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from lyricgpt.model import GPT, IGNORE_INDEX, Bigram, BigramConfig, Dropout, GPTConfig, attention, build_model

CONFIG = GPTConfig(vocab_size=23, context_length=16, n_layer=2, n_head=4, n_embd=32)


def _perturbed(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random values everywhere, so that biases and LayerNorm gains are exercised too."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=g))
    return model.eval()


@pytest.fixture(scope="module")
def gpt() -> GPT:
    torch.manual_seed(0)
    return _perturbed(GPT(CONFIG))


def _layer_norm(x, w, b, eps=1e-5):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * w + b


def _gelu_tanh(x):
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def _gelu_exact(x):
    return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))


def reference_gpt(model: GPT, idx: torch.Tensor) -> torch.Tensor:
    """GPT-2's forward pass written out by hand, reading the model's weights by name."""
    c = model.config
    w = {k: v.detach() for k, v in model.state_dict().items()}
    B, T = idx.shape
    H, D = c.n_head, c.n_embd // c.n_head
    x = w["wte.weight"][idx] + w["wpe.weight"][:T]
    causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
    for i in range(c.n_layer):
        p = f"blocks.{i}."
        h = _layer_norm(x, w[p + "ln_1.weight"], w[p + "ln_1.bias"])
        qkv = h @ w[p + "attn.c_attn.weight"].T + w[p + "attn.c_attn.bias"]
        q, k, v = (t.reshape(B, T, H, D).transpose(1, 2) for t in qkv.split(c.n_embd, dim=-1))
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(D)
        scores = scores.masked_fill(~causal, -math.inf)
        att = torch.exp(scores - scores.max(-1, keepdim=True).values)
        att = att / att.sum(-1, keepdim=True)
        y = (att @ v).transpose(1, 2).reshape(B, T, c.n_embd)
        x = x + y @ w[p + "attn.c_proj.weight"].T + w[p + "attn.c_proj.bias"]
        h = _layer_norm(x, w[p + "ln_2.weight"], w[p + "ln_2.bias"])
        gelu = {"gelu_tanh": _gelu_tanh, "gelu": _gelu_exact}[c.activation]
        h = gelu(h @ w[p + "mlp.c_fc.weight"].T + w[p + "mlp.c_fc.bias"])
        x = x + h @ w[p + "mlp.c_proj.weight"].T + w[p + "mlp.c_proj.bias"]
    x = _layer_norm(x, w["ln_f.weight"], w["ln_f.bias"])
    return x @ w["wte.weight"].T  # the output head is the token embedding, transposed


def test_logits_match_reference(gpt):
    idx = torch.randint(CONFIG.vocab_size, (3, CONFIG.context_length), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits, loss = gpt(idx)
        expected = reference_gpt(gpt, idx)
    assert loss is None
    assert logits.shape == (3, CONFIG.context_length, CONFIG.vocab_size)
    assert expected.std() > 0.5  # the comparison is not between near-zero numbers
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-4)
    # Shorter inputs use the first positions of the table.
    with torch.no_grad():
        torch.testing.assert_close(gpt(idx[:, :5])[0], reference_gpt(gpt, idx[:, :5]), atol=1e-5, rtol=1e-4)


def test_exact_gelu_matches_reference(gpt):
    exact = GPT(dataclasses.replace(CONFIG, activation="gelu"))
    exact.load_state_dict(gpt.state_dict())
    idx = torch.randint(CONFIG.vocab_size, (2, 10), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        logits = exact(idx)[0]
        torch.testing.assert_close(logits, reference_gpt(exact, idx), atol=1e-5, rtol=1e-4)
        assert not torch.allclose(logits, gpt(idx)[0], atol=1e-6)  # the two curves do differ


def test_loss_is_cross_entropy_and_skips_ignored_targets(gpt):
    g = torch.Generator().manual_seed(2)
    idx = torch.randint(CONFIG.vocab_size, (2, 10), generator=g)
    targets = torch.randint(CONFIG.vocab_size, (2, 10), generator=g)
    with torch.no_grad():
        logits, loss = gpt(idx, targets)
    torch.testing.assert_close(loss, F.cross_entropy(logits.view(-1, CONFIG.vocab_size), targets.view(-1)))

    ignored = targets.clone()
    ignored[0, :4] = IGNORE_INDEX
    ignored[1, 7:] = IGNORE_INDEX
    with torch.no_grad():
        _, loss = gpt(idx, ignored)
    log_probs = logits.log_softmax(-1)
    keep = ignored != IGNORE_INDEX
    expected = -log_probs[keep].gather(-1, ignored[keep][:, None]).mean()
    torch.testing.assert_close(loss, expected)


def test_causal(gpt):
    g = torch.Generator().manual_seed(3)
    idx = torch.randint(CONFIG.vocab_size, (1, CONFIG.context_length), generator=g)
    with torch.no_grad():
        base, _ = gpt(idx)
        for t in (0, 5, CONFIG.context_length - 1):
            changed = idx.clone()
            changed[0, t] = (changed[0, t] + 1) % CONFIG.vocab_size
            logits, _ = gpt(changed)
            torch.testing.assert_close(logits[:, :t], base[:, :t], atol=1e-6, rtol=0)
            assert not torch.allclose(logits[:, t], base[:, t])  # the change itself is seen


@pytest.mark.parametrize("causal, T, S", [(True, 7, 7), (False, 1, 9)])  # a prefill; one new character
def test_plain_attention_matches_the_fused_kernel_used_off_the_cpu(causal, T, S):
    g = torch.Generator().manual_seed(3)
    q, k, v = torch.randn(2, 4, T, 8, generator=g), torch.randn(2, 4, S, 8, generator=g), torch.randn(2, 4, S, 8, generator=g)
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    torch.testing.assert_close(attention(q, k, v, causal), expected)


def test_weight_tying():
    model = GPT(CONFIG)
    assert model.lm_head.weight is model.wte.weight
    assert model.num_params() == sum(p.numel() for p in set(model.parameters()))


def test_gpt2_initialisation():
    torch.manual_seed(0)
    n_layer = 8
    model = GPT(GPTConfig(vocab_size=65, context_length=64, n_layer=n_layer, n_head=4, n_embd=256))
    projection_std = 0.02 / math.sqrt(2 * n_layer)
    for name, p in model.named_parameters():
        if name.endswith("c_proj.weight"):
            assert p.std().item() == pytest.approx(projection_std, rel=0.05), name
        elif name.endswith(("c_attn.weight", "c_fc.weight", "wte.weight", "wpe.weight")):
            assert p.std().item() == pytest.approx(0.02, rel=0.05), name
        elif name.endswith("bias") and "ln_" not in name:
            assert torch.all(p == 0), name
        if p.dim() == 2:
            assert abs(p.mean().item()) < 0.002, name
    for module in model.modules():
        if isinstance(module, torch.nn.LayerNorm):
            assert torch.all(module.weight == 1) and torch.all(module.bias == 0)


def test_positions_beyond_context_raise(gpt):
    n = CONFIG.context_length
    with pytest.raises(ValueError, match=f"{n + 1} positions exceed the context length {n}"):
        gpt(torch.zeros(1, n + 1, dtype=torch.long))
    cache = gpt.new_cache(1)
    with torch.no_grad():
        gpt(torch.zeros(1, n, dtype=torch.long), cache=cache)
        with pytest.raises(ValueError, match="exceed the context length"):
            gpt(torch.zeros(1, 1, dtype=torch.long), cache=cache)


def test_bigram_logits_are_table_rows():
    model = _perturbed(Bigram(BigramConfig(vocab_size=11, context_length=8)))
    g = torch.Generator().manual_seed(4)
    idx = torch.randint(11, (2, 8), generator=g)
    targets = torch.randint(11, (2, 8), generator=g)
    targets[0, 0] = IGNORE_INDEX
    with torch.no_grad():
        logits, loss = model(idx, targets)
    table = model.table.weight.detach()
    assert torch.equal(logits, table[idx])
    keep = targets != IGNORE_INDEX
    expected = -table[idx][keep].log_softmax(-1).gather(-1, targets[keep][:, None]).mean()
    torch.testing.assert_close(loss, expected)


def test_build_model_picks_the_architecture():
    assert type(build_model(CONFIG)) is GPT
    assert type(build_model(BigramConfig(vocab_size=5))) is Bigram


# --- dropout -------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("p", [0.1, 0.3])
def test_dropout_drops_each_element_with_probability_p_and_rescales_the_rest(p, dtype):
    torch.manual_seed(0)
    x = torch.rand(64, 128, 129, dtype=dtype) + 1  # an odd size: the mask is cut from 64-bit words
    y = Dropout(p).train()(x)
    kept = y != 0
    n = x.numel()
    assert abs(kept.float().mean().item() - (1 - p)) < 4 * math.sqrt(p * (1 - p) / n)
    torch.testing.assert_close(y[kept], x[kept] / (1 - p), rtol=1e-2 if dtype == torch.bfloat16 else 1e-4, atol=0)
    # Neighbouring lanes of one 64-bit word are independent, as if drawn one by one.
    pairs = kept.flatten()[: n // 4 * 4].view(-1, 4)
    both = (pairs[:, 0] & pairs[:, 3]).float().mean().item()
    assert abs(both - (1 - p) ** 2) < 0.01


def test_dropout_gradient_is_the_mask_and_eval_is_the_identity():
    torch.manual_seed(1)
    x = torch.randn(8, 16, 32, requires_grad=True)
    drop = Dropout(0.25).train()
    y = drop(x)
    y.sum().backward()
    torch.testing.assert_close(x.grad, (y != 0).float() / 0.75)
    assert drop.eval()(x) is x and Dropout(0.0).train()(x) is x


def test_dropout_masks_follow_the_torch_seed():
    x = torch.ones(1000)
    torch.manual_seed(5)
    a, b = Dropout(0.5).train()(x), Dropout(0.5).train()(x)
    torch.manual_seed(5)
    assert torch.equal(Dropout(0.5).train()(x), a) and not torch.equal(a, b)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        Dropout(1.0)
