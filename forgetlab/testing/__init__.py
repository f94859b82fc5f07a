"""Tiny models and tokenizers built here (no hub): the unlearning bench trains on them; tests and benchmarks
guard them."""
