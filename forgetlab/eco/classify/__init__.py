"""Deciding which prompts ECO corrupts: the prompt classifier and the forget-entity matcher.

``protocol`` (what a classifier must offer), ``prompts`` (prompt files), ``encoder`` (MiniLM sentence vectors and
token windows), ``heads`` (heads on the vectors), ``ngram`` (the cheap first stage), ``conformal`` (thresholds
with a false-positive guarantee), ``prompt`` (:class:`PromptClassifier`), ``entities`` (name mining), ``token``
(:class:`TokenClassifier`: which characters name a forget entity) and ``rule`` (:class:`FlagRule`: classifier
OR name match, the decision a guard serves).
"""
