"""Text prompts: Class-Prompt Appending (Che et al., VOC paper, Section 3.2.1).

``P* = "<caption>; <class names>"``: the caption describes the layout of the real image, the
appended class names make sure every labelled class is asked for. Captions come from

- a captions file (``--captions FILE``): JSON lines ``{"stem": "<stem>", "caption": "<text>"}``;
- a local image-captioning model (``--captioner DIR``, e.g. ``Salesforce/blip2-opt-2.7b``
  downloaded beforehand), run through transformers;
- nothing: the prompt is then the class list alone, the paper's "simple prompt".

``--prompt-template`` replaces the default with any text holding ``{classes}`` and/or
``{caption}``, e.g. ``"a photo of {classes}"``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from defectsynth.data.files import read_bytes
from defectsynth.data.model import IGNORE_INDEX, check_stem
from defectsynth.errors import DatasetError, MissingDependencyError, OptionError, first_line
from defectsynth.metrics.distribution import sample_classes

APPEND_TEMPLATE = "{caption}; {classes}"  # Class-Prompt Appending
SIMPLE_TEMPLATE = "{classes}"  # the simple prompt, used when there is no caption


def classes_in_mask(mask: np.ndarray) -> list[int]:
    """Sorted class ids present in an (H, W) uint8 mask, without background (0) and ignore (255).

    :func:`defectsynth.metrics.distribution.sample_classes` of the mask alone (no boxes).
    """
    return list(sample_classes(mask, (), IGNORE_INDEX))


def class_prompt(class_ids: list[int], names: dict[int, str]) -> str:
    """``"scratch, oil stain"``: the names of ``class_ids`` in id order, underscores as spaces."""
    return ", ".join(names[c].replace("_", " ") for c in sorted(class_ids))


def check_template(template: str | None) -> None:
    """Refuse a template with unknown placeholders or none of ``{classes}`` / ``{caption}``."""
    if template is None:
        return
    try:
        template.format(classes="", caption="")
    except (KeyError, IndexError, ValueError) as err:
        raise OptionError(
            f"--prompt-template: only {{classes}} and {{caption}} may be used, got {template!r} ({err})"
        ) from None
    if "{classes}" not in template and "{caption}" not in template:
        raise OptionError(f"--prompt-template must contain {{classes}} or {{caption}}, got {template!r}")


def build_prompt(classes: str, caption: str | None = None, template: str | None = None) -> str:
    """The prompt for one image.

    Without ``template``: ``"<caption>; <classes>"`` when there is a caption (Class-Prompt
    Appending), else ``"<classes>"``; an image without labelled classes gets its caption alone.
    With one, ``template.format(caption=..., classes=...)``; a template using ``{caption}`` needs
    a caption.
    """
    if template is None:
        template = (APPEND_TEMPLATE if classes else "{caption}") if caption else SIMPLE_TEMPLATE
    elif "{caption}" in template and not caption:
        raise OptionError(f"--prompt-template {template!r} uses {{caption}}: give --captions or --captioner")
    return template.format(caption=(caption or "").strip(), classes=classes)


def read_captions(path: str | Path) -> dict[str, str]:
    """Captions from a JSON-lines file: one ``{"stem": ..., "caption": ...}`` object per line."""
    path = Path(path)
    try:
        text = read_bytes(path).decode("utf-8")
    except UnicodeDecodeError:
        raise DatasetError("captions file is not UTF-8 text", path) from None
    captions: dict[str, str] = {}
    for line_no, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{line_no}"
        try:
            item = json.loads(line)
        except ValueError as err:
            raise DatasetError(f"malformed JSON ({err})", where) from None
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("stem"), str)
            or not isinstance(item.get("caption"), str)
        ):
            raise DatasetError('each line must be {"stem": "<stem>", "caption": "<text>"}', where)
        stem = check_stem(item["stem"], where)
        if stem in captions:
            raise DatasetError(f"duplicate stem {stem!r}", where)
        captions[stem] = item["caption"]
    return captions


def missing_captions(captions: dict[str, str], stems: list[str], path: str | Path) -> None:
    """Raise when some of ``stems`` have no caption in the file at ``path``."""
    missing = [s for s in stems if s not in captions]
    if missing:
        shown = ", ".join(missing[:5]) + (f" (+{len(missing) - 5} more)" if len(missing) > 5 else "")
        raise DatasetError(f"no caption for {len(missing)} condition image(s): {shown}", path)


class Captioner:
    """A local image-captioning model (BLIP-2, BLIP, ...) loaded from a folder through transformers.

    ``__call__(images: list of (H, W, 3) uint8) -> list[str]``, greedy decoding, at most
    ``max_new_tokens`` tokens. Only safetensors weights are loaded, never from the network.
    """

    def __init__(self, model_dir: str | Path, device: str = "cpu", max_new_tokens: int = 30):
        from defectsynth.sd_backend.pipeline import check_folder, quiet_loading, require_transformers

        require_transformers()
        import transformers

        model_dir = check_folder(model_dir, "--captioner", "config.json")
        auto = getattr(transformers, "AutoModelForImageTextToText", None) or transformers.AutoModelForVision2Seq
        try:
            with quiet_loading():
                self.processor = transformers.AutoProcessor.from_pretrained(model_dir, local_files_only=True)
                self.model = (
                    auto.from_pretrained(model_dir, local_files_only=True, use_safetensors=True).to(device).eval()
                )
        except (OSError, ValueError, KeyError) as err:
            raise MissingDependencyError(f"cannot load the captioning model ({first_line(err)})", model_dir) from None
        self.device = device
        self.max_new_tokens = max_new_tokens

    def __call__(self, images: list[np.ndarray]) -> list[str]:
        import torch
        from PIL import Image

        inputs = self.processor(images=[Image.fromarray(im) for im in images], return_tensors="pt").to(self.device)
        with torch.no_grad():
            ids = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        return [t.strip() for t in self.processor.batch_decode(ids, skip_special_tokens=True)]
