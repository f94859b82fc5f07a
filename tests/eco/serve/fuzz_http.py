"""Schema-driven fuzzing of a running ECO server (schemathesis): what the fast test and the long run share.

:func:`fuzz_server` reads the server's own OpenAPI description, and for every operation sends hypothesis-generated
requests, ones that fit the description (positive) and, for operations with a request body, ones that break it
(negative); each answer goes to ``record(label, body, response, broken)``, where ``broken`` is the failed
conformance check (a 5xx, or an answer the description does not allow) or None. Used by
``tests/eco/serve/test_serve_schema_fuzz.py`` (a few examples per operation) and ``benchmarks/fuzz.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as fix_seed
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode

MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
Record = Callable[[str, Any, Any, BaseException | None], None]


def operations(url: str) -> list:
    """Every operation the server at ``url`` describes in ``/openapi.json``."""
    schema = schemathesis.openapi.from_url(url + "/openapi.json")
    return [result.ok() for result in schema.get_all_operations()]


def fuzz_operation(op, mode: GenerationMode, examples: int, headers: dict[str, str], record: Record, *,
                   derandomize: bool = True, seed: int | None = None) -> None:
    """``examples`` generated requests to one operation in one generation mode (``seed`` fixes a random run's
    generator); no shrinking (a failure is reported as sent)."""

    @given(case=op.as_strategy(generation_mode=mode))
    @settings(max_examples=examples, deadline=None, database=None, derandomize=derandomize,
              suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
    def run(case):
        response = case.call(headers=headers, timeout=60)
        broken = None
        try:
            assert response.status_code < 500, (op.label, case.body, response.text[:500])
            case.validate_response(response, checks=[not_a_server_error])
        except AssertionError as exc:  # schemathesis' failures are AssertionErrors too
            broken = exc
        record(op.label, case.body, response, broken)

    (fix_seed(seed)(run) if seed is not None else run)()


def fuzz_server(url: str, examples: int, headers: dict[str, str], record: Record, *,
                derandomize: bool = True, seed: int | None = None) -> None:
    """Every operation of the server at ``url`` in both modes (a GET without parameters has no negative case)."""
    for op in operations(url):
        for mode in MODES:
            if mode == GenerationMode.NEGATIVE and op.method.upper() == "GET":
                continue
            fuzz_operation(op, mode, examples, headers, record, derandomize=derandomize, seed=seed)
