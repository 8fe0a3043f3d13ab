import pytest
from fastapi.testclient import TestClient

from serving_fixtures import make_home
from service.app import create_app
from service.settings import Settings

ADMIN_TOKEN = "test-admin-token"


@pytest.fixture
def home(tmp_path):
    return make_home(tmp_path / "home")


@pytest.fixture
def client(home):
    # No background reloads: the tests open the warehouse themselves, and DuckDB refuses a
    # second in-process open with other settings. Hot swaps are tested on a real server.
    app = create_app(Settings(home=home, admin_token=ADMIN_TOKEN, reload_interval_s=3600))
    with TestClient(app) as client:
        yield client


@pytest.fixture
def admin():
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}
