"""``loss.png``: the training curve of a run folder, drawn from its ``log.jsonl``.

One point per epoch: the mean training loss against the optimisation step (log scale when it
spans a decade or more), the best epoch marked, the learning rate on a second axis when it changes.
Rewritten atomically at the end of an epoch (``train``; at most every
:data:`REDRAW_SECONDS`, and always when training stops), so it shows the whole run, resumed parts
included. Drawn with matplotlib's Agg canvas (no display, no pyplot state).
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

from defectsynth.data.files import atomic_write_bytes

LOSS_PNG = "loss.png"
# Least time between two drawings during training (the last epoch is always drawn).
REDRAW_SECONDS = 10.0


def read_log(log: Path) -> list[dict[str, Any]]:
    """The complete epoch lines of ``log.jsonl`` (a half-written last line is left out)."""
    if not log.is_file():
        return []
    lines = []
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True):
        try:
            entry = json.loads(line) if line.endswith("\n") else None
        except ValueError:
            continue
        if (
            isinstance(entry, dict)
            and isinstance(entry.get("step"), int)
            and isinstance(entry.get("loss"), (int, float))
        ):
            lines.append(entry)
    return lines


def render_loss_curve(entries: list[dict[str, Any]], title: str = "") -> bytes:
    """PNG bytes of the loss curve of ``entries`` (log.jsonl lines: step, epoch, loss, best, lr)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    steps = [e["step"] for e in entries]
    losses = [e["loss"] for e in entries]
    fig = Figure(figsize=(6.4, 3.6), dpi=100)
    fig.subplots_adjust(left=0.12, right=0.88, bottom=0.14, top=0.9)  # tight_layout costs more than the drawing
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot(steps, losses, color="tab:blue", marker="." if len(entries) < 60 else None, label="epoch mean loss")
    best = min(range(len(losses)), key=losses.__getitem__)
    ax.scatter(
        [steps[best]],
        [losses[best]],
        color="tab:red",
        zorder=3,
        label=f"best {losses[best]:.4g} (epoch {entries[best].get('epoch', best + 1)})",
    )
    if min(losses) > 0 and max(losses) / min(losses) >= 10:  # several decades: log scale
        ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.grid(True, alpha=0.3)
    lrs = [e.get("lr") for e in entries]
    if all(isinstance(v, (int, float)) for v in lrs) and len(set(lrs)) > 1:
        twin = ax.twinx()
        twin.plot(steps, lrs, color="tab:gray", linestyle="--", linewidth=1)
        twin.set_ylabel("learning rate", color="tab:gray")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title(title or "training loss", fontsize=10)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def write_loss_curve(run: Path) -> Path | None:
    """Draw ``run/log.jsonl`` into ``run/loss.png`` (atomically); None when nothing is logged yet."""
    run = Path(run)
    entries = read_log(run / "log.jsonl")
    if not entries:
        return None
    atomic_write_bytes(run / LOSS_PNG, render_loss_curve(entries, run.name))
    return run / LOSS_PNG


class LossCurve:
    """``loss.png`` of a training run: redrawn at an epoch's end when :data:`REDRAW_SECONDS` have
    passed since the last drawing (drawing takes ~0.3 s, which runs of many tiny epochs would feel),
    and by :meth:`finish` when training stops, so the last picture shows every logged epoch."""

    def __init__(self, run: Path, every: float | None = None):
        self.run = Path(run)
        self.every = REDRAW_SECONDS if every is None else every
        self.last: float | None = None
        self.pending = False

    def update(self) -> None:
        """An epoch was logged: redraw now if it is time, else at the next chance."""
        self.pending = True
        if self.last is None or time.monotonic() - self.last >= self.every:
            self.finish()

    def finish(self) -> None:
        """Redraw if an epoch was logged since the last drawing."""
        if self.pending:
            write_loss_curve(self.run)
            self.last, self.pending = time.monotonic(), False
