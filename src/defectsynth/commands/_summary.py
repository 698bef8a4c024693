"""Rich tables printed at the end of commands."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from defectsynth.data.model import Manifest

console = Console()


def dataset_table(manifest: Manifest, title: str) -> Table:
    """Images, boxes and pixels per class from ``manifest.stats``."""
    stats = manifest.stats
    table = Table(title=title, title_justify="left")
    table.add_column("id", justify="right")
    table.add_column("class")
    table.add_column("images", justify="right")
    table.add_column("boxes", justify="right")
    table.add_column("pixels", justify="right")
    total_pixels = sum(stats.get("pixels_per_class", {}).values()) or 1
    for cls in manifest.classes:
        pixels = stats.get("pixels_per_class", {}).get(cls.name, 0)
        images = stats.get("images_per_class", {}).get(cls.name, 0) if cls.id else "-"
        boxes = stats.get("boxes_per_class", {}).get(cls.name, 0) if cls.id else "-"
        table.add_row(
            str(cls.id), cls.name, str(images), str(boxes), f"{pixels:,} ({100 * pixels / total_pixels:.2f}%)"
        )
    return table


def print_dataset_summary(manifest: Manifest, out: Path) -> None:
    stats = manifest.stats
    console.print(dataset_table(manifest, f"{manifest.name}: {stats.get('images', 0)} images"))
    console.print(f"defect-free images: {stats.get('defect_free_images', 0)}")
    console.print(f"[green]wrote[/] {out}")
