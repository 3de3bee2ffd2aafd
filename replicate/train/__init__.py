"""Training: the atomic setting (atomic.py); the tokenizer loop and the deferred schedule arrive later."""
