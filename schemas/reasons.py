"""Every reason code medcorpus writes or prints, with a line of meaning: the one registry.

`REJECT_REASONS` are the codes of reject rows and of `removed` counts in manifests (an input that did
not become a pair, and why); `ERROR_REASONS` are the codes of command errors (`medcorpus X: error:
[code] ...`, exit status 2). A test scans the source for codes that are not here, and the README's
table is generated from this module: `python -m schemas.reasons --update-readme`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

REJECT_REASONS: dict[str, str] = {
    # PMC listing and article packages
    "pmcid_not_found": "a PMCID asked for with --pmcids is not in the source",
    "license_excluded": "the article's licence is outside the --license choice",
    "retracted": "PMC marks the article as retracted (--include-retracted keeps it)",
    "not_open_access": "the article is not in PMC's Open Access Subset",
    "superseded_version": "a newer version of the article is kept (--all-versions keeps every version)",
    "not_requested": "the article is not among the --pmcids asked for",
    "over_limit": "beyond --limit",
    "metadata_missing": "the article has no PMC metadata file",
    "metadata_invalid": "the PMC metadata file is not valid JSON or lacks required fields",
    "md5_mismatch": "a file's bytes do not match the md5 PMC lists for it",
    "file_missing": "a file the article lists does not exist",
    "file_too_large": "a file is larger than the cap on what is read",
    "fetch_failed": "a file could not be read (network or storage error)",
    "package_missing": "the legacy tar.gz package does not exist",
    "package_corrupt": "the legacy package is not a readable tar.gz",
    "package_too_large": "the legacy package is larger than the cap",
    "tar_path_unsafe": "a tar member has an absolute path, '..', or a link out of the package",
    "xml_missing": "the package holds no JATS XML",
    "xml_ambiguous": "the package holds several XML files and none is clearly the article",
    "xml_malformed": "the XML does not parse",
    "xml_forbidden": "the XML declares entities or a DTD subset (refused: entity expansion attacks)",
    "xml_not_jats": "the XML is not a JATS/NLM article",
    # figures and images
    "no_graphic": "a figure or table without an image (a video-only figure, an empty graphic)",
    "image_missing": "no image file for the figure's graphic, or the dataset's image path does not exist",
    "image_read": "the image file could not be read (a storage or network error)",
    "image_decode": "the image bytes do not decode",
    "image_unsupported": "an image format or pixel layout medcorpus does not convert",
    "image_too_large": "more pixels (or bytes) than the decompression-bomb cap",
    "image_too_small": "a side shorter than --min-side",
    "dicom_decode": "the DICOM file does not parse",
    "dicom_no_pixels": "the DICOM file holds no pixel data",
    "dicom_codec_missing": "a compressed DICOM transfer syntax without its decoder (install the dicom-codecs extra)",
    "dicom_burned_in_annotation": "the DICOM file declares burned-in annotations (identifying text in the pixels)",
    "nifti_decode": "the NIfTI/MGH/MINC volume does not load",
    "volume_timepoint": "--timepoint is outside the volume's time axis",
    # classification datasets
    "path_missing": "a manifest row without a path",
    "path_outside_dataset": "a manifest path that is absolute, a URL, or climbs out of the dataset root",
    "label_missing": "no label for the image (or a file outside any class folder)",
    "label_invalid": "a label column holds something other than 1, 0, -1 or empty",
    "split_unknown": "a split value that is not train / validation / test (or an alias)",
    "duplicate_sample": "a sample listed twice, or two files with the same name",
    "manifest_row_malformed": "a manifest row that does not parse",
    "card_unknown_class": "a label the dataset card does not describe",
    "caption_none": "every caption written for the image's label set was rejected",
    "caption_empty": "the caption is empty",
    "caption_truncated": "the LLM hit its token limit",
    "caption_invalid_json": "the LLM's answer is not the JSON asked for",
    "caption_junk": "the caption is not prose (markup, repetition, instructions)",
    "caption_too_short": "the caption is shorter than the minimum",
    "caption_too_long": "the caption is longer than the maximum",
    "caption_missing_label": "the caption does not name the image's label",
    "caption_missing_modality": "the caption does not name the modality",
    "caption_other_class": "the caption names another class of the dataset",
    "caption_extra_detail": "the caption adds findings the label does not support",
    "caption_negation": "the caption negates the label",
    "caption_duplicate": "the caption repeats another of the same label set",
    "caption_llm_error": "the LLM call failed after its retries",
    # curation
    "id_missing": "a row without an id",
    "id_duplicate": "an earlier input row already had this id",
    "over_concept_cap": "balance: the pair's concepts are all at their cap",
    "duplicate": "dedupe: the pair duplicates a pair that was kept (the detail names it, the level and the similarity)",
    "eval_overlap": "dedupe: the pair's image matches an evaluation-set image (the detail names it)",
}

ERROR_REASONS: dict[str, str] = {
    "usage": "an option value that cannot be used",
    "path_missing": "a path given on the command line does not exist",
    "permission_denied": "a path cannot be read or written",
    "io_error": "reading or writing failed",
    "input_invalid": "the input cannot be used as it is (the message says why)",
    "corpus_exists": "--out already holds a corpus (pass --overwrite)",
    "corpus_incomplete": "a corpus folder without the manifest a finished run writes",
    "corpus_empty": "no rows to read",
    "output_overlaps_input": "--out is, holds or lies inside an input",
    "column_missing": "the corpus lacks a column the command needs",
    "source_unrecognised": "the PMC source is neither the Cloud Service layout nor legacy packages",
    "card_invalid": "the dataset card does not parse or lacks required fields",
    "label_conflict": "the dataset card describes a label twice",
    "semtype_unknown": "a semantic type or group that UMLS does not have",
    "kb_missing": "the knowledge base folder does not exist",
    "kb_incomplete": "the knowledge base folder lacks files",
    "kb_empty": "the knowledge base holds no concepts",
    "rrf_missing": "an RRF file of the UMLS release is missing",
    "rrf_malformed": "an RRF file does not parse",
    "dependency_missing": "an optional package the command needs is not installed",
    "extra_missing": "an extra the command needs is not installed (pip install 'medcorpus[...]')",
    "embedder_not_local": "an embedder that is not a local folder (weights are never downloaded)",
    "embedder_invalid": "an embedder folder without the model files",
    "path_not_local": "weights or a tokenizer that are not a local folder (never downloaded)",
    "weights_missing": "no weights file in the model folder",
    "model_config_missing": "no open_clip config in the model folder",
    "preset_mismatch": "the checkpoint was trained with another preset",
    "text_model_mismatch": "the text model does not fit the preset's text tower",
    "tokenizer_missing": "a transformers text tower without a tokenizer",
    "tokenizer_invalid": "the tokenizer folder does not load",
    "tokenizer_mismatch": "the tokenizer does not fit the text tower",
    "tokenizer_vocab_too_large": "the tokenizer's vocabulary is larger than the text tower's embedding",
    "precision_unknown": "a --precision the trainer does not know",
    "batch_too_large": "a batch larger than the training split can fill",
    "run_exists": "--out already holds a training run (pass --resume)",
    "checkpoint_missing": "no checkpoint to resume from",
    "checkpoint_unreadable": "the checkpoint does not load",
    "checkpoint_foreign": "the file is not a medcorpus checkpoint",
    "checkpoint_too_new": "the checkpoint was written by a newer medcorpus",
    "resume_layout_mismatch": "resuming with another number of ranks or loader workers",
    "resume_config_mismatch": "resuming with another preset, batch size, seed or data filter than the checkpoint's",
    "loader_workers_mismatch": "the data position belongs to another number of loader workers",
    "no_decodable_images": "a loader slot holds no image that decodes",
    "templates_invalid": "a zero-shot template without {} for the class name",
    "split_empty": "eval: no rows (or samples) in the split asked for",
    "llm_unreachable": "no OpenAI-compatible server answers at --server-url",
    "llm_model_unknown": "the server does not serve --model",
    "manifest_columns": "a classification manifest without a 'path' column",
    "corpus_untagged": "balance: no row of the corpus has concepts (run medcorpus tag first)",
    "build_file_invalid": "build: the build file does not parse or breaks its schema (the message names the line)",
    "build_key_unknown": "build: a key the build file's schema or the step's command does not know",
    "build_step_failed": "build: a step failed; the steps before it stay complete and are skipped on the rerun",
}


def markdown_table() -> str:
    lines = ["| code | where | meaning |", "|---|---|---|"]
    for kind, registry in (("reject", REJECT_REASONS), ("error", ERROR_REASONS)):
        lines += [f"| `{code}` | {kind} | {meaning} |" for code, meaning in registry.items()]
    return "\n".join(lines)


START, END = (
    "<!-- reason codes: generated by `python -m schemas.reasons --update-readme` -->",
    "<!-- end of reason codes -->",
)


def update_readme(path: Path) -> bool:
    """Rewrite the table between the markers; True when it changed."""
    text = path.read_text()
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    new = f"{head}{START}\n{markdown_table()}\n{END}{tail}"
    if new != text:
        path.write_text(new)
    return new != text


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--update-readme", action="store_true")
    if parser.parse_args().update_readme:
        update_readme(Path(__file__).resolve().parents[1] / "README.md")
    else:
        print(markdown_table())
