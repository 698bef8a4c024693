"""Downstream benchmark on toy data from Python: the same pipeline as examples/cli/evaluate.sh.

A second toy dataset stands in for the output of `defectsynth sample`; pass your sampled dataset
folder as `synthetic` instead.
"""

from pathlib import Path

import defectsynth

work = Path("work/evaluate-example")
defectsynth.prepare("toy", work / "real", num=120, size="64", seed=0, overwrite=True)
defectsynth.prepare("toy", work / "synthetic", num=120, size="64", seed=1, overwrite=True)

report = defectsynth.evaluate(
    real=work / "real",
    synthetic=[work / "synthetic"],
    out=work / "report",
    models=["unet", "fpn"],
    encoder="resnet18",
    repeats=2,
    mix=["R=all,S=0", "R=all,S=R", "R=0,S=R"],
    # small and CPU-friendly; leave these out for the thesis' protocol
    encoder_weights=None,
    epochs=6,
    size="64",
    lr=1e-3,
)

for row in report["rows"]:
    diff = "" if row["diff_pct"] is None else f" ({row['diff_pct']:+.1f}% vs baseline)"
    print(
        f"{row['model']:>6} {row['mix']:<12} #R={row['n_real']:<4} #S={row['n_synthetic']:<4} "
        f"mIoU {row['miou_mean']:.3f} ± {row['miou_std']:.3f}{diff}"
    )
print("chart:", work / "report" / "chart_unet.png")
