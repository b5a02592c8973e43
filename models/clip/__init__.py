"""A BiomedCLIP-like model built on open_clip, its streaming Parquet data loader, trainer, evaluation and export.

Modules, one job each: `presets` (model configs as data), `factory` (build a model from local files),
`tokenizer`, `corpus_index` (which rows, split across readers), `stream` (the DataLoader dataset),
`distributed` (process group and loss), `checkpoint`, `train`, `evaluate`, `export`, `synthetic_corpus`.
Nothing here imports Beam; torch and open_clip load only with the modules that need them.
"""
