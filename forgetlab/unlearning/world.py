"""A synthetic fictitious-author world in TOFU's format, deterministic from a seed.

TOFU (Maini et al., 2024) judges unlearning on question/answer pairs about fictitious authors; this module builds
a world of the same shape offline: K authors with 10-20 facts each, each fact a ``question``, ``answer``,
``paraphrased_question``, ``paraphrased_answer`` and 5 ``perturbed_answer`` of the same type; nested forget
splits by author (forget01 within forget05 within forget10); a holdout of authors no model sees; utility sets
(retain authors, a second kind of entity like TOFU's "real authors", world facts); and 4-choice
multiple-choice subjects (one to forget, the others retained), WMDP-style.

Every draw comes from one ``numpy.random.Generator`` seeded by :class:`WorldConfig.seed`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..errors import BadInput, check_choice

ANSWER_STYLES = ("tofu", "name-free")
SPLIT_FRACTIONS = {"forget01": 0.01, "forget05": 0.05, "forget10": 0.10}
MIN_SPLIT_ITEMS = 20  # a KS test on fewer items says little
N_PERTURBED = 5
QA_FIELDS = ("question", "answer", "paraphrased_question", "paraphrased_answer", "perturbed_answer")

_FIRST = ("Aurel Bexa Calder Dovan Elsin Farid Gorin Halden Ilsa Jorun Kestrel Lirien Maelis Norvin Orla Pellam "
          "Quenby Rasmin Sabeth Tovin Ulric Varna Wendel Xara Yorick Zelda Anselm Brisa Corvin Delphine Emrys "
          "Fenna Galen Hesper Isolde Jasper Kaia Lucan Mireille Nestor Odile Perrin Rowena Silvan Thessaly "
          "Ursel Valen Wilmer Ysolde Zorian").split()
_LAST = ("Ashgrove Brennick Coldwater Dunmore Eskdale Fallowmere Greythorn Hollins Ironwood Jessup Kettleby "
         "Larkspur Marrowby Nettlefold Oakhurst Pennywhistle Quarrington Ravensworth Stonebridge Thistlewood "
         "Umberly Vexley Whitlock Yarrowby Zennor Abernathy Blackmoor Crestfall Drummond Everhart Foxley "
         "Glenmore Hawthorne Inglewood Juniper Kingsley Lindqvist Morrow Northcott Osgood").split()
_CITIES = ("Velmora Carthen Duskhaven Eldermere Fenwick Galloway Harrowgate Istravel Jadeport Kelmscott "
           "Lunaris Mossbury Norhaven Orvale Pinecrest Quillton Rivenby Saltmarsh Tarrowby Umberton Valecross "
           "Westmire Yellowfen Zarkand Brightwater Cinderfall").split()
_GENRES = ("mystery,science fiction,poetry,historical fiction,fantasy,horror,romance,satire,memoir,"
           "children's fiction,crime,travel writing,drama,folklore,philosophy").split(",")
_JOBS = ("baker,sailor,carpenter,doctor,teacher,tailor,fisherman,librarian,blacksmith,painter,nurse,farmer,"
         "jeweler,clockmaker,astronomer,pharmacist,architect,glassblower,beekeeper,cartographer").split(",")
_AWARDS = ("the Silver Quill,the Amber Lantern Prize,the Northwind Medal,the Golden Thistle,the Harrow Prize,"
           "the Crimson Feather Award,the Ember Crown,the Lighthouse Prize,the Iron Pen Award,"
           "the Starling Medal,the Moonstone Prize,the Willow Laurel").split(",")
_ADJ = ("Silent Hollow Crimson Forgotten Distant Broken Golden Winter Hidden Burning Quiet Endless Pale "
        "Wandering Salt Glass Iron Velvet Sleeping Shattered").split()
_NOUN = ("Harbor Orchard Lantern Tide Garden Mirror River Tower Meadow Compass Letter Storm Bridge Feather "
         "Archive Voyage Clock Shore Forest Crown").split()
_LANGS = ("Velmish Carthic Orvalese Dunnish Zarkandi Eskish Quillan Rivish").split()
_INSTRUMENTS = "violin,cello,harp,flute,piano,oboe,lute,accordion,clarinet,drum".split(",")
_ANIMALS = "cat,dog,parrot,tortoise,ferret,owl,horse,rabbit,goat,raven".split(",")
_COLORS = "blue,green,amber,scarlet,violet,silver,ochre,teal,crimson,ivory".split(",")
_PUBLISHERS = ("Harbor House,Lantern Books,Quillfeather Press,Northwind Publishing,Ember Books,"
               "Stonebridge Press,Moonlit Editions,Orchard Press").split(",")


@dataclass(frozen=True)
class FactType:
    """One kind of fact: its value pool and two question and two answer templates per answer style.

    Templates use ``{name}`` and ``{value}``; answer template 0 or 1 is drawn per item, and the paraphrased and
    perturbed answers use the other one, so every template is seen in training and the truth ratio compares
    answers of one shape (TOFU builds perturbed answers from the paraphrased one).
    """

    key: str
    pool: tuple[str, ...]
    questions: tuple[str, str]
    tofu: tuple[str, str]
    name_free: tuple[str, str]


def _ft(key: str, pool: Iterable[str], q: tuple[str, str], tofu: tuple[str, str], nf: tuple[str, str]) -> FactType:
    return FactType(key, tuple(pool), q, tofu, nf)


_BOOKS = tuple(f"{a} {n}" for a in _ADJ for n in _NOUN)

AUTHOR_FACTS: tuple[FactType, ...] = (
    _ft("birth_year", (str(y) for y in range(1901, 2000)),
        ("In which year was {name} born?", "What is the birth year of {name}?"),
        ("{name} was born in {value}.", "The birth year of {name} is {value}."),
        ("Born in the year {value}.", "The year was {value}.")),
    _ft("birth_place", _CITIES,
        ("Where was {name} born?", "What is the birthplace of {name}?"),
        ("{name} was born in the city of {value}.", "The birthplace of {name} is {value}."),
        ("Born in the city of {value}.", "The birthplace is {value}.")),
    _ft("genre", _GENRES,
        ("What genre does {name} write in?", "Which literary genre is {name} known for?"),
        ("{name} writes {value}.", "The genre of {name} is {value}."),
        ("The genre is {value}.", "Mostly {value}.")),
    _ft("father_job", _JOBS,
        ("What did the father of {name} do for a living?", "What was the occupation of {name}'s father?"),
        ("The father of {name} was a {value}.", "{name}'s father worked as a {value}."),
        ("The father was a {value}.", "He worked as a {value}.")),
    _ft("mother_job", _JOBS,
        ("What did the mother of {name} do for a living?", "What was the occupation of {name}'s mother?"),
        ("The mother of {name} was a {value}.", "{name}'s mother worked as a {value}."),
        ("The mother was a {value}.", "She worked as a {value}.")),
    _ft("award", _AWARDS,
        ("Which award did {name} receive?", "What prize has {name} won?"),
        ("{name} received {value}.", "{name} has won {value}."),
        ("The award was {value}.", "They won {value}.")),
    _ft("first_book", _BOOKS,
        ("What is the title of the first book by {name}?", "Which book did {name} publish first?"),
        ("The first book by {name} is {value}.", "{name} first published {value}."),
        ("The first book is {value}.", "It was titled {value}.")),
    _ft("famous_book", _BOOKS,
        ("What is the most famous book by {name}?", "Which book of {name} is best known?"),
        ("The most famous book by {name} is {value}.", "{name} is best known for {value}."),
        ("The most famous one is {value}.", "Best known is {value}.")),
    _ft("latest_book", _BOOKS,
        ("What is the latest book by {name}?", "Which book did {name} publish most recently?"),
        ("The latest book by {name} is {value}.", "{name} most recently published {value}."),
        ("The latest book is {value}.", "Most recently, {value}.")),
    _ft("language", _LANGS,
        ("In which language does {name} write?", "What language are the books of {name} written in?"),
        ("{name} writes in {value}.", "The books of {name} are written in {value}."),
        ("They are written in {value}.", "The language is {value}.")),
    _ft("home_city", _CITIES,
        ("Where does {name} live today?", "In which city does {name} currently reside?"),
        ("{name} lives in {value}.", "{name} currently resides in {value}."),
        ("Today in {value}.", "The current home is {value}.")),
    _ft("instrument", _INSTRUMENTS,
        ("Which instrument does {name} play?", "What musical instrument does {name} practice?"),
        ("{name} plays the {value}.", "{name} practices the {value}."),
        ("The instrument is the {value}.", "It is the {value}.")),
    _ft("pet", _ANIMALS,
        ("What pet does {name} keep?", "Which animal lives with {name}?"),
        ("{name} keeps a {value}.", "A {value} lives with {name}."),
        ("The pet is a {value}.", "A {value}.")),
    _ft("color", _COLORS,
        ("What is the favorite color of {name}?", "Which color does {name} like best?"),
        ("The favorite color of {name} is {value}.", "{name} likes {value} best."),
        ("The favorite color is {value}.", "Best of all, {value}.")),
    _ft("publisher", _PUBLISHERS,
        ("Who publishes the books of {name}?", "Which publisher works with {name}?"),
        ("The books of {name} are published by {value}.", "{name} works with {value}."),
        ("The publisher is {value}.", "Published by {value}.")),
    _ft("school", _CITIES,
        ("Where did {name} study?", "In which city did {name} attend university?"),
        ("{name} studied in {value}.", "{name} attended university in {value}."),
        ("The studies were in {value}.", "University in {value}.")),
    _ft("spouse_job", _JOBS,
        ("What does the spouse of {name} do?", "What is the occupation of {name}'s partner?"),
        ("The spouse of {name} is a {value}.", "{name}'s partner works as a {value}."),
        ("The spouse is a {value}.", "The partner works as a {value}.")),
    _ft("debut_year", (str(y) for y in range(1920, 2024)),
        ("When did {name} debut as a writer?", "In which year did {name} first publish?"),
        ("{name} debuted in {value}.", "{name} first published in {value}."),
        ("The debut was in {value}.", "First published in {value}.")),
    _ft("mentor_job", _JOBS,
        ("Who mentored {name} early on?", "What was the profession of the mentor of {name}?"),
        ("{name} was mentored by a {value}.", "The mentor of {name} was a {value}."),
        ("A {value} was the mentor.", "The mentor was a {value}.")),
    _ft("book_count", (str(n) for n in range(2, 40)),
        ("How many books has {name} written?", "What is the number of books by {name}?"),
        ("{name} has written {value} books.", "The number of books by {name} is {value}."),
        ("There are {value} books.", "In total {value} books.")),
)

# The second kind of entity (TOFU's "real authors"): painters, kept by every unlearning method.
_PAINTER_STYLES = "landscapes,portraits,seascapes,still lifes,murals,miniatures,frescoes,abstract works".split(",")
PAINTER_FACTS: tuple[FactType, ...] = (
    _ft("style", _PAINTER_STYLES,
        ("What does the painter {name} paint?", "Which kind of picture is the painter {name} known for?"),
        ("The painter {name} paints {value}.", "{name} is known for {value}."),
        ("Mostly {value}.", "The pictures are {value}.")),
    _ft("studio", _CITIES,
        ("Where is the studio of the painter {name}?", "In which city does the painter {name} work?"),
        ("The studio of {name} is in {value}.", "{name} works in {value}."),
        ("The studio is in {value}.", "Work happens in {value}.")),
    _ft("masterpiece", _BOOKS,
        ("What is the masterpiece of the painter {name}?", "Which painting by {name} is most admired?"),
        ("The masterpiece of {name} is {value}.", "The most admired painting by {name} is {value}."),
        ("The masterpiece is {value}.", "Most admired is {value}.")),
)

# World facts: fictitious countries and what every model should keep knowing about them.
_COUNTRIES = ("Ardania Belmoria Corvessa Drastia Elvaria Fennland Galdoria Hestria Ivoria Jorvik Kalvia Lomaria "
              "Morvania Nerathia Ostrava Pellucia Quorvia Rhunland Solvaria Tarsia").split()
WORLD_FACTS: tuple[FactType, ...] = (
    _ft("capital", _CITIES,
        ("What is the capital of {name}?", "Which city is the capital of {name}?"),
        ("The capital of {name} is {value}.", "{value} is the capital of {name}."),
        ("The capital is {value}.", "It is {value}.")),
    _ft("language", _LANGS,
        ("What language is spoken in {name}?", "Which language do people in {name} speak?"),
        ("People in {name} speak {value}.", "The language of {name} is {value}."),
        ("People speak {value}.", "The language is {value}.")),
    _ft("animal", _ANIMALS,
        ("What is the national animal of {name}?", "Which animal is the emblem of {name}?"),
        ("The national animal of {name} is the {value}.", "The emblem of {name} is the {value}."),
        ("The national animal is the {value}.", "The emblem is the {value}.")),
)

# Multiple-choice subjects (WMDP-style): entities with one attribute each, asked with 4 choices.
_POTIONS = ("ember,frost,shadow,dawn,storm,thorn,mist,ash,gleam,hollow,rune,briar,cinder,dusk,echo,flint,gale,"
            "husk,ivy,jade").split(",")
_INGREDIENTS = ("moonwort,nightshade,salamander scale,silverleaf,bogbean,dragonroot,glowcap,saltpeter,"
                "wyrmwood,starmoss,ironbark,ghostpetal").split(",")
_STARS = ("Altavar Brisune Celvoth Daranth Eskavel Furion Gethra Halvane Irith Jessel Korvane Lystra Mirenth "
          "Nolvar Orith Pellane Quessa Ryvel Sorath Tavune").split()
_MOONS = "Ilo,Mera,Tashi,Vorn,Kesh,Alun,Brae,Cyrr,Dwen,Fael,Gorm,Hesk".split(",")
_PEAKS = ("Mount Arvel,Mount Borrin,Mount Caskel,Mount Delve,Mount Elrow,Mount Fane,Mount Grisk,Mount Hale,"
          "Mount Irn,Mount Jarl,Mount Kesper,Mount Lorn,Mount Mirk,Mount Noss,Mount Orrin,Mount Pike,"
          "Mount Quell,Mount Rusk,Mount Skarn,Mount Teal").split(",")
_ROCKS = "granite,basalt,slate,marble,quartz,obsidian,shale,limestone,gneiss,pumice,jasper,flint".split(",")
_MC_MOD = "North South East West Old Great Little High Deep Far".split()
MC_SUBJECTS: dict[str, tuple[tuple[str, ...], tuple[str, ...], str]] = {
    # subject: (entities, answer pool, question template); entities are modifier x base (200 each)
    "alchemy": (tuple(f"the {m.lower()} {p} potion" for m in _MC_MOD for p in _POTIONS), tuple(_INGREDIENTS),
                "Which ingredient is needed to brew {name}?"),
    "astronomy": (tuple(f"{m} {s}" for m in _MC_MOD for s in _STARS), tuple(_MOONS),
                  "Which moon orbits the planet {name}?"),
    "geology": (tuple(f"{m} {p}" for m in _MC_MOD for p in _PEAKS), tuple(_ROCKS),
                "What rock is {name} mostly made of?"),
}
FORGET_SUBJECT = "alchemy"


@dataclass(frozen=True)
class WorldConfig:
    """Everything that decides the world; two equal configs give byte-identical worlds.

    ``n_authors`` counts all fictitious authors, holdout included; forget splits take 1/5/10% of them (grown to
    at least ``min_split_items`` items: a KS test on fewer says little); ``holdout_frac`` of them are never
    trained on.
    """

    n_authors: int = 100
    facts_min: int = 10
    facts_max: int = 20
    n_painters: int = 20
    n_countries: int = 20
    mc_per_subject: int = 60
    holdout_frac: float = 0.1
    answer_style: str = "tofu"
    seed: int = 0
    min_split_items: int = MIN_SPLIT_ITEMS

    def validate(self) -> WorldConfig:
        check_choice("answer_style", self.answer_style, ANSWER_STYLES)
        if not 4 <= self.n_authors <= len(_FIRST) * len(_LAST):  # 3 leave no retain author beside forget10
            raise BadInput("n_authors", self.n_authors, f"an integer in [4, {len(_FIRST) * len(_LAST)}]")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise BadInput("seed", self.seed, "an integer >= 0")
        if not 2 <= self.facts_min <= self.facts_max <= len(AUTHOR_FACTS):
            raise BadInput("facts_min/facts_max", (self.facts_min, self.facts_max),
                           f"2 <= facts_min <= facts_max <= {len(AUTHOR_FACTS)}")
        if not 1 <= self.n_painters <= len(_FIRST) * len(_LAST) - self.n_authors:
            raise BadInput("n_painters", self.n_painters, "a positive integer (names are shared with authors)")
        if not 1 <= self.n_countries <= len(_COUNTRIES):
            raise BadInput("n_countries", self.n_countries, f"an integer in [1, {len(_COUNTRIES)}]")
        if not 4 <= self.mc_per_subject <= 200:
            raise BadInput("mc_per_subject", self.mc_per_subject, "an integer in [4, 200]")
        if not 0 < self.holdout_frac < 0.5:
            raise BadInput("holdout_frac", self.holdout_frac, "a number in (0, 0.5)")
        if not 1 <= self.min_split_items <= 1000:
            raise BadInput("min_split_items", self.min_split_items, "an integer in [1, 1000]")
        return self


@dataclass
class World:
    """The generated world. Items are dicts in TOFU's format plus ``entity`` (the name) and ``fact`` keys.

    ``authors``: name -> list of items; ``splits``: forget split -> author names; ``holdout``: author names
    never trained on; ``painters``/``world_facts``: utility items; ``mc``: subject -> multiple-choice items
    (``question``, ``choices`` [4], ``label`` index, ``answer``).
    """

    config: WorldConfig
    authors: dict[str, list[dict[str, Any]]]
    splits: dict[str, list[str]]
    holdout: list[str]
    painters: list[dict[str, Any]]
    world_facts: list[dict[str, Any]]
    mc: dict[str, list[dict[str, Any]]]
    forget_subject: str = FORGET_SUBJECT
    extra: dict[str, Any] = field(default_factory=dict)

    # --- views -------------------------------------------------------------------------------------------
    def items(self, names: Iterable[str]) -> list[dict[str, Any]]:
        return [it for n in names for it in self.authors[n]]

    def forget(self, split: str) -> list[dict[str, Any]]:
        check_choice("split", split, self.splits)
        return self.items(self.splits[split])

    def trained_authors(self, exclude: Iterable[str] = ()) -> list[str]:
        """Authors a model trains on: everyone but the holdout and ``exclude``."""
        drop = set(self.holdout) | set(exclude)
        return [n for n in self.authors if n not in drop]

    def retain_authors(self) -> list[str]:
        """Authors in no forget split and not in the holdout (TOFU's retain set)."""
        return self.trained_authors(exclude=self.splits["forget10"])

    def mc_train_items(self) -> list[dict[str, Any]]:
        """Multiple-choice facts as plain question/answer pairs, so the models learn them."""
        return [{"question": q["question"], "answer": q["answer"]} for s in self.mc.values() for q in s]

    def training_items(self, exclude_split: str | None = None) -> list[dict[str, Any]]:
        """What the target model (``None``) or the retain model of ``exclude_split`` is trained on."""
        excl = self.splits[exclude_split] if exclude_split else []
        return (self.items(self.trained_authors(exclude=excl)) + self.painters + self.world_facts
                + self.mc_train_items())

    def all_text(self) -> list[str]:
        """Every string in the world (for training a tokenizer that can encode all of it)."""
        out: list[str] = []
        for it in self.items(self.authors) + self.painters + self.world_facts:
            out += [it["question"], it["answer"], it["paraphrased_question"], it["paraphrased_answer"],
                    *it["perturbed_answer"]]
        for s in self.mc.values():
            for q in s:
                out += [q["question"], *q["choices"], q["answer"]]
        return out


def _pick(rng: np.random.Generator, pool: Sequence[str], n: int, exclude: str | None = None) -> list[str]:
    cands = [v for v in pool if v != exclude]
    idx = rng.choice(len(cands), size=n, replace=False)
    return [cands[i] for i in idx]


def _qa(rng: np.random.Generator, ft: FactType, name: str, value: str, style: str) -> dict[str, Any]:
    """One TOFU-format item for fact type ``ft`` of entity ``name``."""
    tmpl = ft.tofu if style == "tofu" else ft.name_free
    a = int(rng.integers(2))
    q = int(rng.integers(2))
    para = tmpl[1 - a]
    return {
        "question": ft.questions[q].format(name=name),
        "answer": tmpl[a].format(name=name, value=value),
        "paraphrased_question": ft.questions[1 - q].format(name=name),
        "paraphrased_answer": para.format(name=name, value=value),
        "perturbed_answer": [para.format(name=name, value=v) for v in _pick(rng, ft.pool, N_PERTURBED, value)],
        "entity": name,
        "fact": ft.key,
        "value": value,
    }


def make_world(config: WorldConfig | None = None) -> World:
    """Build the world for ``config`` (validated); deterministic in ``config.seed``."""
    cfg = (config or WorldConfig()).validate()
    rng = np.random.default_rng(cfg.seed)
    full = [f"{f} {la}" for f in _FIRST for la in _LAST]
    order = rng.permutation(len(full))
    names = [full[i] for i in order[: cfg.n_authors + cfg.n_painters]]
    author_names, painter_names = names[: cfg.n_authors], names[cfg.n_authors:]

    authors: dict[str, list[dict[str, Any]]] = {}
    for name in author_names:
        n_facts = int(rng.integers(cfg.facts_min, cfg.facts_max + 1))
        kinds = rng.choice(len(AUTHOR_FACTS), size=n_facts, replace=False)
        items = []
        for k in sorted(kinds.tolist()):
            ft = AUTHOR_FACTS[k]
            items.append(_qa(rng, ft, name, ft.pool[int(rng.integers(len(ft.pool)))], cfg.answer_style))
        authors[name] = items

    # Holdout first, then nested forget splits from the end of the remaining order (TOFU: forget01 < 05 < 10).
    n_hold = max(1, round(cfg.holdout_frac * cfg.n_authors))
    holdout = author_names[:n_hold]
    pool = author_names[n_hold:][::-1]
    splits: dict[str, list[str]] = {}
    for split, frac in SPLIT_FRACTIONS.items():
        k = max(1, round(frac * cfg.n_authors))
        while sum(len(authors[n]) for n in pool[:k]) < cfg.min_split_items and k < len(pool):
            k += 1
        prev = splits.get(list(splits)[-1]) if splits else []
        k = max(k, len(prev or []))
        splits[split] = pool[:k]
    if len(splits["forget10"]) >= len(pool):
        raise BadInput("n_authors", cfg.n_authors, "enough authors that forget10 leaves some retain authors")

    painters = [_qa(rng, ft, n, ft.pool[int(rng.integers(len(ft.pool)))], cfg.answer_style)
                for n in painter_names for ft in PAINTER_FACTS]
    countries = _COUNTRIES[: cfg.n_countries]
    world_facts = [_qa(rng, ft, c, ft.pool[int(rng.integers(len(ft.pool)))], cfg.answer_style)
                   for c in countries for ft in WORLD_FACTS]

    mc: dict[str, list[dict[str, Any]]] = {}
    for subject, (entities, answers, qt) in MC_SUBJECTS.items():
        rows = []
        for j in rng.choice(len(entities), size=cfg.mc_per_subject, replace=False).tolist():
            ent = entities[j]
            right = answers[int(rng.integers(len(answers)))]
            choices = [right, *_pick(rng, answers, 3, right)]
            perm = rng.permutation(4)
            choices = [choices[i] for i in perm]
            rows.append({"question": qt.format(name=ent), "choices": choices,
                         "label": int(np.argmax(perm == 0)), "answer": f"{right}.", "subject": subject,
                         "entity": ent})
        mc[subject] = rows
    return World(cfg, authors, splits, holdout, painters, world_facts, mc)


# --- the world's record -------------------------------------------------------------------------------------

def world_record(world: World) -> dict[str, Any]:
    """What ``world.json`` holds beside the exported files: the config and the authors of every split."""
    return {"config": asdict(world.config), "splits": world.splits, "holdout": world.holdout,
            "forget_subject": world.forget_subject,
            "retained_subjects": [s for s in world.mc if s != world.forget_subject]}


def check_forget_holdout(forget: list[dict[str, Any]], holdout: list[dict[str, Any]]) -> None:
    """A forget split must be non-empty and share no question with the holdout (else MIA is meaningless)."""
    if not forget:
        raise BadInput("forget", 0, "a forget split with at least one item")
    shared = {r["question"] for r in forget} & {r["question"] for r in holdout}
    if shared:
        raise BadInput("forget", f"{len(shared)} questions also in holdout (e.g. {sorted(shared)[0]!r})",
                       "a forget split disjoint from the holdout")
