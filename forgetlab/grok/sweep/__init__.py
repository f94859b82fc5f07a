"""Resumable sweeps of grok runs: a TOML spec expands into runs (``spec``), batches of same-shape runs train on
a backend (``backends``: in process, worker processes, Ray), each finished run lands in a store (``store``),
``run`` drives it all, and ``plots`` draws phase diagrams and training dynamics from a finished store."""
