"""defectsynth: grow small industrial defect-segmentation datasets with diffusion models."""

from defectsynth.data import Box, ClassInfo, Dataset, DatasetWriter, Manifest, Sample, prepare
from defectsynth.errors import DefectsynthError

__version__ = "0.1.0.dev0"

__all__ = [
    "Box",
    "ClassInfo",
    "Dataset",
    "DatasetWriter",
    "DefectsynthError",
    "DefectsynthPipeline",
    "Manifest",
    "Sample",
    "__version__",
    "balance",
    "demo",
    "evaluate",
    "export",
    "filter_dataset",
    "prepare",
    "push",
    "read_config",
    "sample",
    "train",
]

# Entry points that import torch, diffusers or smp, loaded on first use rather than with the package.
# The command entry points are the stages (defectsynth.stages): the CLI calls the same functions.
_LAZY = {
    "train": "defectsynth.stages.train",
    "sample": "defectsynth.stages.sample",
    "demo": "defectsynth.stages.demo",
    "filter_dataset": "defectsynth.stages.filter",
    "balance": "defectsynth.stages.balance",
    "evaluate": "defectsynth.stages.evaluate",
    "export": "defectsynth.stages.export",
    "read_config": "defectsynth.config_files",
    "push": "defectsynth.stages.push",
    "DefectsynthPipeline": "defectsynth.pipeline",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'defectsynth' has no attribute {name!r}")
