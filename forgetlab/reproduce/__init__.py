"""``forgetlab reproduce``: both papers' headline results in one report.

``stage`` (Claim, Figure, StageResult, the stage registry), ``run`` (running and caching stages), ``render``
(Markdown, HTML, JSON), ``cli``, ``stages/`` (``grok``: cases A0-A8 and the phase diagram; ``eco``: the
unlearning bench).
"""
