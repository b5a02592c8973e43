"""`medcorpus build FILE`: a whole build (sources, curation, training, evaluation) declared in one YAML file.

- `marked_yaml`: the file as plain values that remember their line, for errors that name the line;
- `spec`: the file's schema, checked, turned into steps, each an argv for an existing command;
- `command_options`: a step's options checked against that command's own argparse definition;
- `fingerprint`: what identifies a step's inputs and outputs;
- `state`: the record of each step's last run (`<out>/build-state.json`);
- `plan`: which steps run, which are up to date, and why;
- `execute`: running the plan, one command at a time, through `pipelines.cli.main`.
"""
