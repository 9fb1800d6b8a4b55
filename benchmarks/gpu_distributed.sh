#!/usr/bin/env bash
# Runs `tulu sft` and `tulu dpo` through `accelerate launch` under each shipped accelerate config on a CUDA
# machine, then reloads every saved model with transformers. It checks that the distributed back ends are
# configuration over the same code; it is not a speed benchmark (see gpu_checks.py and sft_mfu_gpu.py).
#
#   bash benchmarks/gpu_distributed.sh CONFIG_DIR SFT_JSONL PREF_JSONL [NUM_PROCESSES]
#
# CONFIG_DIR holds a model config + tokenizer (e.g. SmolLM2-135M-Instruct's, without weights): the model is
# initialised at random from it, so no weights need to travel. DeepSpeed must be installed for its configs
# (they are skipped with a message otherwise). Outputs go under ${RUN_DIR:-/tmp/tulu_gpu_dist}; LAUNCHERS="fsdp
# deepspeed_zero3" runs a subset.
set -uo pipefail
cfg_dir=${1:?config dir}; sft_data=${2:?sft jsonl}; pref_data=${3:?preference jsonl}; nproc=${4:-1}
run_dir=${RUN_DIR:-/tmp/tulu_gpu_dist}
mkdir -p "$run_dir"
export TULU_PROGRESS=0 PYTHONUNBUFFERED=1
python - "$cfg_dir" "$run_dir/base" <<'PY'
import sys, torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
torch.manual_seed(0)
model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(sys.argv[1]))
model.save_pretrained(sys.argv[2]); AutoTokenizer.from_pretrained(sys.argv[1]).save_pretrained(sys.argv[2])
print(f"random base model: {sum(p.numel() for p in model.parameters()) / 1e6:.0f}M params -> {sys.argv[2]}")
PY
has_ds=$(python -c "import deepspeed" 2>/dev/null && echo 1 || echo 0)
status=0
for launcher in ${LAUNCHERS:-ddp_gpu fsdp deepspeed_zero2 deepspeed_zero3}; do
  if [[ $launcher == deepspeed* && $has_ds == 0 ]]; then echo "== $launcher: skipped (deepspeed not installed)"; continue; fi
  for stage in sft dpo; do
    out="$run_dir/$launcher-$stage"
    if [[ $stage == sft ]]; then
      args=(recipes/embedded_cpu_sft.yaml "data.mixture={\"$sft_data\": 128}" train.max_steps=6 model.name_or_path="$run_dir/base")
    else
      args=(recipes/embedded_cpu_dpo.yaml "data.mixture={\"$pref_data\": 96}" "data.self_pairs.prompts={}" train.max_steps=6 data.eval_fraction=0.2 model="$run_dir/base")
    fi
    t0=$(date +%s)
    accelerate launch --config_file "configs/accelerate/$launcher.yaml" --num_processes "$nproc" -m tulu.cli "$stage" "${args[@]}" \
      output_dir="$out" train.mixed_precision=bf16 train.checkpoint_every=3 \
      > "$out.log" 2>&1
    rc=$?
    grep -E "SFT done|DPO done|held-out|Error|error:" "$out.log" | tail -4
    if [[ $rc == 0 ]] && python -c "
import sys, torch
from transformers import AutoModelForCausalLM
m = AutoModelForCausalLM.from_pretrained(sys.argv[1])
ids = torch.tensor([[1, 2, 3, 4]])
assert torch.isfinite(m(input_ids=ids).logits).all()
print(f'reloaded {sys.argv[1]}: {sum(p.numel() for p in m.parameters()) / 1e6:.0f}M params, finite logits')
" "$out/model"; then
      echo "== $launcher $stage: OK in $(( $(date +%s) - t0 ))s"
    else
      echo "== $launcher $stage: FAILED (rc=$rc); last lines of $out.log:"; tail -25 "$out.log"; status=1
    fi
  done
done
exit $status
