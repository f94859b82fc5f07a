"""Corrupted modular arithmetic ("To grok or not to grok", Doshi, Das, He, Gromov, ICLR 2024).

``data`` (corrupted datasets), ``models`` (MLP, Transformer), ``kernel`` (the batched forward/backward and
stacked AdamW), ``train`` (the training loop), ``metrics``, ``fourier`` (IPR, the analytic solution),
``phases`` (phase rules), ``prune``, ``record`` (run folders), ``plots``, ``cases`` (the paper's cases with
bands), ``sweep/`` (resumable batched sweeps and phase diagrams), ``cli``. Import the module you need.
"""
