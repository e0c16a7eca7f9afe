"""Registering a model version and serving it from an endpoint the databricks-sdk creates, for the
hosted-model tests."""

import datetime

import requests
from databricks.sdk import WorkspaceClient
from databricks.sdk.service import serving

from conftest import ADMIN_TOKEN

HEADERS = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def serve_version(server, model, version, endpoint):
    """Registers `model` with one version (the body of `POST .../versions`) and serves it from
    `endpoint` (Small, always on); returns the version as registered and a WorkspaceClient."""
    post = lambda path, body: requests.post(f"{server.host}{path}", json=body, headers=HEADERS, timeout=60)  # noqa: E731
    r = post("/api/2.0/registered-models", {"name": model})
    assert r.status_code == 200, r.text
    r = post(f"/api/2.0/registered-models/{model}/versions", version)
    assert r.status_code == 200, r.text
    registered = r.json()
    w = WorkspaceClient(host=server.host, token=ADMIN_TOKEN)
    ep = w.serving_endpoints.create_and_wait(
        name=endpoint,
        config=serving.EndpointCoreConfigInput(
            name=endpoint,
            served_entities=[serving.ServedEntityInput(entity_name=model, entity_version=registered["version"],
                                                       workload_size="Small", scale_to_zero_enabled=False)]),
        timeout=datetime.timedelta(seconds=120),
    )
    assert ep.state.ready == serving.EndpointStateReady.READY
    return registered, w
