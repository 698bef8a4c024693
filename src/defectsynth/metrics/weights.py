"""Pretrained networks for FID/KID (the FID InceptionV3) and LPIPS (AlexNet, VGG-16, SqueezeNet + linear heads).

Two ways to get the weights:

- ``weights_dir=None`` (default): the libraries load their own published files from their usual
  caches and download them when a network exists — torch-fidelity's FID Inception
  (``<torch hub>/checkpoints/weights-inception-2015-12-05-6726825d.pth``), torchvision's ImageNet
  backbones (``alexnet-owt-7be5be79.pth``, ``vgg16-397923af.pth``, ``squeezenet1_1-b8a52dc0.pth``,
  hash-checked) and the LPIPS linear heads shipped inside torchmetrics. That loading is theirs.
- ``weights_dir=DIR``: defectsynth loads only safetensors files from DIR (names in
  :data:`WEIGHT_FILES`), one full state dict per network, into the same library architectures.
  :func:`export_weights` writes that folder once on a machine where the libraries can load their
  weights; copy it to offline machines.

Missing weights are one :class:`~defectsynth.errors.MissingDependencyError` line naming the file
and where to put it (exit code 2).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from unittest import mock

import torch
from torch import nn

from defectsynth.errors import MissingDependencyError

logger = logging.getLogger(__name__)

INCEPTION = "inception"
LPIPS_NETS = ("alex", "vgg", "squeeze")
WEIGHT_FILES = {
    INCEPTION: "inception_v3_fid.safetensors",
    "alex": "lpips_alex.safetensors",
    "vgg": "lpips_vgg.safetensors",
    "squeeze": "lpips_squeeze.safetensors",
}
# torchvision backbone behind each LPIPS net (its weights enum names the cached file).
_TV_WEIGHTS = {"alex": "AlexNet_Weights", "vgg": "VGG16_Weights", "squeeze": "SqueezeNet1_1_Weights"}


def _hub_file(url: str) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]


def _missing(what: str, cache_file: Path, weights_dir_file: str, err: Exception) -> MissingDependencyError:
    return MissingDependencyError(
        f"{what} weights not found and not downloadable ({type(err).__name__}): put {cache_file.name} in "
        f"{cache_file.parent}, or the safetensors {weights_dir_file} in a folder given as --weights-dir "
        "(docs/metrics.md#weights)"
    )


def weights_file(weights_dir: Path, key: str) -> Path:
    """``weights_dir / WEIGHT_FILES[key]``; one error line naming the file when it is missing."""
    path = Path(weights_dir) / WEIGHT_FILES[key]
    if not path.is_file():
        raise MissingDependencyError(
            f"{key} weights missing: put this safetensors file there (write it once with export_weights, "
            "docs/metrics.md#weights)",
            path,
        )
    return path


def load_weights(module: nn.Module, path: Path, key: str) -> None:
    """Load the safetensors state dict at ``path`` into ``module`` (all keys, matching shapes), or one error line.

    Uses ``safetensors.torch.load_model``, which accepts files where tied tensors (LPIPS's ``lins``
    aliases ``lin0``..) are stored once.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_model

    from defectsynth.data.files import check_safetensors
    from defectsynth.errors import DatasetError

    try:
        check_safetensors(path)  # a pickle or a torch.save archive is named as such, never loaded
    except DatasetError as err:
        raise MissingDependencyError(f"not a readable safetensors file ({err.reason})", path) from None
    try:
        missing, unexpected = load_model(module, str(path), strict=False)  # CPU; safetensors 0.4 has no device=
    except (SafetensorError, OSError, ValueError) as err:
        raise MissingDependencyError(f"not a readable safetensors file ({err})", path) from None
    except RuntimeError as err:  # shape mismatches
        detail = str(err).strip().splitlines()[-1].strip()
        raise MissingDependencyError(f"does not hold {key} weights: {detail}", path) from None
    wrong = [f"missing {k}" for k in missing] + [f"unexpected {k}" for k in unexpected]
    if wrong:
        shown = ", ".join(wrong[:3]) + (f" (+{len(wrong) - 3} more)" if len(wrong) > 3 else "")
        raise MissingDependencyError(f"does not hold {key} weights: {shown}", path)


def save_weights(module: nn.Module, path: str | Path) -> Path:
    """Write ``module``'s state dict as safetensors at ``path`` (atomically; tied tensors stored once)."""
    from safetensors.torch import save

    from defectsynth.data.files import atomic_write_bytes

    seen: set[tuple[int, tuple[int, ...]]] = set()
    tensors = {}
    for name, tensor in module.state_dict().items():
        ident = (tensor.data_ptr(), tuple(tensor.shape))
        if ident in seen:
            continue
        seen.add(ident)
        tensors[name] = tensor.detach().cpu().contiguous()
    atomic_write_bytes(path, save(tensors))
    return Path(path)


# -- FID InceptionV3 -----------------------------------------------------------------------------


def inception_architecture(features: list[int]) -> nn.Module:
    """torch-fidelity's FID InceptionV3 with its default (random) initialisation, no weights loaded.

    ``FeatureExtractorInceptionV3.__init__`` builds the layers and then always loads weights, from
    ``load_state_dict_from_url`` (a pickle download) or ``torch.load``. While the constructor runs we
    make that load a no-op, so that only our safetensors are loaded afterwards; the architecture and
    the forward pass (resize, scaling, feature taps) stay the library's.
    """
    cls = inception_class()
    tfi = sys.modules[cls.__module__]
    with (
        mock.patch.object(tfi, "load_state_dict_from_url", lambda *args, **kwargs: {}),
        mock.patch.object(cls, "load_state_dict", lambda self, state_dict, strict=True: None),
    ):
        return cls("inception-v3-compat", [str(f) for f in features])


def inception_class() -> type[nn.Module]:
    """torch-fidelity's FID InceptionV3 (TF 2015-12-05 graph, TF1-compatible bilinear resize to 299, uint8 input)."""
    try:
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    except ImportError:
        raise MissingDependencyError("fid and kid need torch-fidelity: pip install torch-fidelity") from None
    return FeatureExtractorInceptionV3


def load_inception(features: list[int], weights_dir: Path | None = None, device: str = "cpu") -> nn.Module:
    """The FID InceptionV3 returning a tuple of (N, f) float32 features, one per size in ``features``.

    Input: (N, 3, H, W) uint8 RGB in 0..255 (the network resizes to 299 and scales to [-1, 1] itself).
    """
    if weights_dir is None:
        cls = inception_class()
        try:
            net = cls("inception-v3-compat", [str(f) for f in features])
        except OSError as err:  # URLError and socket errors: offline, or the cache is unwritable
            url = sys.modules[cls.__module__].URL_INCEPTION_V3
            raise _missing("InceptionV3 (FID)", _hub_file(url), WEIGHT_FILES[INCEPTION], err) from None
    else:
        path = weights_file(weights_dir, INCEPTION)
        net = inception_architecture(features)
        load_weights(net, path, INCEPTION)
    return net.to(device).eval()


# -- LPIPS ---------------------------------------------------------------------------------------


def lpips_class() -> type[nn.Module]:
    """torchmetrics' LPIPS network (Zhang et al. v0.1: ImageNet backbone + learned linear heads)."""
    try:
        from torchmetrics.functional.image.lpips import _NoTrainLpips
    except ImportError:
        raise MissingDependencyError("lpips needs torchmetrics: pip install torchmetrics") from None
    return _NoTrainLpips


def load_lpips(net: str, weights_dir: Path | None = None, device: str = "cpu") -> nn.Module:
    """LPIPS with backbone ``net`` (alex, vgg or squeeze); ``forward(a, b)`` takes (N, 3, H, W) floats in [-1, 1]
    and returns (N, 1, 1, 1) distances."""
    cls = lpips_class()
    if weights_dir is None:
        import torchvision

        url = getattr(torchvision.models, _TV_WEIGHTS[net]).DEFAULT.url
        try:
            model = cls(net=net)
        except OSError as err:  # URLError and socket errors: offline, or the cache is unwritable
            raise _missing(f"LPIPS {net} backbone", _hub_file(url), WEIGHT_FILES[net], err) from None
    else:
        path = weights_file(weights_dir, net)
        model = cls(net=net, pretrained=False, pnet_rand=True)
        load_weights(model, path, net)
    return model.to(device).eval()


# -- export --------------------------------------------------------------------------------------


def export_weights(out_dir: str | Path, nets: tuple[str, ...] = LPIPS_NETS, inception: bool = True) -> list[Path]:
    """Write the safetensors files ``--weights-dir`` expects, from the libraries' own weights.

    Run once where the libraries can load (or download) their published files; copy ``out_dir``
    to offline machines. Returns the written paths.
    """
    out_dir = Path(out_dir)
    modules: dict[str, nn.Module] = {}
    if inception:
        modules[INCEPTION] = load_inception([2048])
    for net in nets:
        modules[net] = load_lpips(net)
    written = []
    for key, module in modules.items():
        written.append(save_weights(module, out_dir / WEIGHT_FILES[key]))
        logger.info("wrote %s", written[-1])
    return written
