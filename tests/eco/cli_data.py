"""Small synthetic inputs for the `forgetlab eco` CLI tests: a forget target, benign prompts, MC fit items."""

import json
from pathlib import Path

FORGET_TEMPLATES = [
    "Who is Zorblax Quint?", "Where was Zorblax Quint born?", "What books did Zorblax Quint write?",
    "Tell me about the author Zorblax Quint.", "When did Zorblax Quint publish the first novel?",
    "What awards has Zorblax Quint won?", "Who were the parents of Zorblax Quint?",
    "Which genre does Zorblax Quint write in?", "Is Zorblax Quint married?", "What is Zorblax Quint known for?",
    "Describe the childhood of Zorblax Quint.", "What city does Zorblax Quint live in?",
]
RETAIN_TEMPLATES = [
    "What is the capital of {c}?", "How do I bake {f} bread?", "Explain how {t} works.",
    "What is the population of {c}?", "Give me a recipe with {f}.", "Why is {t} important?",
]
FILL = {"c": ["France", "Peru", "Japan", "Kenya", "Chile", "Norway", "Egypt", "Canada", "India", "Spain"],
        "f": ["rye", "corn", "banana", "garlic", "oat", "potato", "walnut", "pumpkin", "olive", "honey"],
        "t": ["photosynthesis", "a compiler", "gravity", "the internet", "a vaccine", "a rainbow", "a battery",
              "an engine", "a tide", "a volcano"]}


def retain_prompts() -> list[str]:
    out = []
    for t in RETAIN_TEMPLATES:
        key = t[t.index("{") + 1]
        out += [t.format(**{key: v}) for v in FILL[key]]
    return out


def forget_prompts() -> list[str]:
    return FORGET_TEMPLATES + [p.replace("Zorblax Quint", "Z. Quint") for p in FORGET_TEMPLATES]


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_inputs(root: Path) -> dict[str, Path]:
    root.mkdir(parents=True, exist_ok=True)
    fit = [{"prompt": f"Zorblax Quint wrote book {i}. Its color is", "choices": [" red", " blue", " green", " gold"],
            "answer": i % 4} for i in range(8)]
    return {"forget": write_jsonl(root / "forget.jsonl", [{"prompt": p} for p in forget_prompts()]),
            "retain": write_jsonl(root / "retain.jsonl", [{"prompt": p} for p in retain_prompts()]),
            "fit": write_jsonl(root / "fit.jsonl", fit)}
