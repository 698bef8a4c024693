"""The dataset folder: model, reading with validation, atomic writing, splits and importers (the
folder's reader, writer and checks live in :mod:`defectsynth.formats.dataset`)."""

from defectsynth.data.model import IGNORE_INDEX, Box, ClassInfo, Manifest, Sample
from defectsynth.data.prepare import prepare
from defectsynth.formats.dataset import Dataset, DatasetWriter

__all__ = ["Box", "ClassInfo", "Dataset", "DatasetWriter", "IGNORE_INDEX", "Manifest", "Sample", "prepare"]
