"""The network step alone under each speed switch: forward + backward + fused AdamW of one UNet.

The switches of `defectsynth train` that change the network's arithmetic, measured without data,
EMA or saving: float32, bf16 autocast, bf16 autocast with the attention blocks in float32 (what
``--mixed-precision auto`` picks on a CPU with native bf16), channels-last. Each switch gets its
own network (same seed); the switches take turns, and the fastest round of each is kept.

    PYTHONPATH=src python benchmarks/network_step.py [--model small] [--size 32] [--batch-size 16]
        [--steps 8] [--repeats 3] [--switches float32,bf16,bf16+f32attn,channels-last,channels-last+bf16+f32attn]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from _results import add_json_option, write_results

from defectsynth.data.resize import parse_size
from defectsynth.diffusion.models import build_unet, channel_layout, unet_config, use_float32_attention
from defectsynth.diffusion.processes import native_bf16

SWITCHES = ("float32", "bf16", "bf16+f32attn", "channels-last", "channels-last+bf16+f32attn")


class Step:
    """One network, its optimizer and a fixed batch, set up for ``switch``."""

    def __init__(self, switch: str, model: str, size: tuple[int, int], batch_size: int):
        torch.manual_seed(0)
        layout = channel_layout("basd", "joint", 5, "fixed", self_cond=True)
        self.net = build_unet(unet_config(model, size, layout))
        self.bf16, channels_last = "bf16" in switch, "channels-last" in switch
        if "f32attn" in switch:
            use_float32_attention(self.net)
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        self.net = self.net.to(memory_format=fmt)
        self.optimizer = torch.optim.AdamW(self.net.parameters(), lr=1e-4, fused=True)
        self.x = torch.randn(batch_size, layout.in_channels, *size).contiguous(memory_format=fmt)
        self.t = torch.randint(0, 1000, (batch_size,))
        self.target = torch.randn(batch_size, layout.out_channels, *size)

    def __call__(self) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            out = self.net(self.x, self.t).sample
        F.mse_loss(out.float(), self.target).backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="small")
    parser.add_argument("--size", default="32")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=8, help="Steps per timed round.")
    parser.add_argument("--repeats", type=int, default=3, help="Timed rounds per switch (the fastest is kept).")
    parser.add_argument("--switches", default=",".join(SWITCHES), help=f"Comma-separated, from: {', '.join(SWITCHES)}")
    add_json_option(parser)
    a = parser.parse_args()
    switches = a.switches.split(",")
    unknown = sorted(set(switches) - set(SWITCHES))
    if unknown:
        parser.error(f"--switches: unknown {unknown}")
    steps = {s: Step(s, a.model, parse_size(a.size), a.batch_size) for s in switches}
    for step in steps.values():  # warm-up: oneDNN picks and builds its kernels on the first calls
        for _ in range(2):
            step()
    rounds: dict[str, list[float]] = {s: [] for s in switches}
    for _ in range(a.repeats):
        for s, step in steps.items():
            started = time.perf_counter()
            for _ in range(a.steps):
                step()
            rounds[s].append(1000 * (time.perf_counter() - started) / a.steps)
    print(
        f"model {a.model}, {a.size} px, batch {a.batch_size}, torch threads {torch.get_num_threads()}, "
        f"bf16 native: {native_bf16('cpu')}"
    )
    base = min(rounds[switches[0]])
    results: dict = {
        "model": a.model,
        "size": a.size,
        "batch_size": a.batch_size,
        "threads": torch.get_num_threads(),
        "baseline": switches[0],
        "switches": {},
    }
    for s in switches:
        best = min(rounds[s])
        results["switches"][s] = {"ms_per_step": best, "rounds_ms": rounds[s], "speedup": base / best}
        print(
            f"{s:>28}: {best:7.1f} ms/step (rounds {', '.join(f'{r:.0f}' for r in rounds[s])}), "
            f"x{base / best:.2f} vs {switches[0]}"
        )
    write_results(a.json, results)


if __name__ == "__main__":
    main()
