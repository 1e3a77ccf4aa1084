#!/usr/bin/env bash
# The one script a session with a GPU runs (no Node needed; nvcc, CMake, ninja and python3 with a CUDA
# PyTorch): builds medgym_cuda_check for this GPU's architecture, runs the CUDA-vs-CPU checks (kernels,
# row ops, and the GPU policy against the CPU policy: suites rowops / policy), the benchmarks (kernels,
# then the `base` policy: training step tokens/s and MFU, forward, decode at batch 64, a GRPO step),
# and the PyTorch eager peer (bench/peers/cuda_torch.py), then prints the ratio and policy tables.
#   bash scripts/gpu-check.sh            (from the repository root; ~3-5 minutes on an H100)
# Writes into $OUT (default ./gpu-out): cuda-check.{json,txt}, cuda-bench.{json,txt},
# torch-bench.{json,txt}, ratios.txt, nvidia-smi.txt, build.log. CHECK_TIMEOUT, BENCH_TIMEOUT and
# TORCH_TIMEOUT (seconds) cap each stage. Exit code: the checker's (0 all checks passed, 1 a check
# failed, 77 no usable GPU), or 3 when the build failed.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-./gpu-out}"
mkdir -p "$OUT"
t0=$(date +%s)
stamp() { echo "== [$(( $(date +%s) - t0 )) s] $*"; }

nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || true
arch="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d '. ')"
[ -n "$arch" ] || arch="80;90"
nvcc_flag=()
if ! command -v nvcc > /dev/null 2>&1 && [ -x /usr/local/cuda/bin/nvcc ]; then
  nvcc_flag=(-DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc)
fi
gen=()
command -v ninja > /dev/null 2>&1 && gen=(-G Ninja)

stamp "configure + build medgym_cuda_check for sm_$arch"
if ! { cmake -S . -B build/gpu-check "${gen[@]}" "${nvcc_flag[@]}" -DCMAKE_BUILD_TYPE=Release \
         "-DCMAKE_CUDA_ARCHITECTURES=$arch" -DMEDGYM_CUDA_CHECK=ON &&
       cmake --build build/gpu-check --target medgym_cuda_check -j "$(nproc)"; } > "$OUT/build.log" 2>&1; then
  tail -50 "$OUT/build.log"
  echo "build failed (full log: $OUT/build.log)"
  exit 3
fi
bin=build/gpu-check/medgym_cuda_check

stamp "checks (CUDA kernels vs their CPU twins; the GPU policy vs the CPU policy)"
timeout "${CHECK_TIMEOUT:-300}" "$bin" --check --json "$OUT/cuda-check.json" 2>&1 | tee "$OUT/cuda-check.txt"
check_rc=${PIPESTATUS[0]}
if [ "$check_rc" = 77 ]; then
  echo "no usable GPU: nothing was run"
  exit 77
fi

if grep -q "GEMM: cuBLAS" "$OUT/cuda-check.txt"; then
  stamp "the built-in GEMM kernels too (MEDGYM_CUBLAS=0): check and benchmark"
  MEDGYM_CUBLAS=0 timeout "${CHECK_TIMEOUT:-300}" "$bin" --check --only gemm 2>&1 | tee "$OUT/cuda-check-builtin-gemm.txt" |
    grep -E "FAIL|checks,|GEMM:"
  { MEDGYM_CUBLAS=0 timeout "${BENCH_TIMEOUT:-420}" "$bin" --bench --only gemm
    MEDGYM_CUBLAS=0 timeout "${BENCH_TIMEOUT:-420}" "$bin" --bench --only policy_train; } > "$OUT/cuda-bench-builtin-gemm.txt" 2>&1
fi

stamp "benchmarks (medgym CUDA kernels, then the policy)"
timeout "${BENCH_TIMEOUT:-420}" "$bin" --bench --json "$OUT/cuda-bench.json" 2>&1 | tee "$OUT/cuda-bench.txt"

stamp "benchmarks (PyTorch eager peer)"
timeout "${TORCH_TIMEOUT:-240}" python3 bench/peers/cuda_torch.py "$OUT/torch-bench.json" 2>&1 | tee "$OUT/torch-bench.txt"

stamp "ratios"
python3 - "$OUT/cuda-bench.json" "$OUT/torch-bench.json" <<'PY' 2>&1 | tee "$OUT/ratios.txt"
import json, sys
def load(p):
    try:
        with open(p) as f:
            return json.load(f)
    except Exception as e:
        print(f"(cannot read {p}: {e})")
        return {"bench": []}
ours, torch_ = load(sys.argv[1]), load(sys.argv[2])
peer = {(r["name"], r["shape"]): r["ms"] for r in torch_.get("bench", [])}
print(f"{'kernel':40s} {'shape':26s} {'medgym ms':>10s} {'torch ms':>10s} {'speedup':>8s}  roofline")
for r in ours.get("bench", []):
    t = peer.get((r["name"], r["shape"]))
    roof = "" if r["roof"] == "-" else f"{100 * (r['frac_of_peak'] or 0):5.1f}% of {r['roof']} peak"
    ratio = f"{t / r['ms']:7.2f}x" if t and r["ms"] else "       -"
    tstr = f"{t:10.3f}" if t else "         -"
    print(f"{r['name']:40s} {r['shape']:26s} {r['ms']:10.3f} {tstr} {ratio}  {roof}")
print("targets (issue 7): memory-bound >= 85% of HBM peak; logprob_grpo_fwd_bwd >= 10x torch eager;"
      " fused_linear_logprob_bf16 >= 60% of bf16 peak")
pol = [r for r in ours.get("bench", []) if r["name"].startswith("policy_")]
if pol:
    print(f"\n{'policy (base preset)':40s} {'shape':34s} {'ms':>10s} {'tokens/s':>12s}  MFU")
    for r in pol:
        mfu = f"{100 * (r['frac_of_peak'] or 0):5.1f}% of {r['roof']} peak" if r["roof"] in ("bf16", "fp32") else ""
        print(f"{r['name']:40s} {r['shape']:34s} {r['ms']:10.3f} {r.get('tokens_per_s') or 0:12.0f}  {mfu}")
    print("target (issue 7): policy_train_step bf16 MFU >= 40%; policy_grpo_step: end-to-end GRPO step time")
PY
stamp "done: results in $OUT"
exit "$check_rc"
