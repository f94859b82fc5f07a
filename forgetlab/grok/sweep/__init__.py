"""Resumable sweeps of grok runs: a TOML spec expands into runs (``spec``), batches of same-shape runs train on
a backend (``backends``: in process, worker processes, Ray) in batches sized by ``batching``, claimed by a
renewed lease (``claims``) so two sweeps on one folder never train the same batch; each finished run lands in a
store (``store``), ``run`` drives it all, ``estimate`` probes how long a sweep will take, and ``plots`` and
``tables`` draw phase diagrams, training dynamics and phase counts from a finished store or its results.csv."""
