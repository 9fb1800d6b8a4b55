#!/usr/bin/env bash
# Run every CPU benchmark in sequence on a quiet machine and keep each log in benchmarks/results/.
# Usage: bash benchmarks/run_all.sh [name ...]
#   (names: sft dpo rlvr rlvr256 generation decontam verifiers verifier_parity ifeval_parity eval_parity)
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TULU_PROGRESS=0 PYTHONUNBUFFERED=1
mkdir -p benchmarks/results
declare -A CMD=(
  [sft]="benchmarks/sft_throughput.py"
  [dpo]="benchmarks/dpo_throughput.py"
  [rlvr]="benchmarks/rlvr_throughput.py"
  [rlvr256]="benchmarks/rlvr_throughput.py --max-new-tokens 256"
  [generation]="benchmarks/generation_throughput.py --ablation"
  [decontam]="benchmarks/decontam_throughput.py"
  [verifiers]="benchmarks/verifier_throughput.py --n 300"
  [verifier_parity]="benchmarks/verifier_parity.py"
  [ifeval_parity]="benchmarks/ifeval_parity.py"
  [eval_parity]="benchmarks/eval_parity_lmeval.py --limit 60 --output benchmarks/results/eval_parity_out"
)
names=("$@")
[ ${#names[@]} -eq 0 ] && names=(sft dpo rlvr rlvr256 generation decontam verifiers verifier_parity ifeval_parity eval_parity)
for n in "${names[@]}"; do
  log="benchmarks/results/cpu_${n}.log"
  { echo "# $PY ${CMD[$n]}"; echo "# $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores, $(uname -m)"; } > "$log"
  start=$(date +%s)
  $PY ${CMD[$n]} >> "$log" 2>&1
  rc=$?
  echo "# rc=$rc, $(( $(date +%s) - start ))s" >> "$log"
  echo "$n: rc=$rc ($(( $(date +%s) - start ))s) -> $log"
done
