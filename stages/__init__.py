"""The pipeline's stages: one module per DVC stage, each reading params, calling the
vqgen library and writing its outputs; `stages.cli` makes them the `vqgen` command."""
