"""Neural networks: the VQ-VAE tokenizer, the transformer and the evaluator."""
