"""A saved segmentation network (``evaluate --save-models``, ``filter --by segmenter``)::

    <folder>/
      config.json          smp's save_pretrained config: ``_model_class`` and the constructor arguments
      model.safetensors    the weights

Its writer (:func:`save_model`, atomic: the folder is complete or absent) and reader
(:func:`load_model`: rebuilt with ``encoder_weights=None``; nothing downloaded or unpickled).
"""

from __future__ import annotations

import copy
from pathlib import Path

from torch import nn

from defectsynth.data.files import read_json, read_safetensors, write_dir
from defectsynth.errors import DatasetError, first_line


def save_model(model: nn.Module, folder: str | Path) -> Path:
    """Save an smp network as ``folder/config.json`` + ``folder/model.safetensors`` (smp's ``save_pretrained``).

    Written next to ``folder`` and renamed into place, so ``folder`` is complete or absent; an
    existing ``folder`` is replaced. The model's parameters stay on their device.
    """
    return write_dir(folder, lambda tmp: copy.deepcopy(model).cpu().save_pretrained(tmp))


def load_model(folder: str | Path, option: str = "--segmenter") -> nn.Module:
    """The smp network saved in ``folder`` by :func:`save_model` (``evaluate --save-models``, ``filter``), in eval mode.

    Rebuilt from config.json (``_model_class`` and the constructor arguments) with
    ``encoder_weights=None`` and loaded from model.safetensors: nothing is downloaded or unpickled.
    """
    import segmentation_models_pytorch as smp

    folder = Path(folder)
    config_path, weights = folder / "config.json", folder / "model.safetensors"
    if not weights.is_file():
        raise DatasetError(
            f"{option}: model.safetensors not found (expected a network saved by evaluate --save-models or filter)",
            folder,
        )
    config = read_json(config_path)
    class_name = config.pop("_model_class", None) if isinstance(config, dict) else None
    if not isinstance(class_name, str) or not isinstance(getattr(smp, class_name, None), type):
        raise DatasetError(
            f"{option}: config.json names no smp model class (_model_class: {class_name!r})", config_path
        )
    config["encoder_weights"] = None  # the weights come from the safetensors file, never from a download
    try:
        model = getattr(smp, class_name)(**{k: v for k, v in config.items() if not k.startswith("_")})
        model.load_state_dict(read_safetensors(weights))
    except (TypeError, KeyError, RuntimeError) as err:
        raise DatasetError(
            f"{option}: cannot rebuild {class_name} from config.json and model.safetensors ({first_line(err)})", folder
        ) from None
    return model.eval()
