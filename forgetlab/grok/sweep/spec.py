"""Sweep specs: a grid of training configs from a TOML file, a preset, or CLI ranges, validated.

A spec has four parts (TOML tables of the same names):

``[sweep]``  settings: ``name``, ``panel`` (keys whose values make the panels of a phase diagram),
             ``keep_history`` (store each run's logged history), ``save_weights``, ``max_batch_runs``.
``[fixed]``  one value for any ``TrainConfig`` field (``p = 31``).
``[grid]``   a list, or a linear range ``{start, stop, num}``, for any field; the runs are the cartesian
             product of all grid axes (and the zip axis).
``[zip]``    lists of equal length swept *together* as one axis (the official BN/minibatch scripts tie
             ``steps`` and ``lr`` to ``batch_size``).

Every expanded run is a full ``TrainConfig`` of the trainer; its identity is a stable hash of that config.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import itertools
import json
import re
import tomllib
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ...errors import BadInput, ForgetlabError

DEFAULT_TRAINER = "forgetlab.grok.train"
PRESETS_DIR = Path(__file__).with_name("presets")
#: Keys that span the alpha x xi plane of a phase diagram, or repeat it (seeds): never panel keys.
AXIS_KEYS = ("alpha", "xi")
SEED_KEYS = ("seed", "split_seed", "label_seed")
SWEEP_SETTINGS: dict[str, type | tuple[type, ...]] = {
    "name": str, "panel": list, "keep_history": bool, "save_weights": bool, "max_batch_runs": int,
    "max_memory_gb": (int, float), "max_runs": int, "batching": str,
}
BATCHING = ("measured", "max")
"""``[sweep] batching``: measured (the default: the batch size with the fewest seconds per run-step on this
machine, probed before training, at most ``max_batch_runs``; :mod:`forgetlab.grok.sweep.batching`) or max
(always ``max_batch_runs`` runs per batch, memory permitting)."""
TABLES = ("sweep", "fixed", "grid", "zip")


def load_trainer(name: str = DEFAULT_TRAINER) -> types.ModuleType:
    """Import the trainer module by dotted name; it must provide ``TrainConfig``, ``batch_key``,
    ``train_many`` and ``estimate_batch_bytes`` (the contract of :mod:`forgetlab.grok.train`)."""
    if not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", name):  # import_module: TypeError/ValueError else
        raise BadInput("trainer", name, "a dotted module name such as forgetlab.grok.train")
    try:
        mod = importlib.import_module(name)
    except ImportError as exc:
        raise BadInput("trainer", name, f"an importable trainer module ({exc})") from None
    missing = [a for a in ("TrainConfig", "batch_key", "train_many", "estimate_batch_bytes")
               if not hasattr(mod, a)]
    if missing:
        raise BadInput("trainer", name, f"a module defining {', '.join(missing)}")
    return mod


def config_field_types(config_cls: type) -> dict[str, Any]:
    """Map each ``TrainConfig`` field name to its annotated type (resolved from string annotations)."""
    hints = typing.get_type_hints(config_cls)
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(config_cls)}


def _type_ok(value: Any, tp: Any) -> bool:
    """True if a TOML value fits a dataclass field type (int for float is fine; bool is never int)."""
    if tp is Any:
        return True
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    if typing.get_origin(tp) is typing.Literal:
        return value in typing.get_args(tp)
    return isinstance(value, tp) if isinstance(tp, type) else True


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _norm(value: Any) -> Any:
    """Canonical scalar: floats rounded to 12 significant digits so linspace noise never changes a hash."""
    if isinstance(value, float):
        return float(f"{value:.12g}")
    return value


def linspace(start: float, stop: float, num: int) -> list[float]:
    """``num`` evenly spaced values from ``start`` to ``stop`` inclusive (numpy.linspace, normalized)."""
    if num == 1:
        return [_norm(float(start))]
    step = (stop - start) / (num - 1)
    return [_norm(start + i * step) for i in range(num)]


def find_line(text: str, table: str | None, key: str) -> int | None:
    """Line number (1-based) where ``key`` is assigned inside ``[table]`` of a TOML text (tomllib keeps none).

    ``table=None`` means the top level; a ``table`` of ``None`` key finds the ``[table]`` header itself.
    """
    current: str | None = None
    header = re.compile(r"^\s*\[\s*([A-Za-z0-9_.\-\"' ]+?)\s*\]\s*(#.*)?$")
    for i, line in enumerate(text.splitlines(), start=1):
        m = header.match(line)
        if m:
            current = m.group(1).strip().strip("\"'")
            if key == "" and current == table:
                return i
            if table is None and key and current.split(".")[0] == key:
                return i  # a top-level key written as a table header
            continue
        if current == table and key and re.match(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=", line):
            return i
    return None


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep: fixed values, grid axes, one zip axis, and settings.

    ``grid`` maps a field to its values; ``zip`` maps fields to equal-length value lists swept together.
    """

    name: str = "sweep"
    fixed: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    zip: dict[str, list[Any]] = field(default_factory=dict)
    panel: list[str] | None = None
    keep_history: bool = False
    save_weights: bool = False
    max_batch_runs: int = 64
    batching: str = "measured"
    max_memory_gb: float | None = None
    max_runs: int = 100_000
    source: str = "<spec>"
    options: dict[str, str] = field(default_factory=dict, compare=False)
    """Keys given on the command line, by the option that gave them (``--set``/``--grid``): errors name it."""

    # ---------------------------------------------------------------- identity
    def result_dict(self) -> dict[str, Any]:
        """What decides the stored results (the manifest compares this); batching knobs excluded."""
        return {"fixed": dict(sorted(self.fixed.items())), "grid": dict(sorted(self.grid.items())),
                "zip": dict(sorted(self.zip.items())), "keep_history": self.keep_history,
                "save_weights": self.save_weights}

    def to_dict(self) -> dict[str, Any]:
        """Everything, for the manifest and the run record."""
        return {"name": self.name, "panel": self.panel_keys(), **self.result_dict(),
                "max_batch_runs": self.max_batch_runs, "batching": self.batching, "max_memory_gb": self.max_memory_gb,
                "max_runs": self.max_runs, "source": self.source}

    def spec_hash(self) -> str:
        """Stable hash of :meth:`result_dict` (16 hex digits)."""
        return stable_hash(self.result_dict())

    # ---------------------------------------------------------------- structure
    def swept_keys(self) -> list[str]:
        """Fields that take more than one value across the runs, grid order then zip order."""
        keys = [k for k, v in self.grid.items() if len(v) > 1]
        keys += [k for k, v in self.zip.items() if len(set(map(json.dumps, v))) > 1]
        return keys

    def panel_keys(self) -> list[str]:
        """Keys that make a phase-diagram panel: the ``panel`` setting, else every swept key but alpha, xi
        and the seeds."""
        if self.panel is not None:
            return list(self.panel)
        return [k for k in self.swept_keys() if k not in AXIS_KEYS + SEED_KEYS]

    def n_runs(self) -> int:
        n = 1
        for v in self.grid.values():
            n *= len(v)
        if self.zip:
            n *= len(next(iter(self.zip.values())))
        return n

    def expand(self) -> list[dict[str, Any]]:
        """The runs as dicts of fields (fixed, then one grid point, then one zip row), in a fixed order."""
        axes = [[(k, v) for v in vals] for k, vals in self.grid.items()]
        if self.zip:
            keys = list(self.zip)
            rows = list(zip(*(self.zip[k] for k in keys), strict=True))
            axes.append([tuple(zip(keys, row, strict=True)) for row in rows])
        out = []
        for combo in itertools.product(*axes):
            cfg = dict(self.fixed)
            for item in combo:
                if item and isinstance(item[0], tuple):
                    cfg.update(dict(item))
                else:
                    cfg[item[0]] = item[1]
            out.append(cfg)
        return out


def stable_hash(obj: Any) -> str:
    """SHA-256 of the canonical JSON (sorted keys, no spaces) of ``obj``, first 16 hex digits."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


# -------------------------------------------------------------------- parsing and validation
CLI_SOURCE = "<cli>"
"""The ``source`` of entries given on the command line; their errors name the option, not a file."""
CLI_OPTIONS = {"fixed": "--set", "grid": "--grid"}


def _where(source: str, text: str | None, table: str | None, key: str) -> str:
    line = find_line(text, table, key) if text else None
    return f"{source}:{line}" if line else source


def _field_label(source: str, text: str | None, table: str, key: str) -> str:
    """Where a config entry came from: ``--grid wd`` for the command line, ``spec.toml:4: grid.wd`` for a file."""
    if source == CLI_SOURCE:
        return f"{CLI_OPTIONS.get(table, table)} {key}"
    return f"{_where(source, text, table, key)}: {table}.{key}"


def _values(raw: Any, label: str) -> list[Any]:
    """A grid entry: a list, or a range table {start, stop, num}; never empty (``label``: :func:`_field_label`)."""
    if isinstance(raw, Mapping):
        extra = set(raw) - {"start", "stop", "num"}
        if extra or not {"start", "stop", "num"} <= set(raw):
            raise BadInput(label, dict(raw), "a list or a range {start, stop, num}")
        if not isinstance(raw["num"], int) or isinstance(raw["num"], bool) or raw["num"] < 1:
            raise BadInput(f"{label}.num", raw["num"], "an integer >= 1")
        return linspace(float(raw["start"]), float(raw["stop"]), raw["num"])
    if not isinstance(raw, list):
        raise BadInput(label, raw, "a list of values or a range {start, stop, num}")
    if not raw:
        raise BadInput(label, raw, "a non-empty list (an empty grid has no runs)")
    return [_norm(v) for v in raw]


def _check_tables(data: Mapping[str, Any], source: str, text: str | None) -> dict[str, Any]:
    """Refuse unknown tables and malformed ``[sweep]`` settings; return the settings."""
    unknown = [t for t in data if t not in TABLES]
    if unknown:
        raise BadInput(f"{_where(source, text, None, unknown[0])}: {unknown[0]}", data[unknown[0]],
                       "one of the tables " + ", ".join(f"[{t}]" for t in TABLES))
    for t in TABLES:
        if t in data and not isinstance(data[t], Mapping):
            raise BadInput(f"{_where(source, text, None, t)}: {t}", data[t], f"a table [{t}]")
    settings = dict(data.get("sweep", {}))
    for k, v in settings.items():
        where = _where(source, text, "sweep", k)
        if k not in SWEEP_SETTINGS:
            raise BadInput(f"{where}: sweep.{k}", v, "one of " + ", ".join(SWEEP_SETTINGS))
        tp = SWEEP_SETTINGS[k]
        if (isinstance(v, bool) and tp is not bool) or not isinstance(v, tp):
            raise BadInput(f"{where}: sweep.{k}", v, f"a value of type {getattr(tp, '__name__', tp)}")
    return settings


def _fields(data: Mapping[str, Any], config_cls: type, source: str,
            text: str | None) -> tuple[dict[str, Any], dict[str, list[Any]], dict[str, list[Any]]]:
    """The ``[fixed]``, ``[grid]`` and ``[zip]`` tables, every key a config field of the right type."""
    types_ = config_field_types(config_cls)
    known = ", ".join(types_)

    def check_field(table: str, k: str, v: Any) -> None:
        label = _field_label(source, text, table, k)
        if k not in types_:
            raise BadInput(label, k, f"a TrainConfig field: {known}")
        if not _type_ok(v, types_[k]):
            raise BadInput(label, v, f"a value of type {_type_name(types_[k])}")

    fixed = {k: _norm(v) for k, v in data.get("fixed", {}).items()}
    for k, v in fixed.items():
        check_field("fixed", k, v)
    grid: dict[str, list[Any]] = {}
    for k, raw in data.get("grid", {}).items():
        grid[k] = _values(raw, _field_label(source, text, "grid", k))
        if isinstance(raw, Mapping) and types_.get(k) is int:  # seed = 1:3:3 means 1, 2, 3
            grid[k] = [int(v) if isinstance(v, float) and v.is_integer() else v for v in grid[k]]
        for v in grid[k]:
            check_field("grid", k, v)
    zipped: dict[str, list[Any]] = {}
    for k, raw in data.get("zip", {}).items():
        if not isinstance(raw, list) or not raw:
            raise BadInput(f"{_where(source, text, 'zip', k)}: zip.{k}", raw, "a non-empty list")
        for v in raw:
            check_field("zip", k, v)
        zipped[k] = [_norm(v) for v in raw]
    return fixed, grid, zipped


def _check_axes(fixed: dict, grid: dict, zipped: dict, panel: list | None, source: str, text: str | None) -> None:
    """Zip lists of one length; each field fixed, gridded or zipped, never two; panel keys swept."""
    lengths = {k: len(v) for k, v in zipped.items()}
    if len(set(lengths.values())) > 1:
        raise BadInput(f"{_where(source, text, 'zip', '')}: zip", lengths, "lists of one common length")
    for k in fixed:
        if k in grid or k in zipped:
            raise BadInput(f"{_where(source, text, 'fixed', k)}: fixed.{k}", fixed[k],
                           "a field either fixed or swept, not both")
    for k in grid:
        if k in zipped:
            raise BadInput(f"{_where(source, text, 'zip', k)}: zip.{k}", zipped[k],
                           "a field in [grid] or [zip], not both")
    for k in panel or ():
        if k not in grid and k not in zipped:
            raise BadInput(f"{_where(source, text, 'sweep', 'panel')}: sweep.panel", k,
                           "keys swept in [grid] or [zip]: " + ", ".join([*grid, *zipped]))


def spec_from_dict(data: Mapping[str, Any], *, config_cls: type, source: str = "<spec>",
                   text: str | None = None) -> SweepSpec:
    """Build and validate a :class:`SweepSpec` from parsed TOML; errors name the key and (with ``text``) the
    line: unknown keys, wrong types, empty or ragged lists, a field both fixed and swept."""
    settings = _check_tables(data, source, text)
    fixed, grid, zipped = _fields(data, config_cls, source, text)
    if not (fixed or grid or zipped):
        raise BadInput("spec", source, "a spec with at least one [fixed], [grid] or [zip] entry (an empty one "
                       "would silently train only the default configuration)")
    panel = settings.get("panel")
    _check_axes(fixed, grid, zipped, panel, source, text)
    spec = SweepSpec(
        name=settings.get("name", "sweep" if source.startswith("<") else Path(source).stem),  # CLI_SOURCE, <spec>
        fixed=fixed, grid=grid, zip=zipped, panel=panel,
        keep_history=settings.get("keep_history", False), save_weights=settings.get("save_weights", False),
        max_batch_runs=settings.get("max_batch_runs", 64), batching=settings.get("batching", "measured"),
        max_memory_gb=None if settings.get("max_memory_gb") is None else float(settings["max_memory_gb"]),
        max_runs=settings.get("max_runs", 100_000), source=source)
    if spec.batching not in BATCHING:
        raise BadInput(f"{_where(source, text, 'sweep', 'batching')}: sweep.batching", spec.batching,
                       "one of: " + ", ".join(BATCHING))
    if spec.max_batch_runs < 1:
        raise BadInput(f"{_where(source, text, 'sweep', 'max_batch_runs')}: sweep.max_batch_runs",
                       spec.max_batch_runs, "an integer >= 1")
    if spec.n_runs() > spec.max_runs:
        raise BadInput("grid", f"{spec.n_runs()} runs",
                       f"at most max_runs={spec.max_runs} runs (raise [sweep] max_runs to allow more)")
    return spec


def load_spec(path: str | Path, *, config_cls: type) -> SweepSpec:
    """Read a TOML spec file; a syntax error names the file and line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BadInput("spec", str(path), f"a readable TOML file ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise BadInput("spec", str(path), f"a UTF-8 TOML file (byte {exc.start} is not UTF-8)") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ForgetlabError(f"{path}: not valid TOML ({exc})") from None
    return spec_from_dict(data, config_cls=config_cls, source=str(path), text=text)


def preset_names() -> list[str]:
    """Names of the shipped presets (``forgetlab/grok/sweep/presets/*.toml``)."""
    return sorted(p.stem for p in PRESETS_DIR.glob("*.toml"))


def preset_path(name: str) -> Path:
    """Path of a shipped preset; an unknown name lists the known ones."""
    names = preset_names()
    if name not in names:
        raise BadInput("preset", name, "one of " + ", ".join(names))
    return PRESETS_DIR / f"{name}.toml"


def parse_cli_value(text: str) -> Any:
    """A CLI value: a TOML scalar (``31``, ``0.5``, ``true``, ``"add"``) or a bare word (``add``)."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_cli_range(key: str, text: str) -> Any:
    """``start:stop:num`` (linear range) or ``a,b,c`` (list) or one value, as a grid entry."""
    if ":" in text and text.count(":") != 2:
        raise BadInput(f"--grid {key}", text, "start:stop:num (three parts, e.g. 0.1:0.9:7) or a list a,b,c")
    if text.count(":") == 2:
        start, stop, num = text.split(":")
        try:
            return {"start": float(start), "stop": float(stop), "num": int(num)}
        except ValueError:
            raise BadInput(f"--grid {key}", text, "start:stop:num with numbers, e.g. 0.1:0.9:7") from None
    if not text.strip():
        return []  # refused where every grid is checked: an empty grid has no runs
    parts = [t.strip() for t in text.split(",")]
    if not all(parts):
        raise BadInput(f"--grid {key}", text, "a list a,b,c without an empty element (or start:stop:num)")
    return [parse_cli_value(t) for t in parts]


def _split_override(option: str, item: str, form: str, zipped: Mapping[str, Any]) -> tuple[str, str]:
    """``key=value`` of one CLI override, refusing a malformed one or a key tied in [zip]."""
    key, sep, val = item.partition("=")
    if not sep or not key.strip():
        raise BadInput(option, item, form)
    key = key.strip()
    if key in zipped:
        raise BadInput(option, item, f"a key not tied in [zip] ({', '.join(zipped)})")
    return key, val.strip()


def _refuse_repeated_keys(fixed: list[str], grid: list[str]) -> None:
    """Refuse a key that two of the command line's ``--set``/``--grid`` overrides name."""
    seen: dict[str, str] = {}
    for option, items in (("--set", fixed), ("--grid", grid)):
        for item in items:
            key = item.partition("=")[0].strip()
            if key and key in seen:
                raise BadInput(f"{option} {key}", item, f"one --set or --grid per key ({seen[key]} names it too)")
            seen[key] = f"{option} {item}"


def apply_overrides(data: dict[str, Any], *, fixed: Iterable[str] = (), grid: Iterable[str] = ()) -> dict:
    """Apply CLI ``--set key=value`` and ``--grid key=values`` to parsed spec data (a new dict).

    A ``--set`` removes the key from [grid]/[zip]; a ``--grid`` removes it from [fixed]/[zip]. A key given
    twice on the command line (two ``--set``, two ``--grid``, or one of each) is refused: one would be dropped.
    """
    out = {t: dict(v) if isinstance(v, Mapping) else v for t, v in data.items()}
    for t in ("fixed", "grid", "zip"):
        out.setdefault(t, {})
    fixed, grid = list(fixed), list(grid)
    _refuse_repeated_keys(fixed, grid)
    for item in fixed:
        key, val = _split_override("--set", item, "key=value, e.g. p=31", out["zip"])
        out["grid"].pop(key, None)
        out["fixed"][key] = parse_cli_value(val)
        panel = out.get("sweep", {}).get("panel")
        if isinstance(panel, list) and key in panel:
            out["sweep"] = {**out["sweep"], "panel": [k for k in panel if k != key]}
    for item in grid:
        key, val = _split_override("--grid", item, "key=values, e.g. alpha=0.1:0.9:7 or wd=0,5,15", out["zip"])
        out["fixed"].pop(key, None)
        out["grid"][key] = parse_cli_range(key, val)
    for t in ("fixed", "grid", "zip"):
        if not out[t]:
            del out[t]
    return out


def build_spec(*, spec_path: str | Path | None = None, preset: str | None = None, fixed: Iterable[str] = (),
               grid: Iterable[str] = (), config_cls: type) -> SweepSpec:
    """The spec a ``sweep`` command means: a file or a preset (or nothing), then CLI overrides."""
    if spec_path is not None and preset is not None:
        raise BadInput("--spec/--preset", f"{spec_path} and {preset}", "one of them, not both")
    path = Path(spec_path) if spec_path is not None else preset_path(preset) if preset is not None else None
    fixed, grid = list(fixed), list(grid)
    if path is None and not grid:
        if fixed:
            raise BadInput("grid", None, "at least one --grid key=values beside --set (a sweep varies something; "
                           "one run is `forgetlab grok train`)")
        raise BadInput("spec", None, "--spec FILE, --preset NAME (" + ", ".join(preset_names())
                       + ") or --grid key=values")
    if path is not None and not fixed and not grid:
        return load_spec(path, config_cls=config_cls)
    overrides = apply_overrides({}, fixed=fixed, grid=grid)
    options = {k: CLI_OPTIONS[t] for t in ("fixed", "grid") for k in overrides.get(t, {})}
    if path is None:
        return replace(spec_from_dict(overrides, config_cls=config_cls, source=CLI_SOURCE), options=options)
    load_spec(path, config_cls=config_cls)  # the file first, its errors with line numbers
    _fields(overrides, config_cls, CLI_SOURCE, None)  # then the options, their errors naming --set / --grid
    data = apply_overrides(tomllib.loads(path.read_text(encoding="utf-8")), fixed=fixed, grid=grid)
    return replace(spec_from_dict(data, config_cls=config_cls, source=str(path), text=None), options=options)


# -------------------------------------------------------------------- runs
def _config_error_label(spec: SweepSpec, field: str) -> str:
    """Where a value the trainer refused came from: ``--set p`` / ``--grid p``, or ``spec.toml: p``."""
    if field in spec.options:
        return f"{spec.options[field]} {field}"
    return field if spec.source == CLI_SOURCE else f"{spec.source}: {field}"


def make_configs(spec: SweepSpec, trainer: types.ModuleType) -> list[Any]:
    """Expand the spec into validated ``TrainConfig`` objects, in expansion order.

    A value the trainer rejects (``BadInput`` from ``validate()``) is re-raised naming the spec.
    """
    out = []
    for d in spec.expand():
        try:
            cfg = trainer.TrainConfig(**d)
            if hasattr(cfg, "validate"):
                cfg.validate()
        except BadInput as exc:
            raise BadInput(_config_error_label(spec, exc.field), exc.value, exc.allowed) from None
        except TypeError as exc:
            raise ForgetlabError(str(exc) if spec.source == CLI_SOURCE else f"{spec.source}: {exc}") from None
        out.append(cfg)
    return out


def config_dict(config: Any) -> dict[str, Any]:
    """A config as a plain dict of its fields (the stored and hashed form).

    A field declared with ``identity="when_set"`` (a field added after runs were stored, e.g. ``depth``) is
    left out while it holds its default, so every run stored before the field existed keeps its id and its
    stored form; a run that sets it gets a new id.
    """
    out = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if f.metadata.get("identity") == "when_set" and value == f.default:
            continue
        out[f.name] = _norm(value)
    return out


def when_set_defaults(config_cls: type) -> dict[str, Any]:
    """The fields :func:`config_dict` leaves out at their default (``identity="when_set"``), with those
    defaults: what a stored config without such a key holds."""
    return {f.name: _norm(f.default) for f in dataclasses.fields(config_cls)
            if f.metadata.get("identity") == "when_set"}


def run_id(config: Any) -> str:
    """Stable identity of one run: hash of :func:`config_dict` (every field, defaults included, except fields
    marked ``identity="when_set"`` at their default)."""
    return stable_hash(config_dict(config))
