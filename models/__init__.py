"""Everything that holds weights: LLM caption backends, the CLIP model, its data loader and trainer. No Beam here."""
