#!/usr/bin/env bash
# The CUDA paths, on a machine with one GPU (CI has none): a compiled bf16 run, scoring, a stopped
# and resumed run against an uninterrupted one, and the KV-cached sampler against a full recompute.
#
#     bash benchmarks/cuda_check.sh        # about a minute; work files in a temporary folder
#     bash benchmarks/cuda_check.sh cpu    # the same steps on the CPU, to check the script itself
set -euo pipefail
cd "$(dirname "$0")/.."
device=${1:-cuda}
work=$(mktemp -d)
tiny=(--preset tiny --data assets/lyrics.txt --device "$device")

python train.py "${tiny[@]}" --out "$work/compiled" --max-steps 300 --compile auto --sample-chars 100  # compiled on CUDA
python -m lyricgpt.evaluate "$work/compiled/model" assets/lyrics.txt --val-split

# Exactness needs the same kernels in both runs, so no compilation here.
exact=("${tiny[@]}" --compile off --max-steps 200 --eval-interval 50 --dropout 0.1)
python train.py "${exact[@]}" --out "$work/straight"
python train.py "${exact[@]}" --out "$work/resumed" --stop-at-step 100
python train.py --out "$work/resumed" --resume

python - "$work" "$device" <<'PY'
import json
import sys

import torch

from lyricgpt.lm import load_model

work, device = sys.argv[1:]
def evaluations(run):
    return [(m["step"], m["val_loss"], m["tokens_seen"]) for m in map(json.loads, open(f"{work}/{run}/metrics.jsonl"))]
assert evaluations("straight") == evaluations("resumed"), (evaluations("straight"), evaluations("resumed"))
print("resumed run: same validation loss at every evaluation as the uninterrupted run")

lm = load_model("assets/model", device=device)
print("sample:", repr("".join(lm.stream("The river", 200, temperature=0.8, seed=1))))
model = lm.model.eval()
ids = torch.randint(0, lm.tokenizer.vocab_size, (1, model.config.context_length), device=device)
with torch.no_grad():
    full, _ = model(ids)
    cache = model.new_cache()
    cached = torch.cat([model(ids[:, i:i + 1], cache=cache)[0] for i in range(ids.size(1))], dim=1)
diff = (cached - full).abs().max().item()
print(f"KV-cached logits against a full recompute: largest difference {diff:.2g}")
assert diff < 1e-4
PY
rm -rf "$work"
echo "check passed on $device"
