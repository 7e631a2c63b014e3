"""Training progress for people: a live step line on a terminal, plain epoch lines otherwise."""
from __future__ import annotations

import sys
import time
from typing import Any, TextIO

HEADLINE = ("val_acc", "val_auc", "val_rmse", "val_loss")


def fmt_duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def fmt_rate(value: float) -> str:
    return f"{value / 1000:.1f}k" if value >= 1000 else f"{value:.0f}"


class Progress:
    def __init__(self, enabled: bool = True, stream: TextIO | None = None) -> None:
        self.enabled = enabled
        self.stream = stream or sys.stdout
        self.live = enabled and self.stream.isatty()
        self.started = time.time()
        self.last_draw = 0.0

    def _print(self, text: str) -> None:
        if self.live:
            self.stream.write("\r\033[K")
        self.stream.write(text + "\n")
        self.stream.flush()

    def start(self, plan: dict[str, Any]) -> None:
        if not self.enabled:
            return
        resumed = f", resuming after epoch {plan['start_epoch']}" if plan.get("start_epoch") else ""
        self._print(
            f"training {plan['model']} ({plan['parameters']:,} parameters) on {plan['dataset']} "
            f"[{plan['train_samples']:,} train / {plan['val_samples']:,} val samples], "
            f"{plan['world_size']} process(es) on {plan['device']}, precision {plan['precision']}{resumed}"
        )

    def step(self, epoch: int, epochs: int, step: int, steps: int, loss: float, samples_per_s: float, epoch_elapsed: float) -> None:
        now = time.time()
        if not self.live or now - self.last_draw < 0.2:
            return
        self.last_draw = now
        eta = epoch_elapsed / max(step, 1) * (steps - step)
        self.stream.write(f"\r\033[Kepoch {epoch}/{epochs} step {step}/{steps} loss {loss:.4f} {fmt_rate(samples_per_s)} samples/s ETA {fmt_duration(eta)}")
        self.stream.flush()

    def epoch(self, metrics: dict[str, float], epochs: int) -> None:
        if not self.enabled:
            return
        parts = [f"epoch {int(metrics['epoch'])}/{epochs}", f"train_loss {metrics['train_loss']:.4f}"]
        parts += [f"{k} {metrics[k]:.4f}" for k in sorted(metrics) if k.startswith("val_")]
        parts += [f"{fmt_rate(metrics['samples_per_s'])} samples/s", f"{metrics['epoch_time_s']:.1f}s"]
        self._print("  ".join(parts))

    def done(self, summary: dict[str, Any]) -> None:
        if not self.enabled:
            return
        final = summary.get("final_metrics", {})
        head = next((f"{k} {final[k]:.4f}" for k in HEADLINE if final.get(k) is not None), "")
        self._print(f"finished in {fmt_duration(summary['wall_time_s'])}: {head}")
        self._print(f"outputs: {summary['experiment_dir']} (metrics.jsonl, tensorboard/, checkpoints/, model/, summary.json)")
