#!/usr/bin/env bash
# All-Latent (Lemons thesis ch. 6) on toy data: a mask generator, an ISDM image generator for masks
# (trained, then finetuned with the mask dropped for classifier-free guidance), synthetic masks,
# then images painted for them. Pass a local diffusers AutoencoderKL/VQModel folder as $2 to run
# both diffusion models on its latents instead of pixels.
set -euo pipefail
OUT=${1:-all-latent-cli}
LATENT=()
if [ -n "${2:-}" ]; then LATENT=(--latent "$2"); fi

defectsynth prepare toy --out "$OUT/data" --num 240 --size 32
# 1. the mask generator (unconditional, analog-bit masks; with --latent: grey masks through the autoencoder)
defectsynth train "$OUT/data" --out "$OUT/masks" --cond none --target mask --model small \
    --batch-size 16 --lr 5e-4 --max-steps 1200 "${LATENT[@]}"
# 2. the image generator for masks (SDM's SPADE UNet, L_hybrid), then ISDM's finetuning with drop rate 0.2
defectsynth train "$OUT/data" --out "$OUT/isdm" --cond mask --target image --model small \
    --batch-size 16 --lr 5e-4 --max-steps 1200 "${LATENT[@]}"
defectsynth train "$OUT/data" --out "$OUT/isdm-ft" --cond mask --target image --model small \
    --batch-size 16 --lr 5e-4 --max-steps 400 --finetune "$OUT/isdm" --drop-rate 0.2 "${LATENT[@]}"
# 3. synthetic masks, then images for them (ISDM defaults: 300 rescaled steps, guidance 1.5)
defectsynth sample "$OUT/masks" --num 1000 --scheduler dpm --steps 20 --out "$OUT/masks-synth"
defectsynth sample "$OUT/isdm-ft" --conditions "$OUT/masks-synth" --out "$OUT/synthetic"
# the semantic-image-synthesis variant: real training masks, randomly warped
defectsynth sample "$OUT/isdm-ft" --conditions "$OUT/data:train" --num 1000 --mask-augment --out "$OUT/synthetic-aug"
