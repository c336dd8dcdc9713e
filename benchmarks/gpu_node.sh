#!/usr/bin/env bash
# What the project runs on every GPU node it can reach (no Ray, no network needed), writing each
# report into the folder given (default ./gpu-node-results):
#   gpucheck.json   python -m kernels.gpucheck --json: every CUDA path against its CPU result
#   bench.json      suanli bench (sizes picked per device) and profile.json, the scheduler profile
#   cpu_scaling.txt the CPU feature kernel at 10M events on 1 and all threads, and Polars beside it
# Usage: bash benchmarks/gpu_node.sh [OUT_DIR]
set -u
out=${1:-gpu-node-results}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD"
py=${PYTHON:-python3}
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv >"$out/nvidia-smi.txt" 2>&1
timeout 300 "$py" -m kernels.gpucheck --json --out "$out/gpucheck.json" >/dev/null 2>"$out/gpucheck.log"
echo "gpucheck rc=$?"; tail -n 30 "$out/gpucheck.log"
timeout 150 "$py" -c "import typer; from runtime.cli.bench import bench; typer.run(bench)" \
  --out "$out/bench.json" --save-profile "$out/profile.json" >"$out/bench.log" 2>&1
echo "bench rc=$?"; tail -n 25 "$out/bench.log"
all=$(nproc)
for spec in "ours 1" "ours $all" "polars $all" "polars 1"; do
  set -- $spec
  NUMBA_NUM_THREADS=$2 POLARS_MAX_THREADS=$2 OMP_NUM_THREADS=$2 timeout 120 "$py" benchmarks/kernels.py \
    --time-one "$1" --threads "$2" --events 10000000 --repeats 2 2>>"$out/cpu_scaling.log" | tail -n 1 \
    | sed "s/^/$1 threads=$2 /" >>"$out/cpu_scaling.txt"
done
cat "$out/cpu_scaling.txt"
