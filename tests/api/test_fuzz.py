"""Property-based fuzzing of the whole OpenAPI schema: no request the schema allows (or
nearly allows) makes the service fail with a 5xx, and every answer matches its schema."""

import shutil
import tempfile
from pathlib import Path

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings

from serving_fixtures import make_home
from service.app import create_app
from service.settings import Settings

HOME = Path(tempfile.mkdtemp(prefix="recsys-fuzz-")) / "home"
APP = create_app(Settings(home=HOME, admin_token="fuzz-token", reload_interval_s=3600))
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.fixture(scope="module", autouse=True)
def running_service():
    make_home(HOME)
    with TestClient(APP):  # runs the lifespan: the model is loaded before the first case
        yield
    shutil.rmtree(HOME.parent, ignore_errors=True)


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_and_answers_match_the_schema(case):
    # A schema-valid request may still be refused with a 4xx on meaning, not shape: an item that
    # is not in the catalog, a photo without a face, user_id together with demographics.
    case.call_and_validate(excluded_checks=[schemathesis.checks.positive_data_acceptance])
