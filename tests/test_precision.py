"""Mixed precision: what ``--mixed-precision auto`` picks, one process at several precisions, and the
float32 attention used under CPU bf16 autocast."""

from __future__ import annotations

from unittest import mock

import pytest
import torch
from diffusers import UNet2DModel
from diffusers.models.attention_processor import Attention

from defectsynth.diffusion import processes
from defectsynth.diffusion.models import Float32Attention, use_float32_attention
from defectsynth.diffusion.processes import make_accelerator, native_bf16, resolve_precision
from defectsynth.errors import OptionError


@pytest.mark.parametrize(
    ("env", "native", "expected"),
    [(None, True, "bf16"), (None, False, "no"), ("fp16", True, "fp16"), ("no", True, "no"), ("BF16", False, "bf16")],
)
def test_auto_follows_the_launcher_then_the_device(monkeypatch, env, native, expected):
    if env is None:
        monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    else:
        monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", env)
    with mock.patch.object(processes, "native_bf16", return_value=native):
        assert resolve_precision("auto") == expected
        assert resolve_precision("no") == "no" and resolve_precision("bf16") == "bf16"


def test_auto_refuses_a_launcher_precision_it_cannot_use(monkeypatch):
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "fp8")
    with pytest.raises(OptionError, match="ACCELERATE_MIXED_PRECISION='fp8'"):
        resolve_precision("auto")


def test_auto_asks_the_cpu_when_accelerate_is_told_to_use_it(monkeypatch):
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    asked = []
    with (
        mock.patch("torch.cuda.is_available", return_value=True),
        mock.patch.object(processes, "native_bf16", side_effect=lambda d: asked.append(d) or False),
    ):
        resolve_precision("auto")
        monkeypatch.setenv("ACCELERATE_USE_CPU", "true")
        resolve_precision("auto")
    assert asked == ["cuda", "cpu"]


def test_native_bf16_reads_the_cpu_flags_and_the_gpu_generation():
    with (
        mock.patch("torch.cpu._is_avx512_bf16_supported", return_value=False),
        mock.patch("torch.cpu._is_amx_tile_supported", return_value=False),
    ):
        assert not native_bf16("cpu")
    with mock.patch("torch.cpu._is_avx512_bf16_supported", return_value=True):
        assert native_bf16("cpu")
    with mock.patch("torch.cuda.is_available", return_value=True):
        for capability, native in (((7, 5), False), ((8, 0), True), ((9, 0), True)):
            with mock.patch("torch.cuda.get_device_capability", return_value=capability):
                assert native_bf16("cuda") is native
    assert not native_bf16("mps")


def test_one_process_can_train_at_several_precisions():
    assert make_accelerator("bf16").mixed_precision == "bf16"
    assert make_accelerator("no").mixed_precision == "no"  # accelerate alone would refuse the change
    assert make_accelerator("no").mixed_precision == "no"


def tiny_attention_unet() -> UNet2DModel:
    torch.manual_seed(0)
    return UNet2DModel(
        sample_size=16,
        in_channels=3,
        out_channels=3,
        block_out_channels=(8, 16),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D"),
        norm_num_groups=4,
        attention_head_dim=8,
    )


def test_float32_attention_computes_what_the_default_processor_does():
    net = tiny_attention_unet()
    x, t = torch.randn(2, 3, 16, 16), torch.tensor([3, 700])
    with torch.no_grad():
        expected = net(x, t).sample
        use_float32_attention(net)
        processors = [m.processor for m in net.modules() if isinstance(m, Attention)]
        assert len(processors) == 4 and all(isinstance(p, Float32Attention) for p in processors)  # down, middle, 2 up
        assert torch.allclose(net(x, t).sample, expected, atol=1e-6)


def test_under_bf16_autocast_attention_runs_in_float32_and_trains():
    net = use_float32_attention(tiny_attention_unet())
    seen = []
    net.mid_block.attentions[0].register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(torch.randn(2, 3, 16, 16), torch.tensor([1, 2])).sample
    out.float().square().mean().backward()
    assert seen == [torch.float32]
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters() if p.requires_grad)
