"""vq-replicate: reproductions of Wasserstein VQ (arXiv 2506.15078) and Deferred Quantization (arXiv 2603.17052)."""
