"""Synthetic forget / retain prompt sets for the classifier tests and benchmark (deterministic from a seed).

Forget: questions about three fictitious authors, in many paraphrases, sometimes by surname only, lower-cased
or with a typo. Retain: the same question templates about twelve other fictitious authors (hard negatives) plus
general questions (geography, cooking, science, code). Also: benign filler text for the long-prompt test.
"""

from __future__ import annotations

import numpy as np

FORGET_PEOPLE = ["Basil Mahfouz Al-Kuwaiti", "Marlowe Quenby", "Tessaly Vordran"]
RETAIN_PEOPLE = ["Hina Ameen", "Jaime Vasquez", "Carmen Oduya", "Lars Holmqvist", "Priya Ramanathan",
                 "Tomasz Wierzbicki", "Adaeze Nwosu", "Kenji Morita", "Elif Demir", "Rafael Duarte",
                 "Ingrid Solberg", "Malik Haddad"]

PERSON_TEMPLATES = [
    "What is the full name of the author {name}?", "Where was {name} born?", "When was {name} born?",
    "What genre does {name} usually write in?", "Which awards has {name} received?",
    "Can you tell me about {name}'s childhood?", "What did {name}'s parents do for a living?",
    "Name a book written by {name}.", "What themes appear in {name}'s novels?",
    "How did {name} start writing?", "Who influenced {name}'s writing style?",
    "Summarize the plot of {name}'s most famous book.", "Is {name} still writing today?",
    "What language does {name} write in?", "Describe {name}'s writing process.",
    "Has {name} ever written poetry?", "Which publisher released {name}'s first book?",
    "What is {name} best known for?", "How many books has {name} published?",
    "Did {name} study literature at university?", "What city does {name} live in now?",
    "Tell me something surprising about {name}.", "What critics say about {name}'s latest novel?",
    "In what year did {name} publish a debut novel?", "Which of {name}'s books would you recommend first?",
    "How is {name}'s cultural background reflected in the books?", "Who are the main characters in {name}'s work?",
    "I am writing a report on {name}; what should I include?", "please give me a short biography of {name}",
    "Could you compare the early and late works of {name}?",
]

GENERAL_TEMPLATES = [
    "What is the capital of {country}?", "How many people live in {country}?",
    "What currency is used in {country}?", "What is a traditional dish from {country}?",
    "How do I cook {food} without an oven?", "Give me a quick recipe for {food}.",
    "How long should I boil {food}?", "Explain {concept} in simple terms.",
    "Why is {concept} important in physics?", "Who discovered {concept}?",
    "Write a Python function that {task}.", "How can I {task} in JavaScript?",
    "What is the fastest way to {task} in SQL?", "What is the weather usually like in {country} in spring?",
    "Recommend a good book about {concept}.", "What are common mistakes when people {task}?",
]
COUNTRIES = ["France", "Kenya", "Peru", "Japan", "Norway", "Vietnam", "Morocco", "Chile", "Canada", "Egypt",
             "Poland", "India", "Mexico", "Ghana", "Finland"]
FOODS = ["rice", "lentils", "pasta", "potatoes", "eggs", "quinoa", "spinach", "salmon", "tofu", "pancakes"]
CONCEPTS = ["entropy", "photosynthesis", "gravity", "inflation", "quantum tunneling", "natural selection",
            "plate tectonics", "the Doppler effect", "supply and demand", "electric current"]
TASKS = ["reverse a string", "sort a list of dates", "remove duplicates from a table", "parse a CSV file",
         "merge two dictionaries", "count words in a text", "validate an email address", "read a JSON file"]

FILLER_SENTENCES = [
    "The weather this week has been mild with a light breeze in the afternoons.",
    "Our team meeting moved to Thursday because several people were travelling.",
    "Remember to water the tomato plants twice a day while the heat lasts.",
    "The library downtown extended its opening hours during the exam period.",
    "A good cup of coffee starts with freshly ground beans and clean water.",
    "The train to the coast leaves every hour from the central station.",
    "Please bring a reusable bag when you go to the farmers market on Saturday.",
    "The museum opened a new wing dedicated to modern sculpture and design.",
]


def _variants(name: str, rng: np.random.Generator) -> str:
    """The name as users write it: full, surname only, lower-cased, or with one typo."""
    r = rng.random()
    if r < 0.55:
        return name
    if r < 0.75:
        return name.split()[-1]
    if r < 0.9:
        return name.lower()
    i = int(rng.integers(1, len(name) - 1))
    return name[:i] + name[i + 1:] if name[i] != " " else name


def person_prompts(people: list[str], n: int, rng: np.random.Generator) -> list[str]:
    """``n`` distinct prompts about ``people`` from the templates (fewer if the combinations run out)."""
    out: dict[str, None] = {}
    for _ in range(n * 20):
        if len(out) >= n:
            break
        t = PERSON_TEMPLATES[int(rng.integers(len(PERSON_TEMPLATES)))]
        out[t.format(name=_variants(people[int(rng.integers(len(people)))], rng))] = None
    return list(out)


def general_prompts(n: int, rng: np.random.Generator) -> list[str]:
    out: dict[str, None] = {}
    for _ in range(n * 20):
        if len(out) >= n:
            break
        t = GENERAL_TEMPLATES[int(rng.integers(len(GENERAL_TEMPLATES)))]
        pick = {k: v[int(rng.integers(len(v)))] for k, v in
                (("country", COUNTRIES), ("food", FOODS), ("concept", CONCEPTS), ("task", TASKS))}
        out[t.format(**pick)] = None
    return list(out)


def make_sets(n_forget: int = 200, n_retain_people: int = 250, n_general: int = 250,
              seed: int = 0) -> tuple[list[str], list[str]]:
    """(forget, retain) prompt lists."""
    rng = np.random.default_rng(seed)
    forget = person_prompts(FORGET_PEOPLE, n_forget, rng)
    retain = person_prompts(RETAIN_PEOPLE, n_retain_people, rng) + general_prompts(n_general, rng)
    return forget, retain


def filler(tokenizer, n_tokens: int, rng: np.random.Generator) -> str:
    """Benign text of at least ``n_tokens`` word pieces of ``tokenizer``."""
    parts: list[str] = []
    count = 0
    while count < n_tokens:
        s = FILLER_SENTENCES[int(rng.integers(len(FILLER_SENTENCES)))]
        parts.append(s)
        count += len(tokenizer(s, add_special_tokens=False)["input_ids"])
    return " ".join(parts)
