"""Synthetic forget / retain prompts shared by the ECO benchmarks (guard overhead, serving load test)."""

from __future__ import annotations

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
