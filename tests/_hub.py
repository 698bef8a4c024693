"""A local stand-in for the Hugging Face Hub (tests never reach the network): repositories are
folders under ``root``; ``create_repo``, ``upload_folder`` and ``snapshot_download`` keep the
signatures huggingface_hub's have, and filter files with its own ``filter_repo_objects``."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub.utils import filter_repo_objects


@dataclass
class RepoUrl:
    repo_id: str

    def __str__(self) -> str:
        return f"https://fake.hub/{self.repo_id}"


class FakeHub:
    def __init__(self, root: Path):
        self.root = root
        self.private: dict[str, bool] = {}
        self.downloads: list[dict] = []

    def repo(self, repo_id: str) -> Path:
        return self.root / "repos" / repo_id

    def files(self, repo_id: str) -> list[str]:
        return sorted(
            p.relative_to(self.repo(repo_id)).as_posix() for p in self.repo(repo_id).rglob("*") if p.is_file()
        )

    def create_repo(
        self, repo_id: str, *, private: bool | None = False, token=None, exist_ok: bool = False, **kwargs
    ) -> RepoUrl:
        if self.repo(repo_id).exists() and not exist_ok:
            raise FileExistsError(repo_id)
        self.repo(repo_id).mkdir(parents=True, exist_ok=True)
        self.private.setdefault(repo_id, bool(private))
        return RepoUrl(repo_id)

    def upload_folder(
        self, *, repo_id: str, folder_path, allow_patterns=None, ignore_patterns=None, path_in_repo=None, **kwargs
    ):
        copy_files(Path(folder_path), self.repo(repo_id) / (path_in_repo or ""), allow_patterns, ignore_patterns)
        return f"{RepoUrl(repo_id)}/commit/fake"

    def snapshot_download(self, repo_id: str, *, allow_patterns=None, ignore_patterns=None, **kwargs) -> str:
        self.downloads.append(
            {"repo_id": repo_id, "allow_patterns": allow_patterns, "ignore_patterns": ignore_patterns}
        )
        return str(copy_files(self.repo(repo_id), self.root / "cache" / repo_id, allow_patterns, ignore_patterns))

    def install(self, monkeypatch) -> "FakeHub":
        """Route huggingface_hub's (and diffusers' push_to_hub's) calls here."""
        import huggingface_hub
        from diffusers.utils import hub_utils
        from huggingface_hub import ModelCard

        for module in (huggingface_hub, hub_utils):
            monkeypatch.setattr(module, "create_repo", self.create_repo)
            monkeypatch.setattr(module, "upload_folder", self.upload_folder)
        monkeypatch.setattr(huggingface_hub, "snapshot_download", self.snapshot_download)
        monkeypatch.setattr(
            hub_utils,
            "load_or_create_model_card",
            lambda repo_id, token=None, **kw: ModelCard("---\nlibrary_name: diffusers\n---\n"),
        )
        return self


def copy_files(source: Path, dest: Path, allow_patterns=None, ignore_patterns=None) -> Path:
    """Copy the files of ``source`` that the patterns select (as the Hub filters them) to ``dest``."""
    names = [p.relative_to(source).as_posix() for p in source.rglob("*") if p.is_file()]
    for name in filter_repo_objects(names, allow_patterns=allow_patterns, ignore_patterns=ignore_patterns):
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / name, dest / name)
    return dest


def cache_repo(cache: Path, repo_id: str, folder: Path, allow_patterns=None) -> Path:
    """Put ``folder`` into a Hugging Face cache at ``cache`` as the main revision of ``repo_id``
    (what an earlier ``snapshot_download`` left); returns the snapshot folder."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    storage = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = copy_files(folder, storage / "snapshots" / commit, allow_patterns)
    (storage / "refs").mkdir(parents=True, exist_ok=True)
    (storage / "refs" / "main").write_text(commit)
    return snapshot
