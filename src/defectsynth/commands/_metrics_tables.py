"""Rich tables for ``defectsynth metrics``: one per metric, per class and overall."""

from __future__ import annotations

from typing import Any

from rich.table import Table

# Metrics the papers report in percent (BASD Tables 2 and 3).
PERCENT = ("sae", "ebr")


def _table(title: str) -> Table:
    return Table(title=title, title_justify="left", min_width=len(title) + 2)


def _fmt(value: float | None, percent: bool = False, digits: int = 4) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.2f}%" if percent else f"{value:.{digits}g}"


def _per_class_table(
    name: str, block: dict[str, Any], title: str, value_header: str, count_keys: tuple[str, str]
) -> Table:
    table = _table(title)
    table.add_column("class")
    table.add_column(value_header, justify="right")
    table.add_column(f"{count_keys[0]} / {count_keys[1]}", justify="right")
    counts = block.get("counts", {})
    for cls, value in block["per_class"].items():
        c = counts.get(cls, {})
        table.add_row(cls, _fmt(value, name in PERCENT), f"{c.get(count_keys[0], 0):,} / {c.get(count_keys[1], 0):,}")
    table.add_row("[bold]all[/]", f"[bold]{_fmt(block['all'], name in PERCENT)}[/]", "")
    return table


def _distribution_table(name: str, block: dict[str, dict]) -> Table:
    roles = list(block)
    is_entropy = name == "entropy"
    table = _table("Entropy (bits; share of images)" if is_entropy else "CIR (Gini; images per class)")
    table.add_column("class")
    for role in roles:
        table.add_column(role, justify="right")
    for cls in block[roles[0]]["per_class"]:
        cells = [block[r]["per_class"][cls] for r in roles]
        table.add_row(cls, *[(_fmt(v, percent=True) if is_entropy else str(v)) for v in cells])
    table.add_row("[bold]all[/]", *[f"[bold]{_fmt(block[r]['all'])}[/]" for r in roles])
    return table


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _texture_table(block: dict[str, Any]) -> Table:
    table = _table(f"Texture (synthetic / real; high frequency = above {block['hf_cutoff']:g} cycles/pixel)")
    for header in ("region", "statistic", "real", "synthetic", "ratio / distance"):
        table.add_column(header, justify="left" if header in ("region", "statistic") else "right")
    for region in ("image", "boxes"):
        r = block[region]
        real, syn, ratio = r["real"], r["synthetic"], r["ratio"]
        label = f"{region} ({real['images']} / {syn['images']}" + (
            f"; {real['skipped']} / {syn['skipped']} under 4 px skipped)" if region == "boxes" else ")"
        )
        table.add_row(
            label,
            "Laplacian variance",
            _fmt(real["laplacian_var"]),
            _fmt(syn["laplacian_var"]),
            _ratio(ratio["laplacian_var"]),
        )
        table.add_row(
            "", "high-frequency share", _fmt(real["hf_share"]), _fmt(syn["hf_share"]), _ratio(ratio["hf_share"])
        )
        for key in ("mean", "std"):
            for c in ("R", "G", "B"):
                cells = [None if v is None else v[c] for v in (real[key], syn[key], ratio[key])]
                table.add_row("", f"{key} {c}", _fmt(cells[0]), _fmt(cells[1]), _ratio(cells[2]))
        table.add_row("", "grey histogram L1", "", "", _ratio(r["distance"]["hist_l1"]))
        table.add_row("", "grey Wasserstein (levels)", "", "", _ratio(r["distance"]["wasserstein"]))
    return table


def metrics_tables(result: dict[str, Any]) -> list[Table]:
    """One table per metric in ``result`` (as :func:`defectsynth.metrics.compute_metrics` returns it)."""
    tables = []
    for name, block in result.items():
        if name == "sae":
            title = (
                "SAE, class-agnostic (pixels outside every box; eq. 5)"
                if block.get("class_agnostic")
                else "SAE (pixels outside their class's boxes)"
            )
            tables.append(_per_class_table(name, block, title, "SAE", ("misaligned", "generated")))
        elif name == "ebr":
            title = (
                "EBR, class-agnostic (boxes without any defect pixel; eq. 6)"
                if block.get("class_agnostic")
                else "EBR (boxes without their class)"
            )
            tables.append(_per_class_table(name, block, title, "EBR", ("empty", "boxes")))
        elif name == "fid":
            table = _table("FID")
            table.add_column("features", justify="right")
            table.add_column("FID", justify="right")
            for size, value in block.items():
                table.add_row(size, _fmt(value, digits=6))
            tables.append(table)
        elif name == "kid":
            table = _table("KID")
            for header in ("features", "KID mean", "KID std", "subsets x size"):
                table.add_column(header, justify="right")
            for size, v in block.items():
                table.add_row(
                    size, _fmt(v["mean"], digits=6), _fmt(v["std"], digits=4), f"{v['subsets']} x {v['subset_size']}"
                )
            tables.append(table)
        elif name == "lpips":
            table = _table("LPIPS (synthetic vs its condition's real image)")
            for header in ("backbone", "mean", "std", "pairs"):
                table.add_column(header, justify="right")
            for net, v in block.items():
                table.add_row(net, _fmt(v["mean"]), _fmt(v["std"]), str(v["pairs"]))
            tables.append(table)
        elif name in ("entropy", "cir"):
            tables.append(_distribution_table(name, block))
        elif name == "texture":
            tables.append(_texture_table(block))
    return tables
