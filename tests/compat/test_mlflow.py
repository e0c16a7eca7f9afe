"""mlflow's deployments client for `databricks` against the running modelgate binary."""

import os
import time

import pytest
import requests
from mlflow.deployments import get_deploy_client


@pytest.fixture(scope="module")
def client(databricks_env):
    c = get_deploy_client("databricks")
    # The endpoints need a secret to deploy.
    headers = {"Authorization": f"Bearer {os.environ['DATABRICKS_TOKEN']}"}
    requests.post(f"{databricks_env.host}/api/2.0/secrets/scopes/create", json={"scope": "mlf"}, headers=headers)
    r = requests.post(f"{databricks_env.host}/api/2.0/secrets/put",
                      json={"scope": "mlf", "key": "k", "string_value": "sk-mlflow"}, headers=headers)
    r.raise_for_status()
    return c


def entity(model):
    return {"external_model": {"name": model, "provider": "openai", "task": "llm/v1/chat",
                               "openai_config": {"openai_api_key": "{{secrets/mlf/k}}"}}}


def wait_ready(client, name):
    for _ in range(100):
        ep = client.get_endpoint(endpoint=name)
        if ep["state"]["config_update"] != "IN_PROGRESS":
            return ep
        time.sleep(0.1)
    raise AssertionError(f"{name} never settled")


def test_crud(client):
    created = client.create_endpoint(config={"name": "mlf-chat", "config": {"served_entities": [entity("gpt-4o")]}})
    assert created["name"] == "mlf-chat"
    assert created["state"]["config_update"] == "IN_PROGRESS"
    ep = wait_ready(client, "mlf-chat")
    assert ep["state"]["ready"] == "READY"
    assert ep["endpoint_type"] == "EXTERNAL_MODEL"

    names = [e["name"] for e in client.list_endpoints()]
    assert "mlf-chat" in names

    updated = client.update_endpoint_config(endpoint="mlf-chat", config={"served_entities": [entity("gpt-4o-mini")]})
    assert updated["pending_config"]["config_version"] == 2
    ep = wait_ready(client, "mlf-chat")
    assert ep["config"]["served_entities"][0]["name"] == "gpt-4o-mini"

    tags = client.update_endpoint_tags(endpoint="mlf-chat", config={"add_tags": [{"key": "team", "value": "x"}]})
    assert tags["tags"] == [{"key": "team", "value": "x"}]

    assert client.delete_endpoint(endpoint="mlf-chat") == {}
    with pytest.raises(Exception) as e:
        client.get_endpoint(endpoint="mlf-chat")
    assert "RESOURCE_DOES_NOT_EXIST" in str(e.value)


def test_errors(client):
    with pytest.raises(Exception) as e:
        client.create_endpoint(config={"name": "mlf bad", "config": {"served_entities": [entity("gpt-4o")]}})
    assert "INVALID_PARAMETER_VALUE" in str(e.value) and "invalid endpoint name" in str(e.value)
