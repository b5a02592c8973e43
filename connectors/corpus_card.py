"""The corpus README: a HuggingFace dataset card whose YAML `configs` make
`datasets.load_dataset("<corpus dir>")` open the shards offline, with licence guidance.

The YAML also carries `dataset_info` (split sizes and bytes). Besides letting `datasets` check the
split sizes, it keys `datasets`' cache: without it, two corpus folders with the same name share one
cache entry (the hash covers the YAML, whose `data_files` patterns are the same for every corpus), and
the second folder silently loads the first one's rows.
"""

from __future__ import annotations

from typing import Any

from connectors import fs
from connectors.corpus import CARD, DATA_DIR, REJECTS_DIR

SPLIT_ORDER = ("train", "validation", "test")

LICENSE_GUIDANCE = {
    "commercial": (
        "CC0, CC BY, CC BY-SA or CC BY-ND. Reuse is allowed for any purpose. Attribute each image to its "
        "article (authors, title, journal, year, DOI: the `doi`, `pmcid` and `title` columns hold them), link "
        "the licence, and say that images were resized and re-encoded. CC BY-SA derivatives must be shared "
        "alike; CC BY-ND material must not be distributed modified (resized copies may count as modified: check "
        "before redistributing)."
    ),
    "noncommercial": (
        "CC BY-NC, CC BY-NC-SA or CC BY-NC-ND. Non-commercial use only (research models trained on them may "
        "inherit that restriction: check with your counsel), with the same attribution as above."
    ),
    "other": (
        "No Creative Commons code in PMC's metadata: public-domain works (for example US government articles), "
        "publisher-specific licences and articles whose licence is unknown. Read each article's own licence "
        "statement before reuse; exclude this group with `--license commercial` or `noncommercial`."
    ),
}


def render_card(manifest: dict[str, Any], title: str) -> str:
    splits = [s for s in SPLIT_ORDER if manifest["outputs"]["by_split"].get(s)]
    splits += sorted(s for s in manifest["outputs"]["by_split"] if s not in SPLIT_ORDER)
    lines = ["---", "configs:", "- config_name: default", "  default: true", "  data_files:"]
    for split in splits:
        lines += [f"  - split: {split}", f"    path: {DATA_DIR}/{split}-*.parquet"]
    if not splits:
        lines += ["  - split: train", f"    path: {DATA_DIR}/*.parquet"]
    if manifest["rejects"]["total"]:
        lines += [
            "- config_name: rejects",
            "  data_files:",
            "  - split: train",
            f"    path: {REJECTS_DIR}/*.parquet",
        ]
    sizes = manifest["outputs"]["bytes_by_split"]
    lines += ["dataset_info:", "- config_name: default", f"  download_size: {sum(sizes.values())}"]
    lines += ["  splits:"] if splits else []
    for split in splits:
        lines += [
            f"  - name: {split}",
            f"    num_bytes: {sizes[split]}",
            f"    num_examples: {manifest['outputs']['by_split'][split]}",
        ]
    if manifest["rejects"]["total"]:
        lines += [
            "- config_name: rejects",
            f"  download_size: {manifest['rejects']['bytes']}",
            "  splits:",
            "  - name: train",
            f"    num_bytes: {manifest['rejects']['bytes']}",
            f"    num_examples: {manifest['rejects']['total']}",
        ]
    lines += ["---", "", f"# {title}", ""]
    for warning in manifest.get("warnings", []):
        lines += [f"> **Warning:** {warning}", ""]
    lines += [
        f"Built by medcorpus (`{manifest['pipeline']}`), corpus schema {manifest['schema_version']}.",
        "",
        "```python",
        "import datasets",
        'ds = datasets.load_dataset("<this folder>")           # image column decodes to PIL',
        'rejects = datasets.load_dataset("<this folder>", "rejects")',
        "```",
        "",
        "| split | pairs |",
        "|---|---|",
    ]
    lines += [f"| {s} | {manifest['outputs']['by_split'][s]} |" for s in splits]
    lines += ["", f"Rejected inputs: {manifest['rejects']['total']} (reasons in `manifest.json`).", ""]
    groups = manifest["outputs"].get("license_groups")
    if groups:
        lines += ["## Licences", "", "| licence group | pairs |", "|---|---|"]
        lines += [f"| {g} | {n} |" for g, n in sorted(groups.items())]
        lines += [""]
        for group in sorted(groups):
            if group in LICENSE_GUIDANCE:
                lines += [f"- **{group}**: {LICENSE_GUIDANCE[group]}"]
        lines += [""]
    attribution = manifest.get("attribution")
    if attribution:
        lines += ["## Attribution", "", attribution, ""]
    return "\n".join(lines)


def write_card(out: str, manifest: dict[str, Any], title: str) -> None:
    filesystem, path = fs.filesystem(out)
    with filesystem.open(fs.join(path, CARD), "w") as f:
        f.write(render_card(manifest, title))
