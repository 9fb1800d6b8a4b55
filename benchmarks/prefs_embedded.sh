#!/usr/bin/env bash
# The embedded on-policy preference run recorded in benchmarks/RESULTS.md ("On-policy preference pairs").
#   1. a small Bradley-Terry reward model (`tulu rm`) on procedural pairs: the judge;
#   2. `tulu data prefs`: 200 procedural constraint prompts (seed 0; the RM trained on seed 123 draws), pool = the embedded model at T 0.7 ("base", on-policy) and at
#      T 1.3 ("hot"), both answering every prompt, judged by that reward model;
#   3. `tulu pipeline recipes/embedded_cpu_prefs.yaml`: the pairs decontaminated, then DPO from the base model;
#      held-out implicit-reward accuracy before -> after;
#   4. a short diagnostic of the LLM judge: the embedded model judging through `tulu serve`.
# Every step resumes (caches / DONE markers), so the script can be rerun after an interruption.
set -euo pipefail
OUT=${OUT:-runs/prefs_demo}
PY=${PY:-python}
mkdir -p "$OUT"
if [ ! -d "$OUT/rm/model" ]; then
  $PY -m tulu.cli rm recipes/embedded_cpu_rm.yaml output_dir="$OUT/rm" \
      'data.mixture={"synthetic:constraints": 100, "synthetic:math": 20}' data.max_length=256
fi
$PY -m tulu.cli data prefs "$OUT/prefs" --prompts synthetic:constraints=200 \
    --model base=embedded,temperature=0.7 --model hot=embedded,temperature=1.3 \
    --models-per-prompt 2 --on-policy base --judge "rm:$OUT/rm/model" --max-tokens 64 --batch-size 32
$PY benchmarks/prefs_agreement.py "$OUT/prefs" synthetic:constraints=200
$PY -m tulu.cli pipeline recipes/embedded_cpu_prefs.yaml output_dir="$OUT/pipeline" \
    "dpo_mixture={$OUT/prefs/pairs.jsonl: 1.0}"
# 4. the LLM judge: the embedded model rates 20 prompts x 2 completions through `tulu serve`
PORT=${PORT:-8719}
$PY -m tulu.cli serve embedded --port "$PORT" --max-batch-size 16 > "$OUT/serve.log" 2>&1 &
SERVE=$!
trap 'kill $SERVE' EXIT
for _ in $(seq 120); do curl -sf "http://127.0.0.1:$PORT/health" > /dev/null && break; sleep 1; done
$PY -m tulu.cli data prefs "$OUT/prefs_llm_judge" --prompts synthetic:constraints=20 \
    --model "base=openai:embedded@http://127.0.0.1:$PORT/v1,temperature=0.7" \
    --model "hot=openai:embedded@http://127.0.0.1:$PORT/v1,temperature=1.3" \
    --models-per-prompt 2 --on-policy base --judge "openai:embedded@http://127.0.0.1:$PORT/v1" --max-tokens 96
$PY -m tulu.cli data persona "$OUT/persona.jsonl" -n 30 --generator "openai:embedded@http://127.0.0.1:$PORT/v1" \
    --max-tokens 96 --decontam
