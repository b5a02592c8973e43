#!/usr/bin/env bash
# The demo behind `make demo`: every capability once, on the bundled sample data, into $DEMO_OUT, as one
# `medcorpus build` of sample_data/demo.yaml (which declares the steps; a rerun skips what is up to date):
#   1. PMC Open Access: the Cloud Service layout and legacy packages to figure-caption corpora
#   2. a classification dataset (DICOM, NIfTI, PNG, JPEG) to captioned pairs (template captions)
#   3. both corpora deduplicated together (exact, pHash, MiniLM caption embeddings)
#   4. UMLS concepts and modality labels with the bundled knowledge base, and a concept-balanced subset
#   5. a tiny BiomedCLIP-like model trained on the tagged corpus, evaluated and exported
# then what dedupe removed, and the corpus read back with `datasets.load_dataset`.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${DEMO_OUT:-out/demo}"
MC=.venv/bin/medcorpus
step() { printf '\n== %s\n' "$*"; }

step "medcorpus build sample_data/demo.yaml --out $OUT"
$MC build sample_data/demo.yaml --out "$OUT"

step "pairs dedupe took out of $OUT/corpus"
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
print("eval of the export on the balanced corpus:", json.dumps(json.load(open(f"{out}/eval.json")))[:400])
EOF
printf '\nDone: corpora, manifests and the trained model are under %s\n' "$OUT"
