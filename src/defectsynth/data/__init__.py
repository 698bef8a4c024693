"""The dataset folder: model, reading with validation, atomic writing, splits and importers."""

from defectsynth.data.dataset import Dataset
from defectsynth.data.model import IGNORE_INDEX, Box, ClassInfo, Manifest, Sample
from defectsynth.data.prepare import prepare
from defectsynth.data.writer import DatasetWriter

__all__ = ["Box", "ClassInfo", "Dataset", "DatasetWriter", "IGNORE_INDEX", "Manifest", "Sample", "prepare"]
