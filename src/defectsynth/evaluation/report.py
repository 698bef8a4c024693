"""Turning finished cells into the report: scores, means over repeats, json, csv, md and charts.

Report folder layout::

    <out>/
      config.json            the options of the evaluation (checked when resuming)
      cells/<key>.json       one finished cell: its spec, #R/#S, steps and epochs trained, best epoch, test
                             confusion counts
      report.json            config, class names, one row per (model, synthetic source, mix), every cell
      report.csv             the rows as a table (with the budget, mean steps and epochs, under-trained networks)
      cells.csv              one line per trained network: steps, epochs, where the best weights came from, mIoU
      report.md              one table per model, as the thesis' Table 7.3, and the training of every network
      chart_<model>.png      mIoU per mix, baseline dashed, percentages on the bars (thesis Fig. 7.8)

Every number comes from the stored confusion counts through
:func:`defectsynth.metrics.segmentation.reduce_stats`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from defectsynth.data.files import atomic_write_bytes, write_json
from defectsynth.evaluation.training import UNDER_TRAINED_SHARE
from defectsynth.metrics.segmentation import reduce_stats

MAIN_METRICS = ("miou", "miou_micro", "f1_pooled")
# How each network trained (evaluation.training.train_model); a scored per-class-binary group holds lists.
TRAINING_FIELDS = ("steps", "epochs", "best_epoch", "best_step", "best_val_miou", "under_trained")
UNDER_TRAINED_PCT = round(100 * UNDER_TRAINED_SHARE)


def networks(cell: dict[str, Any]) -> list[dict[str, Any]]:
    """The trained networks of a scored cell, one dict of ``binary_class`` and :data:`TRAINING_FIELDS` each
    (a per-class-binary group has one network per class)."""
    fields = ("binary_class", *TRAINING_FIELDS)
    if isinstance(cell["steps"], list):
        return [dict(zip(fields, values)) for values in zip(*(cell[f] for f in fields))]
    return [{f: cell[f] for f in fields}]


def epochs_at_best(network: dict[str, Any]) -> float:
    """Passes over the network's training pairs when its selected weights were taken."""
    return network["epochs"] * network["best_step"] / network["steps"]


def budget_text(protocol: dict[str, Any]) -> str:
    """One line saying how long every network trained, e.g.
    ``budget steps: 120 optimiser steps per network, validated 15 times``."""
    budget, epochs = protocol["budget"], protocol["epochs"]
    if budget == "steps":
        return (
            f"budget steps: {protocol['steps']} optimiser steps per network whatever its mix, validated "
            f"{min(epochs, protocol['steps'])} times"
        )
    if budget == "converge":
        return (
            f"budget converge: each network until {protocol['patience']} epochs without a better validation "
            f"mIoU, at most {epochs} epochs"
        )
    return f"budget epochs: {epochs} epochs per network (a larger mix gets more optimiser steps)"


def cell_stats(results: Sequence[dict[str, Any]], num_classes: int) -> tuple[torch.Tensor, ...]:
    """(N, C) test counts of one network, or of a per-class-binary group (one result per class).

    For a binary group, column c holds the counts of class c from the network trained for c
    (its positive class); the background column stays zero and is not averaged.
    """
    if len(results) == 1 and results[0].get("binary_class") is None:
        return tuple(torch.tensor(results[0]["test_stats"][k]) for k in ("tp", "fp", "fn", "tn"))
    n = len(results[0]["test_stats"]["tp"])
    stats = [torch.zeros(n, num_classes, dtype=torch.long) for _ in range(4)]
    for result in results:
        c = result["binary_class"]
        for i, k in enumerate(("tp", "fp", "fn", "tn")):
            stats[i][:, c] = torch.tensor(result["test_stats"][k])[:, 1]
    return tuple(stats)


def score(stats: Sequence[torch.Tensor], binary: bool) -> dict[str, Any]:
    """The reported numbers of one cell (or binary group) from its test counts.

    miou: IoU macro-imagewise (the thesis' main number) over all classes, background included
    (over the defect classes in per-class-binary mode); miou_micro: IoU micro over the same
    classes; f1_pooled: F1 of each defect class from counts pooled over the test images, averaged
    over the defect classes (the BASD paper's Table 4 "Avg"); per-class IoU is image-wise (the
    thesis' multi-class numbers), per-class F1 pooled (the BASD paper's).
    """
    num_classes = stats[0].shape[1]
    defects = list(range(1, num_classes))
    over = reduce_stats(*stats, classes=defects if binary else None)
    on_defects = reduce_stats(*stats, classes=defects)
    iou_pc, f1_pc = over["iou"]["per_class_imagewise"], over["f1"]["per_class"]
    if binary:
        iou_pc, f1_pc = [None, *iou_pc[1:]], [None, *f1_pc[1:]]
    return {
        "miou": over["iou"]["macro_imagewise"],
        "miou_micro": over["iou"]["micro"],
        "f1_pooled": on_defects["f1"]["macro"],
        "iou_per_class": iou_pc,
        "f1_per_class": f1_pc,
    }


def mean_std(values: Sequence[float | None]) -> tuple[float | None, float | None]:
    kept = [v for v in values if v is not None]
    if not kept:
        return None, None
    return float(np.mean(kept)), float(np.std(kept))


def summarise(cells: Sequence[dict[str, Any]], class_names: Sequence[str]) -> list[dict[str, Any]]:
    """One row per (model, synthetic source, mix): mean and std over repeats, % difference to the baseline.

    ``cells``: scored cell records (``model``, ``mix``, ``synthetic``, ``n_real``, ``n_synthetic``,
    ``scores`` and :data:`TRAINING_FIELDS`), in grid order. ``steps_mean`` / ``epochs_mean``: over the
    networks of the row; ``under_trained``: how many of them are.
    """
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for cell in cells:
        groups.setdefault((cell["model"], cell["synthetic"], cell["mix"]), []).append(cell)
    rows = []
    for (model, synthetic, mix), members in groups.items():
        row: dict[str, Any] = {
            "model": model,
            "synthetic": synthetic,
            "mix": mix,
            "n_real": members[0]["n_real"],
            "n_synthetic": members[0]["n_synthetic"],
            "repeats": len(members),
        }
        for metric in MAIN_METRICS:
            row[f"{metric}_mean"], row[f"{metric}_std"] = mean_std([m["scores"][metric] for m in members])
        for metric in ("iou_per_class", "f1_per_class"):
            row[metric] = {
                name: mean_std([m["scores"][metric][c] for m in members])[0] for c, name in enumerate(class_names)
            }
        nets = [n for m in members for n in networks(m)]
        row["steps_mean"], row["epochs_mean"] = (float(np.mean([n[k] for n in nets])) for k in ("steps", "epochs"))
        row["under_trained"] = sum(bool(n["under_trained"]) for n in nets)
        rows.append(row)
    baselines = {r["model"]: r["miou_mean"] for r in rows if r["synthetic"] is None}
    for row in rows:
        base = baselines.get(row["model"])
        row["diff_pct"] = None if not base or row["miou_mean"] is None else 100.0 * (row["miou_mean"] - base) / base
    return rows


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1f}"


def _write_csv(path: Path, header: Sequence[str], lines: Sequence[Sequence[Any]]) -> None:
    """A csv file of ``header`` and ``lines``; floats with 6 significant digits, None empty."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for line in lines:
        writer.writerow(["" if v is None else f"{v:.6g}" if isinstance(v, float) else v for v in line])
    atomic_write_bytes(path, buffer.getvalue().encode("utf-8"))


def write_csv(path: Path, rows: Sequence[dict[str, Any]], class_names: Sequence[str], budget: str) -> None:
    """report.csv: one line per row of :func:`summarise`, the budget in every line."""
    head = ["model", "synthetic", "mix", "n_real", "n_synthetic", "repeats"]
    metrics = [f"{m}_{s}" for m in MAIN_METRICS for s in ("mean", "std")]
    training = ["steps_mean", "epochs_mean", "under_trained"]
    header = [
        *head,
        "budget",
        *training,
        *metrics,
        "diff_pct",
        *(f"iou_{n}" for n in class_names),
        *(f"f1_{n}" for n in class_names),
    ]
    lines = [
        [
            *(row[k] for k in head),
            budget,
            *(row[k] for k in training),
            *(_float(row[k]) for k in [*metrics, "diff_pct"]),
            *(_float(row["iou_per_class"][n]) for n in class_names),
            *(_float(row["f1_per_class"][n]) for n in class_names),
        ]
        for row in rows
    ]
    _write_csv(path, header, lines)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def write_cells_csv(path: Path, cells: Sequence[dict[str, Any]], budget: str) -> None:
    """cells.csv: one line per trained network (per class in per-class-binary mode)."""
    head = ["model", "synthetic", "mix", "repeat"]
    header = [
        *head,
        "binary_class",
        "n_real",
        "n_synthetic",
        "budget",
        "steps",
        "epochs",
        "best_step",
        "epochs_at_best",
        "best_val_miou",
        "under_trained",
        "miou",
    ]
    lines = [
        [
            *(cell[k] for k in head),
            net["binary_class"],
            cell["n_real"],
            cell["n_synthetic"],
            budget,
            net["steps"],
            float(net["epochs"]),
            net["best_step"],
            epochs_at_best(net),
            float(net["best_val_miou"]),
            int(bool(net["under_trained"])),
            _float(cell["scores"]["miou"]),
        ]
        for cell in cells
        for net in networks(cell)
    ]
    _write_csv(path, header, lines)


def markdown(
    rows: Sequence[dict[str, Any]],
    class_names: Sequence[str],
    title: str,
    budget: str = "",
    cells: Sequence[dict[str, Any]] = (),
) -> str:
    """One table per model: mix, #R, #S, source, mIoU ± std, Diff.[%], micro mIoU, pooled F1, per-class IoU;
    then ``budget`` (:func:`budget_text`) and the training of every network of ``cells``."""
    lines = [f"# {title}", "", *([budget, ""] if budget else [])]
    for model in dict.fromkeys(r["model"] for r in rows):
        lines += [f"## {model}", ""]
        names = list(class_names)
        lines.append(
            "| mix | #R | #S | synthetic | mIoU | ± | Diff.[%] | mIoU micro | F1 pooled | "
            + " | ".join(f"IoU {n}" for n in names)
            + " |"
        )
        lines.append("|" + "---|" * (9 + len(names)))
        for r in (r for r in rows if r["model"] == model):
            per_class = " | ".join(_fmt(r["iou_per_class"][n]) for n in names)
            lines.append(
                f"| {r['mix']} | {r['n_real']} | {r['n_synthetic']} | {r['synthetic'] or '-'} | "
                f"{_fmt(r['miou_mean'])} | {_fmt(r['miou_std'])} | {_pct(r['diff_pct'])} | "
                f"{_fmt(r['miou_micro_mean'])} | {_fmt(r['f1_pooled_mean'])} | {per_class} |"
            )
        lines.append("")
    lines.append(
        "mIoU: IoU macro-imagewise (mean over repeats, ± its standard deviation); Diff.: relative to the "
        "baseline R=all,S=0."
    )
    if cells:
        lines += [
            "",
            "## training",
            "",
            "| model | mix | synthetic | repeat | class | steps | epochs | best at epoch | under-trained |",
            "|" + "---|" * 9,
        ]
        for cell in cells:
            for net in networks(cell):
                lines.append(
                    f"| {cell['model']} | {cell['mix']} | {cell['synthetic'] or '-'} | {cell['repeat']} | "
                    f"{class_label(net)} | {net['steps']} | "
                    f"{net['epochs']:.2f} | {epochs_at_best(net):.2f} | {'yes' if net['under_trained'] else ''} |"
                )
        lines += [
            "",
            f"Under-trained: the selected weights come from the last {UNDER_TRAINED_PCT}% of the steps; more "
            "training would likely change the result.",
        ]
    return "\n".join(lines) + "\n"


def class_label(network: dict[str, Any]) -> str:
    return "-" if network["binary_class"] is None else str(network["binary_class"])


def draw_chart(path: Path, rows: Sequence[dict[str, Any]], model: str) -> None:
    """Bar chart of mIoU per mix for ``model``: baseline as a black dashed line, % change on each bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mine = [r for r in rows if r["model"] == model and r["miou_mean"] is not None]
    sources = list(dict.fromkeys(r["synthetic"] for r in mine if r["synthetic"] is not None))
    colors = plt.get_cmap("tab10")
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(mine) + 2), 4.2), dpi=120)
    base = next((r for r in mine if r["synthetic"] is None), None)
    for x, r in enumerate(mine):
        color = "0.6" if r["synthetic"] is None else colors(sources.index(r["synthetic"]) % 10)
        ax.bar(x, r["miou_mean"], yerr=r["miou_std"] if r["repeats"] > 1 else None, color=color, capsize=3, width=0.7)
        if r["diff_pct"] is not None and r["synthetic"] is not None:
            top = r["miou_mean"] + (r["miou_std"] if r["repeats"] > 1 else 0.0)
            ax.annotate(
                f"{r['diff_pct']:+.1f}%",
                (x, top),
                xytext=(0, 3),
                textcoords="offset points",
                ha="center",
                fontsize=8,
                bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.8},
            )
    if base is not None:
        ax.axhline(
            base["miou_mean"], color="black", linestyle="--", linewidth=1.2, label=f"baseline ({base['miou_mean']:.3f})"
        )
    for i, s in enumerate(sources):
        ax.bar([], [], color=colors(i % 10), label=s)
    ax.set_xticks(range(len(mine)), [f"#R={r['n_real']}\n#S={r['n_synthetic']}" for r in mine], fontsize=8)
    top = max(r["miou_mean"] + (r["miou_std"] or 0) for r in mine) if mine else 1.0
    ax.set_ylim(0, min(1.0, top * 1.2) if top > 0 else 1.0)
    ax.set_ylabel("mIoU (macro-imagewise)")
    ax.set_title(f"{model}: mean over {max((r['repeats'] for r in mine), default=0)} repeat(s)")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=min(4, 1 + len(sources)), frameon=False)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def write_report(
    out: Path, config: dict[str, Any], cells: Sequence[dict[str, Any]], class_names: Sequence[str]
) -> dict[str, Any]:
    """Write report.json, report.csv, cells.csv, report.md and chart_<model>.png; returns the report dict
    (``config``, ``budget``: :func:`budget_text`, ``classes``, ``rows``: :func:`summarise`, ``cells``)."""
    rows = summarise(cells, class_names)
    budget = config["protocol"]["budget"]
    report = {
        "config": config,
        "budget": budget_text(config["protocol"]),
        "classes": list(class_names),
        "rows": rows,
        "cells": list(cells),
    }
    write_json(out / "report.json", report)
    write_csv(out / "report.csv", rows, class_names, budget)
    write_cells_csv(out / "cells.csv", cells, budget)
    text = markdown(rows, class_names, f"defectsynth evaluate: {config['real']}", report["budget"], cells)
    atomic_write_bytes(out / "report.md", text.encode("utf-8"))
    for model in dict.fromkeys(r["model"] for r in rows):
        draw_chart(out / f"chart_{model}.png", rows, model)
    return report
