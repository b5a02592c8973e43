"""Exact and near-duplicate detection, and decontamination against evaluation sets (plain Python:
the Beam wiring is `pipelines.dedupe`)."""
