"""``defectsynth metrics NAME...``: SAE, EBR, FID, KID, LPIPS, entropy, CIR and texture of dataset folders."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from defectsynth.commands._options import ProgressOpt

EXAMPLES = """
[bold]Examples[/]

  defectsynth metrics sae ebr --synthetic synth/wood   [dim](boxes/ = the conditions, masks/ = generated)[/]

  defectsynth metrics sae ebr --synthetic synth/wood --class-agnostic   [dim](the BASD paper's eqs. 5-6 as written)[/]

  defectsynth metrics fid kid lpips --synthetic synth/wood --real data/wood --split val --json metrics.json

  defectsynth metrics fid --features 64,2048 --real data/wood --synthetic synth/wood --weights-dir weights/

  defectsynth metrics entropy cir --real data/voc --split train --synthetic synth/voc

  defectsynth metrics texture --real data/cf --split train --synthetic synth/cf --hf-cutoff 0.25

[bold]Metrics[/]: sae, ebr (BASD eqs. 5-6; need --synthetic with masks and boxes), fid, kid (InceptionV3 at 64/192/768/2048 features), lpips (need --real and --synthetic), entropy, cir (VOC paper; one dataset or both), texture (no network: Laplacian variance, share of spectral power above --hf-cutoff, R/G/B mean and std, grey-level histogram L1 and Wasserstein distance; whole images and box crops; synthetic / real ratios near 1 = matching texture; need --real and --synthetic of the same image size).

[bold]LPIPS pairs[/] each synthetic image with the --real image of stem source.condition_of\\[stem] from the synthetic dataset.json (written by `sample`), or of the same stem when there is no condition_of; paired images must have the same size.

[bold]--split[/] selects stems of --real (of --synthetic when no --real is given).

[bold]Weights[/]: by default the libraries' caches (downloaded when online); --weights-dir loads only safetensors files (inception_v3_fid, lpips_alex, lpips_vgg, lpips_squeeze .safetensors; see docs/metrics.md).
"""  # noqa: E501


def metrics_command(
    names: Annotated[
        list[str],
        typer.Argument(
            help="Metrics: sae, ebr, fid, kid, lpips, entropy, cir, texture.", metavar="NAME...", show_default=False
        ),
    ],
    synthetic: Annotated[
        Optional[Path], typer.Option("--synthetic", help="Synthetic dataset folder (its boxes/ are the conditions).")
    ] = None,
    real: Annotated[
        Optional[Path], typer.Option("--real", help="Real dataset folder (reference for fid, kid, lpips).")
    ] = None,
    split: Annotated[
        Optional[str],
        typer.Option("--split", help="Use only this split of --real (of --synthetic when --real is not given)."),
    ] = None,
    json_out: Annotated[
        Optional[Path], typer.Option("--json", help="Also write the results as JSON (fractions, not percent).")
    ] = None,
    features: Annotated[
        str, typer.Option("--features", help="InceptionV3 feature sizes for fid/kid.")
    ] = "64,192,768,2048",
    nets: Annotated[str, typer.Option("--nets", help="LPIPS backbones.")] = "alex,vgg,squeeze",
    weights_dir: Annotated[
        Optional[Path], typer.Option("--weights-dir", help="Folder of safetensors weights (no download).")
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Images per network batch.")] = 32,
    hf_cutoff: Annotated[
        float,
        typer.Option(
            "--hf-cutoff",
            help=(
                "texture: radial frequency (cycles/pixel, 0..0.5) above which spectral power counts as high-frequency."
            ),
        ),
    ] = 0.25,
    device: Annotated[
        Optional[str], typer.Option("--device", help="torch device; default cuda when available, else cpu.")
    ] = None,
    progress: ProgressOpt = True,
    class_agnostic: Annotated[
        bool,
        typer.Option(
            "--class-agnostic",
            help=(
                "sae/ebr as the BASD paper's equations: a defect pixel is aligned in any box, a box is empty "
                "without any defect pixel. Default: class-aware (own class's boxes / pixels), stricter."
            ),
        ),
    ] = False,
) -> None:
    from defectsynth.commands._metrics_tables import metrics_tables
    from defectsynth.commands._summary import console
    from defectsynth.data.files import write_json
    from defectsynth.formats.dataset import check_output_file
    from defectsynth.metrics import compute_metrics, is_metrics_json

    if json_out is not None:  # before the (long) computation
        check_output_file(json_out, True, "metrics JSON", is_metrics_json)
    result = compute_metrics(
        names,
        synthetic=synthetic,
        real=real,
        split=split,
        features=features,
        nets=nets,
        weights_dir=weights_dir,
        batch_size=batch_size,
        hf_cutoff=hf_cutoff,
        device=device,
        progress=progress,
        class_agnostic=class_agnostic,
    )
    for table in metrics_tables(result):
        console.print(table)
    if json_out is not None:
        write_json(json_out, result)
        console.print(f"[green]wrote[/] {json_out}")


def register(app: typer.Typer) -> None:
    app.command(
        "metrics",
        help="Measure synthetic data: SAE, EBR, FID, KID, LPIPS, class entropy, CIR and texture statistics.",
        epilog=EXAMPLES,
    )(metrics_command)
