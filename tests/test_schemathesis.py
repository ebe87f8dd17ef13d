"""Property-based API tests from the app's own OpenAPI document (schemathesis).

Every generated request goes to a real server over loopback and must get a response that is
not a 5xx and that matches the schema declared for its status code (errors included), so the
OpenAPI document stays honest.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from rag.assistant import Assistant
from rag.settings import Settings
from server.app import create_app
from server.testing import live_server

pytestmark = pytest.mark.slow

MAX_EXAMPLES = 30

# The document depends on the code only, not on an index: an app that is never started (so no
# model is loaded at collection time) yields the same schema as the one under test.
schema = schemathesis.openapi.from_dict(
    create_app(Settings(seeds_dir=Path("seeds"), index_dir=Path("index"))).openapi()
)
# Negative cases too: invalid input must get a declared 4xx (ErrorBody), never a 5xx.
schema.config.generation.update(
    max_examples=MAX_EXAMPLES,
    modes=[schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE],
)
# Rebuilding the shared index is not a property to fuzz; its auth has its own tests.
schema = schema.exclude(path="/v1/index/rebuild")


@pytest.fixture(scope="module")
def base_url(seeds_settings: Settings, assistant: Assistant) -> Iterator[str]:
    with live_server(create_app(seeds_settings, assistant)) as base:
        yield base


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case: schemathesis.Case, base_url: str) -> None:
    case.call_and_validate(
        base_url=base_url, checks=[not_a_server_error, response_schema_conformance]
    )
