"""Tiny random SDXL + T2I-Adapter / ControlNet pipelines and a tiny CLIP, built in code and saved
with ``save_pretrained`` (the same layout as the public weights), so tests run the real loading and
generation path without downloading anything. Shapes follow diffusers' own SDXL adapter tests."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import torch


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character table (transformers moved it between releases)."""
    try:
        from transformers.convert_slow_tokenizer import bytes_to_unicode
    except ImportError:  # transformers 4.40, the declared floor
        from transformers.models.gpt2.tokenization_gpt2 import bytes_to_unicode
    return bytes_to_unicode()


def write_clip_tokenizer(folder: Path) -> Path:
    """A byte-level CLIP tokenizer folder (vocab.json, merges.txt without merges): 514 tokens."""
    folder.mkdir(parents=True, exist_ok=True)
    chars = list(_bytes_to_unicode().values())
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"model_max_length": 77, "tokenizer_class": "CLIPTokenizer"})
    )
    return folder


def _text_config():
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        bos_token_id=512, eos_token_id=513, pad_token_id=513, hidden_size=32, intermediate_size=37, layer_norm_eps=1e-5,
        num_attention_heads=4, num_hidden_layers=2, vocab_size=514, hidden_act="gelu", projection_dim=32,
    )  # fmt: skip


def _unet_kwargs() -> dict:
    return dict(
        block_out_channels=(32, 64), layers_per_block=1, in_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), attention_head_dim=(2, 4), use_linear_projection=True,
        addition_embed_type="text_time", addition_time_embed_dim=8, transformer_layers_per_block=(1, 1),
        projection_class_embeddings_input_dim=80, cross_attention_dim=64,
    )  # fmt: skip


def build_sdxl(root: Path) -> dict[str, Path]:
    """Write ``root/base`` (SDXL pipeline), ``root/adapter`` (T2IAdapter), ``root/controlnet``."""
    from diffusers import (
        AutoencoderKL,
        ControlNetModel,
        EulerDiscreteScheduler,
        StableDiffusionXLPipeline,
        T2IAdapter,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=32, out_channels=4, up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), **_unet_kwargs()
    )
    vae = AutoencoderKL(
        block_out_channels=[32, 64], in_channels=3, out_channels=3, latent_channels=4, sample_size=64,
        down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
    )  # fmt: skip
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, steps_offset=1, beta_schedule="scaled_linear", timestep_spacing="leading"
    )
    tokenizer = CLIPTokenizer.from_pretrained(write_clip_tokenizer(root / "_tokenizer"))
    pipe = StableDiffusionXLPipeline(
        vae=vae, text_encoder=CLIPTextModel(_text_config()), text_encoder_2=CLIPTextModelWithProjection(_text_config()),
        tokenizer=tokenizer, tokenizer_2=tokenizer, unet=unet, scheduler=scheduler,
    )  # fmt: skip
    pipe.save_pretrained(root / "base")
    adapter = T2IAdapter(
        in_channels=3, channels=[32, 64], num_res_blocks=1, downscale_factor=4, adapter_type="full_adapter_xl"
    )
    adapter.save_pretrained(root / "adapter")
    controlnet = ControlNetModel(conditioning_embedding_out_channels=(16, 32), **_unet_kwargs())
    controlnet.save_pretrained(root / "controlnet")
    return {"base": root / "base", "adapter": root / "adapter", "controlnet": root / "controlnet"}


def build_clip(folder: Path) -> Path:
    """A tiny CLIPModel + CLIPProcessor (32 px images) saved in ``folder``."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    torch.manual_seed(0)
    vision = dict(
        hidden_size=32,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        image_size=32,
        patch_size=8,
        projection_dim=32,
    )
    config = CLIPConfig(text_config=_text_config().to_dict(), vision_config=vision, projection_dim=32)
    CLIPModel(config).save_pretrained(folder)
    tokenizer = CLIPTokenizer.from_pretrained(write_clip_tokenizer(folder.parent / "_clip_tokenizer"))
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
    return folder


def build_blip2(folder: Path) -> Path:
    """A tiny BLIP-2 (ViT + Q-Former + OPT) with its processor, saved in ``folder`` (32 px images)."""
    from transformers import (
        AutoTokenizer,
        Blip2Config,
        Blip2ForConditionalGeneration,
        Blip2Processor,
        BlipImageProcessor,
    )

    tok_dir = folder.parent / "_blip2_tokenizer"
    tok_dir.mkdir(parents=True, exist_ok=True)
    vocab = {c: i for i, c in enumerate(_bytes_to_unicode().values())}
    for special in ("<pad>", "</s>", "<unk>", "<image>"):
        vocab[special] = len(vocab)
    (tok_dir / "vocab.json").write_text(json.dumps(vocab))
    (tok_dir / "merges.txt").write_text("#version: 0.2\n")
    specials = {"bos_token": "</s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}
    (tok_dir / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "GPT2Tokenizer", **specials}))
    tokenizer = AutoTokenizer.from_pretrained(tok_dir)
    tokenizer.image_token = "<image>"
    torch.manual_seed(0)
    small = dict(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=1)
    config = Blip2Config(
        vision_config=dict(image_size=32, patch_size=8, **small),
        qformer_config=dict(encoder_hidden_size=32, vocab_size=100, **small),
        text_config=dict(
            model_type="opt", hidden_size=32, ffn_dim=37, num_attention_heads=4, num_hidden_layers=1,
            vocab_size=len(vocab), word_embed_proj_dim=32, max_position_embeddings=64, pad_token_id=vocab["<pad>"],
            bos_token_id=vocab["</s>"], eos_token_id=vocab["</s>"],
        ),
        num_query_tokens=4, image_token_index=vocab["<image>"],
    )  # fmt: skip
    Blip2ForConditionalGeneration(config).save_pretrained(folder)
    # transformers >= 4.45 expands <image> into the query tokens in the processor; 4.40 (the floor) has no such option
    expand = (
        {"num_query_tokens": 4} if "num_query_tokens" in inspect.signature(Blip2Processor.__init__).parameters else {}
    )
    Blip2Processor(
        image_processor=BlipImageProcessor(size={"height": 32, "width": 32}), tokenizer=tokenizer, **expand
    ).save_pretrained(folder)
    return folder
