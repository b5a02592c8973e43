"""Sub-commands of the `medcorpus` CLI, one module each."""
