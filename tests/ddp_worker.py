"""Train as train.py does, under torchrun, then save this rank's weights: the test's only view of
a rank other than 0, since train.py writes rank 0's alone.

    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/ddp_worker.py WEIGHTS_DIR TRAIN_ARGS...
"""

from __future__ import annotations

import sys
from pathlib import Path

from safetensors.torch import save_file

import train
from lyricgpt.runtime import setup_runtime
from lyricgpt.training import Trainer


def main() -> None:
    weights_dir, argv = Path(sys.argv[1]), sys.argv[2:]
    cfg = train.build_config(train.parse_args(argv))
    rt = setup_runtime(cfg)
    trainer = Trainer(cfg, rt)
    trainer.run()
    # Cloned, as safetensors refuses the tied embedding and output weights, which share memory.
    weights = {name: t.detach().clone() for name, t in trainer.model.state_dict().items()}
    save_file(weights, str(weights_dir / f"rank{rt.rank}.safetensors"))
    train.shutdown_distributed()


if __name__ == "__main__":
    main()
