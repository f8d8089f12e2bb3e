#!/usr/bin/env bash
# Throughput on one GPU: ViT-B/32 at 224 px, batch 256, 1000 classes, a 6-level hierarchy, random weights.
#   bash benchmarks/gpu_bench.sh [OUT_DIR]
# Writes OUT_DIR/{bench-bf16,bench-fp32,bench-compile,bench-batch32}/report.{md,json}: every method in bf16 (with the
# reference-style step, the loaders and the projections), TeCoA in float32 (the paper's evaluation precision),
# TeCoA and HiRo compiled, and TeCoA and HiRo at 32 images per device (a global batch of 256 on 8 GPUs).
# The timeouts add up to under 10 minutes.
set -u
OUT=${1:-${OUT:-runs}}
H="python3 -m hirobust"
COMMON="model=ViT-B-32 device=cuda batch_size=256 num_classes=1000 num_levels=6"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -c "import torch, open_clip; print('torch', torch.__version__, 'open_clip', open_clip.__version__)"
timeout 240 $H bench $COMMON steps=5 warmup=2 out=$OUT/bench-bf16 2>&1 | grep -v "^WARNING"
timeout 80 $H bench $COMMON amp=off steps=3 warmup=1 "methods=[tecoa]" reference_style=false out=$OUT/bench-fp32 \
  2>&1 | grep -v "^WARNING"
timeout 160 $H bench $COMMON compile=true steps=5 warmup=3 "methods=[tecoa,hiro]" reference_style=false \
  out=$OUT/bench-compile 2>&1 | grep -v "^WARNING"
timeout 70 $H bench ${COMMON/batch_size=256/batch_size=32} steps=5 warmup=2 "methods=[tecoa,hiro]" \
  reference_style=false loader_workers=0 project=false out=$OUT/bench-batch32 2>&1 | grep -v "^WARNING"
