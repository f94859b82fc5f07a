"""An OpenAI-compatible HTTP server for a guarded model.

``types`` (limits, requests, events), ``backends/`` (what generates: transformers, vLLM), ``engine`` (batching
queue and admission control), ``http`` (the FastAPI routes), ``server`` (running uvicorn), ``cli``
(``forgetlab eco serve``).
"""
