"""The data plane through real clients: the openai SDK, mlflow predict/predict_stream and
databricks-sdk query, against the running binary and the mock upstream."""

import time

import openai
import pytest
import requests
from databricks.sdk import WorkspaceClient
from databricks.sdk.service.serving import ChatMessage, ChatMessageRole
from mlflow.deployments import get_deploy_client

from conftest import ADMIN_TOKEN

HEADERS = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def api(server, method, path, body=None):
    r = requests.request(method, f"{server.host}{path}", json=body, headers=HEADERS, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def create(server, name, entity):
    api(server, "POST", "/api/2.0/serving-endpoints", {"name": name, "config": {"served_entities": [entity]}})
    for _ in range(100):
        ep = api(server, "GET", f"/api/2.0/serving-endpoints/{name}")
        if ep["state"]["config_update"] != "IN_PROGRESS":
            assert ep["state"]["ready"] == "READY", ep
            return
        time.sleep(0.1)
    raise AssertionError(f"{name} never became ready")


def openai_entity(mock, model, task):
    return {"external_model": {"provider": "openai", "name": model, "task": task,
                               "openai_config": {"openai_api_key": "{{secrets/dp/key}}", "openai_api_base": f"{mock.host}/v1"}}}


@pytest.mark.parametrize("model", ["oa-chat", "claude"])
def test_openai_chat(oa, model):
    r = oa.chat.completions.create(model=model, messages=[{"role": "user", "content": "hello world"}], max_tokens=16)
    assert r.choices[0].message.content == "echo: hello world"
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.total_tokens == 8


@pytest.mark.parametrize("model", ["oa-chat", "claude"])
def test_openai_streaming(oa, model):
    stream = oa.chat.completions.create(model=model, messages=[{"role": "user", "content": "a b c"}], stream=True,
                                        stream_options={"include_usage": True})
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: a b c"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 8


def test_openai_broken_stream_raises(oa):
    with pytest.raises(openai.APIError) as e:
        for _ in oa.chat.completions.create(model="oa-chat", messages=[{"role": "user", "content": "x __cut__ y"}], stream=True):
            pass
    assert "incomplete" in str(e.value)


def test_openai_completions_and_embeddings(oa):
    r = oa.completions.create(model="oa-complete", prompt="say this")
    assert r.choices[0].text == "echo: say this"
    default = oa.embeddings.create(model="oa-embed", input=["abcd", "ef"])  # encoding_format=base64 by default
    assert [d.embedding for d in default.data] == [[4.0, 0.5, -0.25], [2.0, 0.5, -0.25]]
    floats = oa.embeddings.create(model="oa-embed", input="abc", encoding_format="float")
    assert floats.data[0].embedding == [3.0, 0.5, -0.25]


def test_openai_errors(oa):
    with pytest.raises(openai.RateLimitError):
        oa.chat.completions.create(model="oa-chat", messages=[{"role": "user", "content": "__status_429__"}])
    with pytest.raises(openai.NotFoundError):
        oa.chat.completions.create(model="missing", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError) as e:
        oa.embeddings.create(model="oa-chat", input="x")
    assert "serves llm/v1/chat" in str(e.value)
    models = [m.id for m in oa.models.list()]
    assert {"oa-chat", "claude"} <= set(models)


def test_mlflow_predict_and_stream(endpoints, databricks_env):
    client = get_deploy_client("databricks")
    r = client.predict(endpoint="oa-chat", inputs={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5})
    assert r["choices"][0]["message"]["content"] == "echo: hi"
    chunks = list(client.predict_stream(endpoint="claude", inputs={"messages": [{"role": "user", "content": "x y"}]}))
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices")) == "echo: x y"


def test_databricks_sdk_query(endpoints):
    w = WorkspaceClient(host=endpoints.host, token=ADMIN_TOKEN)
    r = w.serving_endpoints.query(name="oa-chat", messages=[ChatMessage(role=ChatMessageRole.USER, content="q")], max_tokens=5)
    assert r.choices[0].message.content == "echo: q"
    assert r.served_model_name == "gpt-4o"
    assert r.usage.total_tokens == 8
