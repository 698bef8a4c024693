"""Metrics of synthetic data: SAE/EBR, FID/KID, LPIPS (BASD paper) and class entropy/CIR (VOC paper)."""

from defectsynth.metrics.compute import METRIC_NAMES, compute_metrics, is_metrics_json
from defectsynth.metrics.distribution import entropy_bits, gini
from defectsynth.metrics.sae_ebr import SaeEbrCounts, sae_ebr_counts

__all__ = [
    "METRIC_NAMES",
    "SaeEbrCounts",
    "compute_metrics",
    "entropy_bits",
    "is_metrics_json",
    "gini",
    "sae_ebr_counts",
]
