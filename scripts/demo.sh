#!/usr/bin/env bash
# The demo behind `make demo`: every capability once, on the bundled sample data, into $DEMO_OUT.
#   1. PMC Open Access: the Cloud Service layout and legacy packages to figure-caption corpora
#   2. a classification dataset (DICOM, NIfTI, PNG, JPEG) to captioned pairs (vLLM when .venv-llm exists)
#   3. both corpora deduplicated together (exact, pHash, MiniLM caption embeddings), and what it removed
#   4. UMLS concepts and modality labels with the bundled knowledge base, and a concept-balanced subset
#   5. a tiny BiomedCLIP-like model trained on the deduplicated corpus, evaluated and exported
#   6. the corpus read back with `datasets.load_dataset`
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

step "dedupe PMC and classification pairs together (exact, pHash, MiniLM captions) -> $OUT/corpus"
$MC dedupe --in "$OUT/pmc" --in "$OUT/classification" --out "$OUT/corpus" --caption-embedder bundled-minilm \
  --overwrite
.venv/bin/python - "$OUT/corpus" <<'EOF'
import json
import sys

from connectors.corpus import corpus_rows

for row in corpus_rows(sys.argv[1], "rejects"):
    if row["stage"] == "dedupe":
        detail = json.loads(row["detail"])
        print(f"removed {row['id']}: {row['reason']} of {detail.get('kept') or detail.get('eval_item')} "
              f"({detail['level']}, similarity {detail['similarity']})")
EOF

step "UMLS concepts and modality labels (bundled knowledge base)"
$MC tag --in "$OUT/corpus" --out "$OUT/corpus-tagged" --overwrite
$MC balance --in "$OUT/corpus-tagged" --out "$OUT/corpus-balanced" --max-per-concept 3 --overwrite

step "pretrain the tiny preset on the deduplicated corpus, evaluate, export -> $OUT/run"
rm -rf "$OUT/run"
$MC train --corpus "$OUT/corpus-tagged" --preset tiny --out "$OUT/run" \
  --max-steps 20 --batch-size 8 --workers 1 --eval-split test,validation \
  --zeroshot sample_data/classification/manifest.csv --zeroshot-splits 50/25/25

step "query the corpus with datasets.load_dataset"
.venv/bin/python - "$OUT" <<'EOF'
import json
import sys

import datasets

out = sys.argv[1]
corpus = datasets.load_dataset(f"{out}/corpus-tagged")
print(corpus)
pmc = corpus["train"].filter(lambda r: r["source"] == "pmc")
row = pmc[0]
print("first pair:", row["id"], row["image"].size, row["modality"], [c["name"] for c in row["concepts"]][:5])
print("caption:", row["caption"][:160])
cls = corpus["train"].filter(lambda r: r["source"] == "classification")
print("classification pair:", cls[0]["id"], cls[0]["captions"][:2])
print("eval:", json.dumps(json.load(open(f"{out}/run/eval.json")), indent=1)[:800])
EOF
printf '\nDone: corpora, manifests and the trained model are under %s\n' "$OUT"
