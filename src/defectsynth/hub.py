"""Hugging Face Hub ids where a model folder is expected (``defectsynth push``: :mod:`defectsynth.hub_push`).

A name that is not a local path and reads ``owner/name`` is a Hub repository: it is downloaded with
``huggingface_hub.snapshot_download`` into the Hugging Face cache (``HF_HOME`` / ``HF_HUB_CACHE``;
a second use reads the cache) and its cached folder is used. Only JSON, safetensors and tokenizer
text files are fetched (:data:`MODEL_FILES`); pickled weights never are. With ``HF_HUB_OFFLINE=1``
only the cache is read, and a repository that is not in it is one error line.

Where: ``sample RUN`` and ``train --finetune RUN`` (:func:`resolve_run`), and ``--base``,
``--adapter``, ``--controlnet``, ``--captioner`` of the sd-adapter backend (:func:`resolve`).
"""

from __future__ import annotations

import re
from pathlib import Path

from defectsynth.errors import OptionError, summary

# files fetched for a model: configs, safetensors weights, tokenizer vocabularies (merges.txt,
# vocab.txt, spiece.model); never .bin / .pt / .ckpt / .pkl, never code
MODEL_FILES = ["*.json", "*.safetensors", "*.txt", "*.model"]
# a diffusers pipeline: its components' folders only (not the single-file checkpoints beside them)
PIPELINE_FILES = ["model_index.json", "*/*.json", "*/*.safetensors", "*/*.txt", "*/*.model"]
# half-precision copies of the weights, which the loaders here do not read
VARIANT_FILES = ["*.fp16.safetensors", "*.fp16-*.safetensors"]
# what a run folder holds for sampling, and what `push` uploads
RUN_FILES = [
    "run.json",
    "model_index.json",
    "unet/*",
    "unet_ema/*",
    "scheduler/*",
    "log.jsonl",
    "previews/*.png",
    "README.md",
]
RUN_DOWNLOAD = ["run.json", "model_index.json", "unet/*", "unet_ema/*", "scheduler/*"]
REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9_.-]+$")


def is_repo_id(name: str | Path) -> bool:
    """``owner/name`` that is not an existing local path."""
    text = str(name)
    return not Path(text).exists() and REPO_ID.match(text) is not None and ".." not in text


def resolve(name: str | Path | None, option: str, allow_patterns: list[str] | None = None) -> Path | None:
    """``name`` as a local folder: itself when it is a local path (or not a Hub id), else the cached
    download of that Hub repository (:func:`download`; default: :data:`MODEL_FILES`)."""
    if name is None:
        return None
    return download(str(name), option, allow_patterns) if is_repo_id(name) else Path(name)


def resolve_run(name: str | Path, option: str = "RUN") -> Path:
    """A run folder, or a run pushed to the Hub (its run.json, model_index.json and weights)."""
    return resolve(name, option, RUN_DOWNLOAD)


def download(repo_id: str, option: str, allow_patterns: list[str] | None = None) -> Path:
    """The cached snapshot of ``repo_id`` (downloaded unless it is cached and HF_HUB_OFFLINE is set);
    every failure is one :class:`OptionError` line naming ``option``."""
    import huggingface_hub as hub
    from huggingface_hub import constants
    from huggingface_hub.utils import (
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        return Path(
            hub.snapshot_download(repo_id, allow_patterns=allow_patterns or MODEL_FILES, ignore_patterns=VARIANT_FILES)
        )
    except LocalEntryNotFoundError:
        if constants.HF_HUB_OFFLINE:
            raise OptionError(
                f"{option}: {repo_id} is no local folder, and as a Hub id it is not in the Hugging Face cache "
                "while HF_HUB_OFFLINE is set (download it once online)"
            ) from None
        raise OptionError(
            f"{option}: {repo_id} is no local folder, and as a Hub id it is not cached and the Hugging Face "
            "Hub cannot be reached (check the connection)"
        ) from None
    except RepositoryNotFoundError:
        raise OptionError(
            f"{option}: {repo_id} is neither a local folder nor a repository on the Hugging Face Hub (a "
            "private or gated one needs `hf auth login` or HF_TOKEN)"
        ) from None
    except (RevisionNotFoundError, HfHubHTTPError, ValueError) as err:
        raise OptionError(f"{option}: cannot download {repo_id} from the Hugging Face Hub ({summary(err)})") from None
