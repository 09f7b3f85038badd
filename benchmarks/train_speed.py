"""Training throughput and model-FLOPs utilisation (MFU) on this machine.

    python benchmarks/train_speed.py                 # the bundled model's recipe, on assets/lyrics.txt
    python benchmarks/train_speed.py --activation gelu_tanh --n-layer 6   # any train.py flag
    python benchmarks/train_speed.py --muon-ns bfloat16   # Muon's orthogonalisation in torch's bf16

Prints training tokens/s (median over timed steps), FLOPs per token (6 x parameters plus
attention), the dense-matmul FLOP/s of this machine in float32 (and in bfloat16 where the hardware
runs it natively) measured in the same run, and the MFU against the peak of the precision the run
computes in. On a CPU without AVX-512 BF16 a bf16 matmul is emulated: timing one would take
minutes and mean nothing, so it is skipped.
"""

from __future__ import annotations

import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

import train  # noqa: E402
from lyricgpt.muon import Muon  # noqa: E402
from lyricgpt.runtime import bf16_is_fast, setup_runtime  # noqa: E402
from lyricgpt.training import Trainer  # noqa: E402


def matmul_flops(dtype: torch.dtype, device: torch.device, n: int = 2048, repeats: int = 10) -> float:
    """Dense matmul FLOP/s on the device the run trains on."""
    a, b = torch.randn(n, n, dtype=dtype, device=device), torch.randn(n, n, dtype=dtype, device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else lambda: None  # CUDA returns before it is done
    for _ in range(3):
        a @ b
    times = []
    for _ in range(repeats):
        sync()
        t = time.perf_counter()
        a @ b
        sync()
        times.append(time.perf_counter() - t)
    return 2 * n ** 3 / statistics.median(times)


def flops_per_token(model: torch.nn.Module, context: int) -> float:
    """6N for the forward and backward matmuls, plus attention's scores and weighted sum."""
    c = model.config
    n = sum(p.numel() for name, p in model.named_parameters() if name != "wpe.weight")
    attention = 6 * c.n_layer * c.n_embd * context  # fwd+bwd of QK^T and AV, causal half counted in full/2
    return 6 * n + attention


def pop_flag(argv: list[str], flag: str, default: str | None) -> str | None:
    """Take this benchmark's own flag out of argv, leaving train.py's flags."""
    if flag not in argv:
        return default
    i = argv.index(flag)
    value = argv[i + 1]
    del argv[i:i + 2]
    return value


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    steps = int(pop_flag(argv, "--steps", "20"))
    muon_ns = pop_flag(argv, "--muon-ns", None)  # float32 or bfloat16; default: what training picks
    if "--data" not in argv:
        argv += ["--data", os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets", "lyrics.txt")]
    args = train.parse_args(argv + ["--out", "runs/bench-train-speed", "--max-steps", str(10 ** 9)])
    cfg = train.build_config(args)
    trainer = Trainer(cfg, setup_runtime(cfg))
    muons = [o for o in getattr(trainer.optimizer, "optimizers", ()) if isinstance(o, Muon)]
    if muon_ns:
        for o in muons:
            o.ns_dtype = getattr(torch, muon_ns)
    setting = trainer.describe().split("; device ")[1]
    model = trainer.model
    tokens_per_step = cfg.batch_size * cfg.grad_accum * cfg.context_length
    for _ in range(3):
        trainer.train_step()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        trainer.train_step()
        times.append(time.perf_counter() - t)
    step_s = statistics.median(times)
    tok_s = tokens_per_step / step_s
    fpt = flops_per_token(model, cfg.context_length)
    device = trainer.rt.device
    peaks = {torch.float32: matmul_flops(torch.float32, device)}
    if bf16_is_fast(device):
        peaks[torch.bfloat16] = matmul_flops(torch.bfloat16, device)
    run_dtype = trainer.rt.autocast_dtype or torch.float32
    print(f"config: {cfg.n_layer} layers x {cfg.n_embd} wide, {cfg.n_head} heads, context {cfg.context_length}, "
          f"batch {cfg.batch_size}x{cfg.grad_accum}, {setting}")
    print(f"optimizer: {cfg.optimizer}" + "".join(f", Muon orthogonalising in {str(o.ns_dtype).removeprefix('torch.')}"
                                                  for o in muons))
    print(f"parameters: {model.num_params():,}")
    print(f"training: {tok_s:,.0f} tokens/s (median step {step_s * 1000:.1f} ms over {steps} steps, "
          f"{tokens_per_step} tokens per step, threads {torch.get_num_threads()})")
    print(f"FLOPs per token: {fpt / 1e6:.2f} M (6 x parameters + attention)")
    print(f"achieved: {tok_s * fpt / 1e9:.1f} GFLOP/s")
    print("dense matmul 2048^3: " + ", ".join(f"{str(d).removeprefix('torch.')} {f / 1e9:.0f} GFLOP/s"
                                               for d, f in peaks.items()))
    if run_dtype in peaks:
        print(f"MFU against the {str(run_dtype).removeprefix('torch.')} peak: {tok_s * fpt / peaks[run_dtype]:.1%}")


if __name__ == "__main__":
    main()
