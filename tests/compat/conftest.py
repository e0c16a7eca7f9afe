"""Starts the real `modelgate` binary for the client-compatibility tests."""

import os
import pathlib
import sys

import openai

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from harness import mock_upstream, start_server  # noqa: E402,F401  (mock_upstream: a shared fixture)

ADMIN_TOKEN = "mgt_compat_admin_token_0123456789abcdef"
SECRET_VALUE = "sk-compat-secret-value-5150"


@pytest.fixture(scope="session")
def server(tmp_path_factory, mock_upstream):
    # The foundation models' files: the directory `make` puts all-MiniLM-L6-v2 in.
    embed_model = pathlib.Path(os.environ.get("MODELGATE_EMBED_MODEL", ".venv/models/all-MiniLM-L6-v2")).resolve()
    s = start_server(tmp_path_factory.mktemp("data"), ADMIN_TOKEN, "--deploy-delay", "300ms",
                     "--provider-base-url", f"anthropic={mock_upstream.host}",
                     "--provider-base-url", f"amazon-bedrock={mock_upstream.host}",
                     "--provider-base-url", f"cohere={mock_upstream.host}",
                     "--provider-base-url", f"google-cloud-vertex-ai={mock_upstream.host}",
                     "--provider-base-url", f"google-oauth={mock_upstream.host}/token", "--upstream-idle-timeout", "2s",
                     "--foundation-models-dir", str(embed_model.parent))
    yield s
    code = s.stop()
    assert code == 0, "server did not exit cleanly:\n" + "".join(s.output)
    assert SECRET_VALUE not in "".join(s.output), "the server log leaks a secret"


@pytest.fixture(scope="session")
def databricks_env(server):
    """DATABRICKS_HOST/TOKEN for clients that read the environment (mlflow)."""
    old = {k: os.environ.get(k) for k in ("DATABRICKS_HOST", "DATABRICKS_TOKEN")}
    os.environ["DATABRICKS_HOST"] = server.host
    os.environ["DATABRICKS_TOKEN"] = ADMIN_TOKEN
    yield server
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def endpoints(server, mock_upstream):
    """Chat, completions and embeddings endpoints on the mock's OpenAI, and a chat endpoint on its
    Anthropic, for the data-plane client tests."""
    from test_dataplane_clients import api, create, openai_entity

    api(server, "POST", "/api/2.0/secrets/scopes/create", {"scope": "dp"})
    api(server, "POST", "/api/2.0/secrets/put", {"scope": "dp", "key": "key", "string_value": "sk-dp-test"})
    create(server, "oa-chat", openai_entity(mock_upstream, "gpt-4o", "llm/v1/chat"))
    create(server, "oa-complete", openai_entity(mock_upstream, "gpt-3.5-turbo-instruct", "llm/v1/completions"))
    create(server, "oa-embed", openai_entity(mock_upstream, "text-embedding-3-small", "llm/v1/embeddings"))
    create(server, "claude", {"external_model": {"provider": "anthropic", "name": "claude-3-5-sonnet", "task": "llm/v1/chat",
                                                 "anthropic_config": {"anthropic_api_key": "{{secrets/dp/key}}"}}})
    # The mock checks SigV4 signatures made with these (its fixed test credentials).
    api(server, "POST", "/api/2.0/secrets/put", {"scope": "dp", "key": "aws-id", "string_value": "AKIAMODELGATETEST"})
    api(server, "POST", "/api/2.0/secrets/put",
        {"scope": "dp", "key": "aws-secret", "string_value": "modelgate/test/secret/key/0123456789"})
    create(server, "bedrock", {"external_model": {
        "provider": "amazon-bedrock", "name": "anthropic.claude-3-haiku-20240307-v1:0", "task": "llm/v1/chat",
        "amazon_bedrock_config": {"aws_region": "us-east-1", "bedrock_provider": "anthropic",
                                  "aws_access_key_id": "{{secrets/dp/aws-id}}",
                                  "aws_secret_access_key": "{{secrets/dp/aws-secret}}"}}})
    return server


@pytest.fixture(scope="session")
def oa(endpoints):
    return openai.OpenAI(base_url=f"{endpoints.host}/serving-endpoints", api_key=ADMIN_TOKEN, max_retries=0)
