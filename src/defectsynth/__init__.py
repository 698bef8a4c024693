"""defectsynth: grow small industrial defect-segmentation datasets with diffusion models."""

from defectsynth.data import Box, ClassInfo, Dataset, DatasetWriter, Manifest, Sample, prepare
from defectsynth.errors import DefectsynthError

__version__ = "0.1.0.dev0"

__all__ = ["Box", "ClassInfo", "Dataset", "DatasetWriter", "DefectsynthError", "Manifest", "Sample", "__version__", "evaluate", "prepare"]


def __getattr__(name: str):
    # `defectsynth.evaluate` imports torch and smp: load it on first use, not with the package
    if name == "evaluate":
        from defectsynth.evaluation import evaluate

        return evaluate
    raise AttributeError(f"module 'defectsynth' has no attribute {name!r}")
