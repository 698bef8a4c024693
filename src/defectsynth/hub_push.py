"""``defectsynth push``: upload a run folder to a Hugging Face Hub model repository.

A pushed run is the run folder without its resume checkpoints: run.json, model_index.json (written
first if the run predates it), unet/, unet_ema/, scheduler/, log.jsonl and previews/
(:data:`~defectsynth.hub.RUN_FILES`), so it loads with
``DefectsynthPipeline.from_pretrained("owner/name")`` and samples with ``defectsynth sample owner/name``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from defectsynth.diffusion.trained_run import Run
from defectsynth.errors import DatasetError, OptionError, summary
from defectsynth.hub import REPO_ID, RUN_FILES
from defectsynth.pipeline import write_model_index


@dataclass
class Pushed:
    """What :func:`push` uploaded: the repository, its URL and the files sent."""

    repo_id: str
    url: str
    files: list[str]


def push(
    run: str | Path, repo_id: str, *, private: bool = False, token: str | None = None, commit_message: str | None = None
) -> Pushed:
    """Upload the run folder ``run`` to the Hub model repository ``repo_id`` (created if missing;
    ``private`` for a new one). The resume checkpoints stay local (:data:`RUN_FILES`).

    A folder without run.json, or without weights yet, is refused before anything is sent.
    """
    import huggingface_hub as hub
    from huggingface_hub.utils import HfHubHTTPError

    if not REPO_ID.match(repo_id) or ".." in repo_id:
        raise OptionError(f"REPO_ID: expected owner/name (letters, digits, - _ .), got {repo_id!r}")
    the_run = Run.open(run)  # not a run folder: one DatasetError line
    if not (the_run.root / "unet" / "config.json").is_file():
        raise DatasetError(
            "the run has no weights yet (unet/ appears after its first epoch): nothing to push", the_run.root
        )
    if not (the_run.root / "model_index.json").is_file():
        write_model_index(the_run.root)  # an older run: make it a pipeline folder first (a latent run stays none)
    files = sorted(
        str(p.relative_to(the_run.root))
        for p in the_run.root.rglob("*")
        if p.is_file() and _uploaded(p.relative_to(the_run.root))
    )
    try:
        url = hub.create_repo(repo_id, private=private, token=token, exist_ok=True)
        hub.upload_folder(
            repo_id=repo_id, folder_path=str(the_run.root), allow_patterns=RUN_FILES, token=token,
            commit_message=commit_message or f"defectsynth run {the_run.root.name}",
        )  # fmt: skip
    except (HfHubHTTPError, OSError, ValueError) as err:
        raise OptionError(
            f"cannot push to {repo_id} ({summary(err)}); log in with `hf auth login`, or pass --token"
        ) from None
    return Pushed(repo_id, str(url), files)


def _uploaded(relative: Path) -> bool:
    from huggingface_hub.utils import filter_repo_objects

    return bool(list(filter_repo_objects([relative.as_posix()], allow_patterns=RUN_FILES)))
