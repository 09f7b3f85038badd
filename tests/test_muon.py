"""Our Muon against torch.optim.Muon: the same update, only the orthogonalisation's precision differs."""

import pytest
import torch

from lyricgpt.muon import Muon, orthogonalise


def run_steps(opt_class, shape, steps=3, **kwargs):
    torch.manual_seed(0)
    p = torch.nn.Parameter(torch.randn(shape))
    grads = [torch.randn(shape) for _ in range(steps)]
    opt = opt_class([p], lr=0.02, weight_decay=0.1, **kwargs)
    for g in grads:
        p.grad = g.clone()
        opt.step()
    return p.detach(), opt


@pytest.mark.parametrize("shape", [(64, 192), (192, 64)], ids=["wide", "tall"])
def test_float32_muon_makes_torchs_update(shape):
    ours, ours_opt = run_steps(Muon, shape, ns_dtype=torch.float32)
    theirs, theirs_opt = run_steps(torch.optim.Muon, shape)
    start = run_steps(Muon, shape, steps=0)[0]
    # Momentum never touches the orthogonalisation, so it agrees exactly; the step differs by bf16 rounding.
    assert torch.equal(ours_opt.state[ours_opt.param_groups[0]["params"][0]]["momentum_buffer"],
                       theirs_opt.state[theirs_opt.param_groups[0]["params"][0]]["momentum_buffer"])
    ours_step, theirs_step = ours - start, theirs - start
    assert (ours_step - theirs_step).norm() / theirs_step.norm() < 0.02


def test_bfloat16_is_torchs_own_step_bit_for_bit():
    ours, _ = run_steps(Muon, (48, 96), ns_dtype=torch.bfloat16)
    theirs, _ = run_steps(torch.optim.Muon, (48, 96))
    assert torch.equal(ours, theirs)


def test_state_dicts_are_interchangeable_with_torchs():
    """A checkpoint written on one machine resumes on another whatever precision each picked."""
    _, theirs_opt = run_steps(torch.optim.Muon, (32, 64))
    p = theirs_opt.param_groups[0]["params"][0]
    ours_opt = Muon([p], lr=0.02, weight_decay=0.1, ns_dtype=torch.float32)
    ours_opt.load_state_dict(theirs_opt.state_dict())
    assert torch.equal(ours_opt.state[p]["momentum_buffer"], theirs_opt.state[p]["momentum_buffer"])
    torch.optim.Muon([p]).load_state_dict(ours_opt.state_dict())


@pytest.mark.parametrize("shape", [(64, 256), (256, 64)], ids=["wide", "tall"])
def test_orthogonalise_flattens_the_singular_values(shape):
    """Not an exact U V^T: torch's coefficients leave singular values roughly in [0.5, 1.5] (its docstring)."""
    torch.manual_seed(1)
    g = torch.randn(shape) @ torch.diag(torch.logspace(-1, 1, shape[1]))  # spread over two decades
    d = torch.optim.Muon([torch.nn.Parameter(g)]).defaults  # torch's coefficients, steps and eps
    x = orthogonalise(g, d["ns_coefficients"], d["ns_steps"], d["eps"], dtype=torch.float32)
    assert x.shape == g.shape
    s = torch.linalg.svdvals(x)
    assert s.min() > 0.3 and s.max() < 1.3, s
    # The same directions as the gradient: x is close to U S' V^T, so <x, U V^T> is large.
    u, _, vh = torch.linalg.svd(g, full_matrices=False)
    assert (x * (u @ vh)).sum() / (u @ vh).norm() ** 2 > 0.6
