"""Apache Beam wiring of connectors, curation and models, and the `medcorpus` CLI."""
