"""Train one model from a config and export its bundle.

    python -m training.train --config training/configs/dehaze_bgrn.yaml           # -> runs/<name>/, models/<name>/
    python -m training.train --config ... --budget-minutes 5 --out /tmp/models    # overrides

Resumes from runs/<name>/ckpt.pt when it exists; stops at the wall-clock budget or max_steps; exports the
EMA weights through the project's export code (ONNX + manifest, parity checked).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from training.config import TrainConfig  # noqa: E402
from training.harness import Trainer  # noqa: E402
from training.tasks import TASKS  # noqa: E402


def main(argv: list[str] | None = None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, required=True)
    ap.add_argument("--runs", type=Path, default=ROOT / "runs", help="checkpoints and logs")
    ap.add_argument("--out", type=Path, default=ROOT / "models", help="bundle destination")
    ap.add_argument("--budget-minutes", type=float, default=None)
    ap.add_argument("--max-steps", type=int, default=None)
    ap.add_argument("--no-export", action="store_true")
    args = ap.parse_args(argv)
    cfg = TrainConfig.load(args.config, budget_minutes=args.budget_minutes, max_steps=args.max_steps)
    if cfg.task not in TASKS:
        raise SystemExit(f"unknown task {cfg.task!r}; known: {sorted(TASKS)}")
    t0 = time.time()
    task = TASKS[cfg.task](cfg)
    trainer = Trainer(cfg, task, args.runs / cfg.name)
    state = trainer.train()
    print(f"trained {cfg.name}: {state.step} steps, {state.elapsed_s / 60:.1f} min of training", flush=True)
    if args.no_export:
        return args.runs / cfg.name
    bundle = trainer.export(args.out)
    print(f"exported {bundle} ({(time.time() - t0) / 60:.1f} min in this invocation)", flush=True)
    return bundle


if __name__ == "__main__":
    main()
