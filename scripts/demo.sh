#!/usr/bin/env bash
# The demo behind `make demo`: every capability once, on the bundled sample data, into $DEMO_OUT.
#   1. PMC Open Access: the Cloud Service layout and legacy packages to figure-caption corpora
#   2. a classification dataset (DICOM, NIfTI, PNG, JPEG) to captioned pairs (vLLM when .venv-llm exists)
#   3. UMLS concepts and modality labels with the bundled knowledge base, and a concept-balanced subset
#   4. a tiny BiomedCLIP-like model trained on both corpora, evaluated and exported
#   5. the corpus read back with `datasets.load_dataset`
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${DEMO_OUT:-out/demo}"
MC=.venv/bin/medcorpus
mkdir -p "$OUT"
step() { printf '\n== %s\n' "$*"; }

step "PMC Cloud Service layout -> $OUT/pmc"
$MC ingest pmc --source sample_data/pmc-cloud --out "$OUT/pmc" --splits 60/20/20 --overwrite

step "PMC legacy packages, commercially reusable licences only -> $OUT/pmc-legacy"
$MC ingest pmc --source sample_data/pmc-legacy --out "$OUT/pmc-legacy" --license commercial --overwrite

CLASSIFICATION=(--dataset sample_data/classification/manifest.csv --card sample_data/classification/card.yaml
  --out "$OUT/classification" --splits 50/25/25 --overwrite)
MODEL=.cache/models/smollm2-135m-instruct
if [[ -x .venv-llm/bin/medcorpus && -f "$MODEL/config.json" ]]; then
  step "classification dataset, captions from vLLM (SmolLM2-135M on CPU) -> $OUT/classification"
  .venv-llm/bin/medcorpus ingest classification "${CLASSIFICATION[@]}" --llm vllm --model "$MODEL" \
    --captions-per-class 4 --cache-dir "$OUT/.llm-cache"
else
  step "classification dataset, template captions (run scripts/setup_llm_env.sh for vLLM) -> $OUT/classification"
  $MC ingest classification "${CLASSIFICATION[@]}" --cache-dir none
fi

step "UMLS concepts and modality labels (bundled knowledge base)"
$MC tag --in "$OUT/pmc" --out "$OUT/pmc-tagged" --overwrite
$MC tag --in "$OUT/classification" --out "$OUT/classification-tagged" --overwrite
$MC balance --in "$OUT/pmc-tagged" --out "$OUT/pmc-balanced" --max-per-concept 3 --overwrite

step "pretrain the tiny preset on both corpora, evaluate, export -> $OUT/run"
rm -rf "$OUT/run"
$MC train --corpus "$OUT/pmc-tagged" --corpus "$OUT/classification-tagged" --preset tiny --out "$OUT/run" \
  --max-steps 20 --batch-size 8 --workers 2 --eval-split test,validation \
  --zeroshot sample_data/classification/manifest.csv

step "query the corpus with datasets.load_dataset"
.venv/bin/python - "$OUT" <<'EOF'
import json
import sys

import datasets

out = sys.argv[1]
pmc = datasets.load_dataset(f"{out}/pmc-tagged")
print(pmc)
row = pmc["train"][0]
print("first pair:", row["id"], row["image"].size, row["modality"], [c["name"] for c in row["concepts"]][:5])
print("caption:", row["caption"][:160])
cls = datasets.load_dataset(f"{out}/classification-tagged", split="train")
print("classification pair:", cls[0]["id"], cls[0]["captions"][:2])
print("eval:", json.dumps(json.load(open(f"{out}/run/eval.json")), indent=1)[:800])
EOF
printf '\nDone: corpora, manifests and the trained model are under %s\n' "$OUT"
