"""defectsynth: grow small industrial defect-segmentation datasets with diffusion models."""

from defectsynth.data import Box, ClassInfo, Dataset, DatasetWriter, Manifest, Sample, prepare
from defectsynth.errors import DefectsynthError

__version__ = "0.1.0.dev0"

__all__ = ["Box", "ClassInfo", "Dataset", "DatasetWriter", "DefectsynthError", "Manifest", "Sample", "__version__", "demo", "prepare", "sample", "train"]


def __getattr__(name: str):  # lazy: `import defectsynth` does not import torch
    if name == "train":
        from defectsynth.diffusion.training import train

        return train
    if name == "sample":
        from defectsynth.diffusion.sampling import sample

        return sample
    if name == "demo":
        from defectsynth.toy_demo import demo

        return demo
    raise AttributeError(f"module 'defectsynth' has no attribute {name!r}")
