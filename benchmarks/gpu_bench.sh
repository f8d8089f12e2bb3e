#!/usr/bin/env bash
# Throughput on one GPU: ViT-B/32 at 224 px, batch 256, 1000 classes, a 6-level hierarchy, random weights.
#   bash benchmarks/gpu_bench.sh [OUT_DIR]
# Writes OUT_DIR/{bench-bf16,bench-compile,bench-fp32}/report.{md,json}.
set -u
OUT=${1:-${OUT:-runs}}
H="python3 -m hirobust"
COMMON="model=ViT-B-32 device=cuda batch_size=256 num_classes=1000 num_levels=6"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -c "import torch, open_clip; print('torch', torch.__version__, 'open_clip', open_clip.__version__)"
timeout 300 $H bench $COMMON steps=5 warmup=2 out=$OUT/bench-bf16 2>&1 | grep -v "^WARNING"
timeout 100 $H bench $COMMON amp=off steps=3 warmup=1 "methods=[tecoa]" reference_style=false out=$OUT/bench-fp32 \
  2>&1 | grep -v "^WARNING"
timeout 200 $H bench $COMMON compile=true steps=5 warmup=3 "methods=[tecoa,hiro]" reference_style=false \
  out=$OUT/bench-compile 2>&1 | grep -v "^WARNING"
