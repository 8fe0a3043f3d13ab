"""The HTTP face of the engine: FastAPI on uvicorn, calling the same pipelines as cli.py.

`python cli.py serve` runs it; `service.app.create_app()` builds it for tests.
"""
