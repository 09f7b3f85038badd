"""torch.optim.Muon, with its orthogonalisation in float32 on hardware that is slow at bfloat16.

torch runs Muon's Newton-Schulz iteration in bfloat16. That is fast on GPUs and on CPUs with
AVX-512 BF16, but a CPU with only AVX2 emulates bf16: there a bf16 matmul of Muon's sizes was
50-80x slower than a float32 one, and it made a training step of the bundled recipe 12x slower
(docs/benchmarks.md). There the same iteration runs in float32; everywhere else this is torch's
Muon, untouched.
"""

from __future__ import annotations

import math

import torch


def orthogonalise(g: torch.Tensor, coefficients: tuple[float, float, float], steps: int, eps: float,
                  dtype: torch.dtype) -> torch.Tensor:
    """Muon's quintic Newton-Schulz iteration, as torch.optim.Muon runs it, in ``dtype``."""
    a, b, c = coefficients
    x = g.to(dtype)
    tall = g.size(0) > g.size(1)
    if tall:  # iterate on the smaller Gram matrix
        x = x.T
    x = x / x.norm().clamp(min=eps)  # spectral norm at most 1
    for _ in range(steps):
        gram = x @ x.T
        x = torch.addmm(x, torch.addmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    return x.T if tall else x


class Muon(torch.optim.Muon):
    """torch.optim.Muon whose orthogonalisation runs in ``ns_dtype``; bfloat16 is torch's own step."""

    def __init__(self, params, *, lr: float, weight_decay: float, ns_dtype: torch.dtype = torch.bfloat16):
        super().__init__(params, lr=lr, weight_decay=weight_decay)
        self.ns_dtype = ns_dtype

    @torch.no_grad()
    def step(self, closure=None):
        if self.ns_dtype == torch.bfloat16:
            return super().step(closure)
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        # The same update as torch's _single_tensor_muon, with its default learning-rate adjustment.
        for group in self.param_groups:
            lr, momentum = group["lr"], group["momentum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p.grad)
                buf = state["momentum_buffer"]
                buf.lerp_(p.grad, 1 - momentum)
                update = p.grad.lerp(buf, momentum) if group["nesterov"] else buf
                update = orthogonalise(update, group["ns_coefficients"], group["ns_steps"], group["eps"],
                                       self.ns_dtype)
                p.mul_(1 - lr * group["weight_decay"])
                p.add_(update, alpha=-lr * math.sqrt(max(1, p.size(0) / p.size(1))))
        return loss
