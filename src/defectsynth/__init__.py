"""defectsynth: grow small industrial defect-segmentation datasets with diffusion models."""

from defectsynth.data import Box, ClassInfo, Dataset, DatasetWriter, Manifest, Sample, prepare
from defectsynth.errors import DefectsynthError

__version__ = "0.1.0.dev0"

__all__ = [
    "Box", "ClassInfo", "Dataset", "DatasetWriter", "DefectsynthError", "DefectsynthPipeline", "Manifest", "Sample", "__version__",
    "balance", "demo", "evaluate", "export", "filter_dataset", "prepare", "push", "read_config", "sample", "train",
]

# Entry points that import torch, diffusers or smp, loaded on first use rather than with the package.
_LAZY = {
    "train": "defectsynth.diffusion.training",
    "sample": "defectsynth.diffusion.sampling",
    "demo": "defectsynth.toy_demo",
    "filter_dataset": "defectsynth.filtering",
    "balance": "defectsynth.balancing",
    "evaluate": "defectsynth.evaluation",
    "export": "defectsynth.data.export",
    "read_config": "defectsynth.config_files",
    "push": "defectsynth.hub_push",
    "DefectsynthPipeline": "defectsynth.pipeline",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'defectsynth' has no attribute {name!r}")
