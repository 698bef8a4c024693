"""``defectsynth push RUN REPO_ID``: upload a trained run to the Hugging Face Hub
(:func:`defectsynth.hub_push.push`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

EXAMPLES = """
[bold]Examples[/]

  defectsynth push runs/wood my-org/defectsynth-wood   [dim](then: defectsynth sample my-org/defectsynth-wood --conditions data/wood:val --out synth/wood)[/]

  defectsynth push runs/wood my-org/wood-private --private --token hf_...   [dim](or log in once: hf auth login)[/]

Uploads run.json, model_index.json, unet/, unet_ema/, scheduler/, log.jsonl and previews/; the resume
checkpoints stay local. run.json holds the training options, local paths included. The repository loads
with DefectsynthPipeline.from_pretrained("my-org/defectsynth-wood") and trains on with
`defectsynth train DATASET --finetune my-org/defectsynth-wood`. Docs: docs/pipeline.md
"""  # noqa: E501


def push_command(
    run: Annotated[
        Path, typer.Argument(metavar="RUN", help="Run folder written by `defectsynth train`.", show_default=False)
    ],
    repo_id: Annotated[
        str,
        typer.Argument(
            metavar="REPO_ID", help="Hub model repository, owner/name (created if missing).", show_default=False
        ),
    ],
    private: Annotated[
        bool, typer.Option("--private", help="Create the repository private (an existing one keeps its visibility).")
    ] = False,
    token: Annotated[
        Optional[str],
        typer.Option(
            "--token",
            help="Hugging Face token with write access. Default: the one of `hf auth login` or HF_TOKEN.",
            show_default=False,
        ),
    ] = None,
) -> None:
    from defectsynth.commands._summary import console
    from defectsynth.hub_push import push

    pushed = push(run, repo_id, private=private, token=token)
    console.print(f"[green]pushed[/] {len(pushed.files)} files of {run} to {pushed.url}")


def register(app: typer.Typer) -> None:
    app.command(
        "push", help="Upload a trained run to the Hugging Face Hub (a diffusers pipeline repository).", epilog=EXAMPLES
    )(push_command)
