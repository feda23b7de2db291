"""The generic training loop: bf16 autocast on CPU, AdamW, EMA weights, checkpoint and resume, a
wall-clock budget, CSV logs. Tasks supply data, losses, validation and export (training/tasks/)."""

from __future__ import annotations

import copy
import csv
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from training.config import TrainConfig


class Task(Protocol):
    """What a task provides to the harness."""

    networks: nn.ModuleDict

    def batch(self, rng: np.random.Generator) -> dict[str, torch.Tensor]: ...

    def losses(self, nets: nn.ModuleDict, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]: ...

    def validate(self, nets: nn.ModuleDict) -> dict[str, float]: ...

    def export(self, nets: nn.ModuleDict, out_dir: Path, info: dict[str, Any]) -> Path: ...


@dataclass
class RunState:
    step: int = 0
    elapsed_s: float = 0.0


class EMA:
    """Exponential moving average of parameters and buffers (the exported weights)."""

    def __init__(self, nets: nn.ModuleDict, decay: float) -> None:
        self.decay = decay
        self.shadow = copy.deepcopy(nets).eval().requires_grad_(False)
        #: optimizer steps each parameter has taken (its own warm-up: phased tasks start networks late)
        self.counts = [0] * len(list(nets.parameters()))

    @torch.no_grad()
    def update(self, nets: nn.ModuleDict, step: int) -> None:
        """Average after an optimizer step. A parameter that has never had a gradient is copied (a network
        whose training starts later must not inherit its initial weights); warm-up counts per parameter:
        early weights are not over-weighted."""
        for i, (s, p) in enumerate(zip(self.shadow.parameters(), nets.parameters())):
            if p.grad is not None:
                self.counts[i] += 1
            n = self.counts[i]
            if n == 0:
                s.copy_(p.detach())
                continue
            d = min(self.decay, n / (9.0 + n))
            s.mul_(d).add_(p.detach(), alpha=1.0 - d)
        for s, b in zip(self.shadow.buffers(), nets.buffers()):
            s.copy_(b)


class _CsvLog:
    """Appends rows to a CSV file (header from the first row written to a new file) and echoes them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fields: list[str] | None = None
        if path.exists():
            with open(path, newline="") as f:
                self.fields = next(csv.reader(f), None)

    def write(self, row: dict[str, Any]) -> None:
        new = self.fields is None
        if new:
            self.fields = list(row)
        elif set(row) - set(self.fields):  # a phased task adds losses later: widen the header, keep the rows
            with open(self.path, newline="") as f:
                old = list(csv.DictReader(f))
            self.fields += [k for k in row if k not in self.fields]
            with open(self.path, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=self.fields)
                w.writeheader()
                w.writerows(old)
        with open(self.path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self.fields, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow(row)
        print(self.path.stem, " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                       for k, v in row.items()), flush=True)


class Trainer:
    """Runs a task under a config in ``run_dir`` (checkpoint ``ckpt.pt``, ``log.csv``, ``config.yaml``)."""

    def __init__(self, cfg: TrainConfig, task: Task, run_dir: Path) -> None:
        self.cfg = cfg
        self.task = task
        self.run_dir = run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(cfg.seed)
        torch.set_num_threads(cfg.threads)
        self.nets = task.networks
        self.ckpt = run_dir / "ckpt.pt"
        self.best = run_dir / "best.pt"
        #: score of the pass in best.pt (read once: a resumed run keeps competing against it)
        self._best_score = (torch.load(self.best, weights_only=False)["score"]
                            if cfg.select_best and self.best.exists() else -math.inf)
        if cfg.select_best and not callable(getattr(task, "selection_score", None)):
            raise ValueError(f"{cfg.name}: select_best is set but task {cfg.task!r} has no selection_score(val); "
                             "remove select_best from the config or give the task a score")
        init = cfg.model.get("init_from")
        if init and not self.ckpt.exists():  # a resumed run has its own weights
            from training.warm_start import warm_start

            for line in warm_start(self.nets, str(init), task.warm_inputs):
                print(f"warm start: {line}", flush=True)
        # model.freeze: networks that keep their (warm-started) weights, e.g. to fit a new HR encoder to a shipped
        # decoder; they still run in the losses, and gradients pass through them to the others
        frozen = list(cfg.model.get("freeze") or [])
        unknown = [n for n in frozen if n not in self.nets]
        if unknown:
            raise ValueError(f"{cfg.name}: model.freeze names {unknown}, which task {cfg.task!r} does not have; "
                             f"its networks are {list(self.nets)}")
        for n in frozen:
            self.nets[n].requires_grad_(False)
        # the order of self.nets.parameters() (shared parameters once), so that older checkpoints resume
        frozen_ids = {id(q) for n in frozen for q in self.nets[n].parameters()}
        trainable = [q for q in self.nets.parameters() if id(q) not in frozen_ids]
        self.opt = torch.optim.AdamW(trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.ema = EMA(self.nets, cfg.ema_decay)
        self.state = RunState()
        self.rng = np.random.default_rng(cfg.seed)
        if self.ckpt.exists():
            self._load()
        cfg.dump(run_dir / "config.yaml")

    # ---- checkpoints ----------------------------------------------------------------------------
    def _save(self) -> None:
        tmp = self.ckpt.with_suffix(".tmp")
        torch.save({"nets": self.nets.state_dict(), "ema": self.ema.shadow.state_dict(), "ema_counts": self.ema.counts,
                    "opt": self.opt.state_dict(), "step": self.state.step, "elapsed_s": self.state.elapsed_s,
                    "rng": self.rng.bit_generator.state, "torch_rng": torch.get_rng_state()}, tmp)
        tmp.replace(self.ckpt)

    def _load(self) -> None:
        ck = torch.load(self.ckpt, weights_only=False)
        self.nets.load_state_dict(ck["nets"])
        self.ema.shadow.load_state_dict(ck["ema"])
        self.ema.counts = list(ck.get("ema_counts", [ck["step"]] * len(self.ema.counts)))
        self.opt.load_state_dict(ck["opt"])
        self.state = RunState(ck["step"], ck["elapsed_s"])
        self.rng.bit_generator.state = ck["rng"]
        torch.set_rng_state(ck["torch_rng"])
        print(f"resumed {self.cfg.name} at step {self.state.step} ({self.state.elapsed_s / 60:.1f} min)", flush=True)

    # ---- loop -----------------------------------------------------------------------------------
    def _lr(self) -> float:
        frac = min(1.0, self.state.elapsed_s / (60.0 * self.cfg.budget_minutes))
        warm = min(1.0, (self.state.step + 1) / 100.0)
        return self.cfg.lr * warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))

    def train(self) -> RunState:
        cfg = self.cfg
        budget_s = 60.0 * cfg.budget_minutes
        logs = _CsvLog(self.run_dir / "log.csv"), _CsvLog(self.run_dir / "val.csv")
        last_ckpt = time.monotonic()
        if cfg.select_best and cfg.model.get("init_from") and self.state.step == 0:
            # a warm start scores its starting weights first: the fine-tuning must beat them to be exported
            self._validate(logs[1])
        while self.state.step < cfg.max_steps and self.state.elapsed_s < budget_s:
            t0 = time.monotonic()
            self.nets.train()
            set_progress = getattr(self.task, "set_progress", None)
            if set_progress is not None:  # phased tasks (coarse-to-fine training)
                set_progress(max(self.state.elapsed_s / budget_s, self.state.step / cfg.max_steps))
            batch = self.task.batch(self.rng)
            for g in self.opt.param_groups:
                g["lr"] = self._lr()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
                losses = self.task.losses(self.nets, batch)
            total = sum(losses.values())
            if not torch.isfinite(total):
                raise FloatingPointError(f"non-finite loss at step {self.state.step}: {losses}")
            self.opt.zero_grad(set_to_none=True)
            total.backward()
            nn.utils.clip_grad_norm_(self.nets.parameters(), 1.0)
            self.opt.step()
            self.ema.update(self.nets, self.state.step)
            self.state.step += 1
            self.state.elapsed_s += time.monotonic() - t0
            head = {"step": self.state.step, "minutes": round(self.state.elapsed_s / 60, 3)}
            if self.state.step % cfg.log_every == 0 or self.state.step == 1:
                logs[0].write({**head, "lr": self._lr(), "loss": float(total.detach()),
                               **{k: float(v.detach()) for k, v in losses.items()}})
            if self.state.step % cfg.val_every == 0:
                self._validate(logs[1])
            if time.monotonic() - last_ckpt > 60.0 * cfg.checkpoint_minutes:
                self._save()
                last_ckpt = time.monotonic()
        self._save()
        return self.state

    def _validate(self, log: _CsvLog) -> None:
        """Score the EMA weights on the validation set (counted in the budget); keep them if best."""
        t1 = time.monotonic()
        val = self.task.validate(self.ema.shadow)
        log.write({"step": self.state.step, "minutes": round(self.state.elapsed_s / 60, 3), **val})
        if self.cfg.select_best:
            self._keep_if_best(val)
        self.state.elapsed_s += time.monotonic() - t1

    def _keep_if_best(self, val: dict[str, float]) -> None:
        """Save the EMA weights to ``best.pt`` when this validation pass scores above every earlier one."""
        score = float(self.task.selection_score(val))
        if score > self._best_score:
            self._best_score = score
            tmp = self.best.with_suffix(".tmp")
            torch.save({"ema": self.ema.shadow.state_dict(), "score": score, "step": self.state.step,
                        "minutes": round(self.state.elapsed_s / 60, 1), "validation": val}, tmp)
            tmp.replace(self.best)
            print(f"best so far: step {self.state.step}, score {score:.3f}", flush=True)

    def export(self, out_dir: Path) -> Path:
        """Export the EMA networks as a bundle (the task writes the manifest): the last ones, or with
        ``select_best`` those of the best-scoring validation pass (its step goes in the bundle's training info)."""
        nets = self.ema.shadow
        info: dict[str, Any] = {"steps": self.state.step, "train_minutes": round(self.state.elapsed_s / 60, 1),
                                "config": self.cfg.name}
        if self.cfg.select_best:
            if not self.best.exists():
                raise FileNotFoundError(f"{self.best}: select_best is set but no validation pass was kept; "
                                        f"train longer than val_every ({self.cfg.val_every}) steps")
            best = torch.load(self.best, weights_only=False)
            nets = copy.deepcopy(self.ema.shadow)
            nets.load_state_dict(best["ema"])
            info.update(selected_step=best["step"], selected_minutes=best["minutes"], selection_score=best["score"])
        info["final_validation"] = self.task.validate(nets)
        bundle = self.task.export(nets, out_dir, info)
        from training.warm_start import save_training_only

        kept = save_training_only(nets, Path(bundle))
        if kept:
            print(f"training-only networks saved with the bundle (for continuations): {', '.join(kept)}", flush=True)
        return bundle
