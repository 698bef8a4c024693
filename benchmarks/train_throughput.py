"""Training throughput: `defectsynth train` against a plain diffusers + accelerate loop.

The plain loop is the public reference's approach (diffusers' train_unconditional example with the
box maps concatenated to the input): a torch Dataset that reads each image, mask and boxes file and
builds the target and condition tensors per item, a shuffled DataLoader, the same UNet, AdamW, the
same DDPM loss, diffusers' EMAModel and gradient clipping. Both train the same model on the same
data. Each is timed as a whole call after imports (data loading, model building, the loop and the
saving each does: ours also keeps ISDM's best-epoch weights and a resume checkpoint) for N and 2N
steps; the steady-state rate is N * batch / (T(2N) - T(N)), so fixed setup costs cancel. Every
measurement is repeated and the fastest kept, because this machine's CPU is shared; process CPU
seconds are reported next to wall seconds (steadier on a loaded machine). Ours runs the plain
loop's recipe (epsilon prediction, no self-conditioning, equal channel weights).

    python benchmarks/train_throughput.py [--model small] [--size 32] [--steps 20] [--batch-size 16] [--repeats 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from _results import add_json_option, write_results
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from diffusers import DDPMScheduler
from diffusers.training_utils import EMAModel

import defectsynth
from defectsynth.data import Dataset
from defectsynth.diffusion.conditioning import bits_tensor, condition_tensor
from defectsynth.diffusion.models import build_unet, channel_layout, unet_config
from defectsynth.diffusion.processes import resolve_precision

PLAIN_RECIPE = {"prediction": "epsilon", "mask_prediction": "epsilon", "self_cond": False, "mask_loss_weight": 1.0}


class PlainDataset(torch.utils.data.Dataset):
    """Reads and encodes one sample per item, every epoch (no cache)."""

    def __init__(self, root: Path, split: str):
        self.ds = Dataset(root)
        self.stems = self.ds.split(split)
        self.num_classes = self.ds.manifest.num_classes

    def __len__(self) -> int:
        return len(self.stems)

    def __getitem__(self, i: int):
        s = self.ds.read(self.stems[i])
        image = torch.from_numpy(s.image).permute(2, 0, 1).float() / 127.5 - 1
        target = torch.cat([image, bits_tensor(s.mask, self.num_classes)])
        return target, condition_tensor(s.boxes, s.size, "basd", self.num_classes)


def plain_loop(data: Path, model: str, steps: int, batch_size: int, out: Path, mixed_precision: str = "no") -> float:
    started = time.perf_counter()
    AcceleratorState._reset_state()  # accelerate keeps one precision per process; ours may have run at another
    accelerator = Accelerator(mixed_precision=mixed_precision)
    dataset = PlainDataset(data, "train")
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=False)
    layout = channel_layout("basd", "joint", dataset.num_classes, "fixed")
    net = build_unet(unet_config(model, dataset.ds.read(dataset.stems[0]).size, layout))
    ema = EMAModel(net.parameters(), decay=0.999, use_ema_warmup=False)
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-4, weight_decay=0.0)
    scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear")
    net, optimizer, loader = accelerator.prepare(net, optimizer, loader)
    ema.to(accelerator.device)
    step = 0
    while step < steps:
        for x0, cond in loader:
            noise = torch.randn_like(x0)
            t = torch.randint(0, 1000, (len(x0),), device=x0.device)
            xt = scheduler.add_noise(x0, noise, t)
            loss = F.mse_loss(net(torch.cat([xt, cond], 1), t).sample, noise)
            accelerator.backward(loss)
            accelerator.clip_grad_norm_(net.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad()
            ema.step(net.parameters())
            loss.item()
            step += 1
            if step == steps:
                break
    accelerator.unwrap_model(net).save_pretrained(out / "plain")
    return time.perf_counter() - started


def ours(data: Path, model: str, steps: int, batch_size: int, out: Path, **options) -> float:
    started = time.perf_counter()
    # the plain loop's recipe: epsilon prediction, no self-conditioning, equal channel weights
    defectsynth.train(
        data,
        out=out / "ours",
        model=model,
        max_steps=steps,
        epochs=10**6,
        batch_size=batch_size,
        checkpoint_every=10**9,
        preview_every=0,
        split="train",
        **PLAIN_RECIPE,
        **options,
    )
    return time.perf_counter() - started


def timed(loop, *args, **kwargs) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one whole call."""
    wall, cpu = time.perf_counter(), time.process_time()
    loop(*args, **kwargs)
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="small")
    parser.add_argument("--size", default="32")
    parser.add_argument("--images", type=int, default=120)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--mixed-precision",
        default="auto",
        help=(
            "Ours: auto (train's default) | no | bf16 | fp16; a second row of ours in float32 is timed unless "
            "this is no."
        ),
    )
    parser.add_argument(
        "--plain-mixed-precision",
        default="no",
        help="The plain loop's Accelerator(mixed_precision=...): no (its default) | bf16 | fp16.",
    )
    parser.add_argument("--compile", action="store_true", help="Ours only: train --compile.")
    add_json_option(parser)
    a = parser.parse_args()
    torch.manual_seed(0)
    loops = {
        "plain diffusers + accelerate": partial(plain_loop, mixed_precision=a.plain_mixed_precision),
        "defectsynth train": partial(ours, mixed_precision=a.mixed_precision, compile=a.compile),
    }
    if resolve_precision(a.mixed_precision) != "no":
        loops["defectsynth train, float32"] = partial(ours, mixed_precision="no", compile=a.compile)
    times: dict[str, dict[int, tuple[float, float]]] = {name: {} for name in loops}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        defectsynth.prepare("toy", tmp / "data", num=a.images, size=a.size)
        for i, loop in enumerate(loops.values()):  # warm-up: first-call costs (compiling, oneDNN kernels)
            loop(tmp / "data", a.model, 2, a.batch_size, tmp / f"warm-{i}")
        k = 0
        for _ in range(a.repeats):
            for steps in (a.steps, 2 * a.steps):
                for name, loop in loops.items():
                    k += 1
                    wall, cpu = timed(loop, tmp / "data", a.model, steps, a.batch_size, tmp / str(k))
                    print(f"  {name}: {steps} steps in {wall:.2f} s ({cpu:.2f} CPU s)", flush=True)
                    best = times[name].get(steps, (float("inf"), float("inf")))
                    times[name][steps] = (min(wall, best[0]), min(cpu, best[1]))
    print(
        f"model {a.model}, {a.size}px, batch {a.batch_size}, torch threads {torch.get_num_threads()}, best of "
        f"{a.repeats}"
    )
    results: dict = {
        "model": a.model,
        "size": a.size,
        "batch_size": a.batch_size,
        "steps": a.steps,
        "repeats": a.repeats,
        "threads": torch.get_num_threads(),
        "mixed_precision": a.mixed_precision,
        "mixed_precision_resolved": resolve_precision(a.mixed_precision),
        "plain_mixed_precision": a.plain_mixed_precision,
        "compile": a.compile,
        "loops": {},
    }
    for name, t in times.items():
        rate = {}
        for i, clock in enumerate(("wall", "cpu")):
            extra = t[2 * a.steps][i] - t[a.steps][i]
            rate[clock] = (
                a.steps * a.batch_size / extra if extra > 0 else float("nan")
            )  # nan: timing noise exceeded the work
        total = 2 * a.steps * a.batch_size / t[2 * a.steps][0]
        results["loops"][name] = {
            "images_per_s": rate["wall"],
            "images_per_cpu_s": rate["cpu"],
            "images_per_s_end_to_end": total,
        }
        print(
            f"{name:>30}: {rate['wall']:7.1f} images/s steady state ({rate['cpu']:.1f} per CPU s), {total:7.1f} "
            "images/s end to end "
            f"({2 * a.steps} steps in {t[2 * a.steps][0]:.1f} s)"
        )
    plain = results["loops"]["plain diffusers + accelerate"]
    for name, key in (("defectsynth train", "speedup"), ("defectsynth train, float32", "speedup_float32")):
        if name in results["loops"]:
            mine = results["loops"][name]
            results[key], results[f"{key}_cpu"] = (
                mine["images_per_s"] / plain["images_per_s"],
                mine["images_per_cpu_s"] / plain["images_per_cpu_s"],
            )
            print(f"{name} / plain loop: x{results[key]:.2f} (wall), x{results[key + '_cpu']:.2f} (CPU time)")
    write_results(a.json, results)


if __name__ == "__main__":
    main()
