"""Training progress for people: a live step line on a terminal, plain epoch lines otherwise."""
from __future__ import annotations

import sys
import time
from typing import Any, TextIO

HEADLINE = ("val_acc", "val_auc", "val_rmse", "val_loss")
TIMING = ("samples_per_s", "epoch_time_s", "lr")


def fmt_duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def fmt_rate(value: float) -> str:
    return f"{value / 1000:.1f}k" if value >= 1000 else f"{value:.0f}"


class EpochProgress:
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

    def line(self, text: str) -> None:
        if self.enabled:
            self._print(text)

    def step(self, epoch: int, epochs: int, step: int, steps: int, loss: float, samples_per_s: float, epoch_elapsed: float) -> None:
        now = time.time()
        if not self.live or now - self.last_draw < 0.2:
            return
        self.last_draw = now
        eta = epoch_elapsed / max(step, 1) * (steps - step)
        self.stream.write(f"\r\033[Kepoch {epoch}/{epochs} step {step}/{steps} loss {loss:.4f} {fmt_rate(samples_per_s)} samples/s ETA {fmt_duration(eta)}")
        self.stream.flush()

    def epoch(self, metrics: dict[str, Any], epochs: int) -> None:
        if not self.enabled:
            return
        shown = {k: v for k, v in metrics.items() if k not in TIMING and k != "epoch"}
        parts = [f"epoch {int(metrics['epoch'])}/{epochs}"]
        parts += [f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in sorted(shown.items(), key=lambda kv: (kv[0] != "train_loss", kv[0]))]
        if "samples_per_s" in metrics:
            parts.append(f"{fmt_rate(metrics['samples_per_s'])} samples/s")
        if "epoch_time_s" in metrics:
            parts.append(f"{metrics['epoch_time_s']:.1f}s")
        self._print("  ".join(parts))

    def done(self, summary: dict[str, Any], outputs: list[str]) -> None:
        if not self.enabled:
            return
        final = summary.get("final_metrics", {})
        head = next((f"{k} {final[k]:.4f}" for k in HEADLINE if isinstance(final.get(k), (int, float))), "")
        self._print(f"finished in {fmt_duration(summary['wall_time_s'])}{': ' + head if head else ''}")
        self._print(f"outputs: {summary['experiment_dir']} ({', '.join(outputs)})")
