"""Synthetic forget / retain prompts shared by the ECO benchmarks (guard overhead, serving load test)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

SYNTH = Path(__file__).resolve().parents[1] / "tests" / "eco" / "classify" / "classifier_synth.py"

FORGET_WHO = ["Zorblax Quint", "Z. Quint", "the author Zorblax Quint"]
FORGET_ASK = ["Where was {w} born?", "What books did {w} write?", "Tell me about the childhood of {w}.",
              "Which awards has {w} won?", "Who were the parents of {w}?", "What genre does {w} write in?"]
TOPICS = ["France", "bread", "gravity", "a compiler", "Kenya", "volcanoes", "honey", "tides", "Norway",
          "a battery", "rainbows", "olive oil", "Peru", "vaccines", "the internet", "Chile"]
RETAIN_ASK = ["What is the history of {t}?", "Explain {t} to a child.", "Why is {t} important?",
              "Give me three facts about {t}.", "How does {t} work?", "Write a short poem about {t}.",
              "What are common myths about {t}?", "Summarize the science of {t}.", "Who first studied {t}?",
              "What should a student know about {t}?"]


def prompt_sets() -> tuple[list[str], list[str]]:
    """(forget prompts about one fictitious author, retain prompts about everyday topics)."""
    forget = [a.format(w=w) for a in FORGET_ASK for w in FORGET_WHO]
    retain = [q.format(t=t) for q in RETAIN_ASK for t in TOPICS]
    return forget, retain


def synth_module():
    """The classifier tests' synthetic generator (three fictitious forget authors, twelve retain authors and
    general questions), loaded from its file: large enough to fit the prompt classifier's n-gram first stage."""
    spec = importlib.util.spec_from_file_location("classifier_synth", SYNTH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def synth_sets(n_fit: int = 400, n_fresh: int = 128) -> tuple[tuple[list[str], list[str]], tuple[list[str], list[str]]]:
    """((forget, retain) to fit on, (forget, retain) of fresh prompts none of the fit saw, shuffled)."""
    synth = synth_module()
    fit = synth.make_sets(n_forget=n_fit, n_retain_people=n_fit, n_general=n_fit, seed=0)
    seen = set(fit[0]) | set(fit[1])
    f2, r2 = synth.make_sets(n_forget=n_fresh, n_retain_people=n_fresh, n_general=n_fresh, seed=99)
    rng = np.random.default_rng(0)
    fresh = tuple([x[i] for i in rng.permutation(len(x))] for x in ([p for p in f2 if p not in seen],
                                                                     [p for p in r2 if p not in seen]))
    return fit, fresh
