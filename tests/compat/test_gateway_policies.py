"""Rate limits and guardrails as the openai SDK and databricks-sdk see them: the error classes,
Retry-After, and a guardrail refusal in the middle of a stream."""

import time

import openai
import pytest
import requests
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import BadRequest
from databricks.sdk.service.serving import ChatMessage, ChatMessageRole

from conftest import ADMIN_TOKEN
from test_dataplane_clients import api, create, openai_entity


@pytest.fixture(scope="module")
def policed(server, mock_upstream):
    api(server, "POST", "/api/2.0/secrets/scopes/create", {"scope": "pol"})
    api(server, "POST", "/api/2.0/secrets/put", {"scope": "pol", "key": "key", "string_value": "sk-pol-test"})
    entity = openai_entity(mock_upstream, "gpt-4o", "llm/v1/chat")
    entity["external_model"]["openai_config"]["openai_api_key"] = "{{secrets/pol/key}}"
    create(server, "limited", entity)
    api(server, "PUT", "/api/2.0/serving-endpoints/limited/ai-gateway",
        {"rate_limits": [{"key": "endpoint", "calls": 1, "renewal_period": "minute"}]})
    create(server, "guarded", entity)
    api(server, "PUT", "/api/2.0/serving-endpoints/guarded/ai-gateway",
        {"guardrails": {"input": {"invalid_keywords": ["Project Falcon"]}, "output": {"pii": {"behavior": "BLOCK"}}}})
    return server


def test_openai_sdk_sees_rate_limits_and_guardrails(policed):
    oa = openai.OpenAI(base_url=f"{policed.host}/serving-endpoints", api_key=ADMIN_TOKEN, max_retries=0)
    msgs = [{"role": "user", "content": "hi"}]
    if time.time() % 60 > 50:  # limits count per calendar minute: keep both calls in one
        time.sleep(61 - time.time() % 60)
    oa.chat.completions.create(model="limited", messages=msgs)
    with pytest.raises(openai.RateLimitError) as e:
        oa.chat.completions.create(model="limited", messages=msgs)
    assert 1 <= int(e.value.response.headers["retry-after"]) <= 60
    assert e.value.response.headers["x-ratelimit-limit-requests"] == "1"

    with pytest.raises(openai.BadRequestError) as e:
        oa.chat.completions.create(model="guarded", messages=[{"role": "user", "content": "about project falcon"}])
    assert "invalid_keywords" in str(e.value)

    stream = oa.chat.completions.create(
        model="guarded", messages=[{"role": "user", "content": "card 4111 1111 1111 1111 ok"}], stream=True)
    text = ""
    with pytest.raises(openai.APIError) as e:
        for chunk in stream:
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
    assert "pii" in str(e.value) and "4111" not in text


def test_databricks_sdk_error_classes(policed):
    w = WorkspaceClient(host=policed.host, token=ADMIN_TOKEN)
    msg = [ChatMessage(role=ChatMessageRole.USER, content="about Project Falcon")]
    with pytest.raises(BadRequest) as e:
        w.serving_endpoints.query(name="guarded", messages=msg)
    assert "INPUT_GUARDRAIL_TRIGGERED" in str(e.value.error_code)
    # (databricks-sdk retries a 429 after its Retry-After until its own timeout, so a rate-limit
    # refusal is checked with the openai SDK and raw HTTP instead.)


def test_metrics_parse_with_the_prometheus_parser(policed):
    oa = openai.OpenAI(base_url=f"{policed.host}/serving-endpoints", api_key=ADMIN_TOKEN, max_retries=0)
    for _ in range(3):
        oa.chat.completions.create(model="guarded", messages=[{"role": "user", "content": "hello"}])
    for path in ["/metrics", "/api/2.0/serving-endpoints/guarded/metrics"]:
        r = requests.get(f"{policed.host}{path}", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30)
        assert r.status_code == 200, r.text
        families = {f.name: f for f in text_string_to_metric_families(r.text)}
        assert families["request_latency_ms"].type == "histogram"
        answered = [s.value for s in families["request_count"].samples
                    if s.name == "request_count_total" and s.labels.get("endpoint_name") == "guarded"
                    and s.labels.get("served_entity")]
        assert sum(answered) >= 3, families["request_count"].samples


def test_databricks_sdk_export_metrics(policed):
    w = WorkspaceClient(host=policed.host, token=ADMIN_TOKEN)
    w.serving_endpoints.query(name="guarded", messages=[ChatMessage(role=ChatMessageRole.USER, content="hello")])
    text = w.serving_endpoints.export_metrics(name="guarded").contents.read().decode()
    families = {f.name for f in text_string_to_metric_families(text)}
    assert {"request_count", "request_4xx_count", "request_5xx_count", "request_latency_ms"} <= families
    assert 'endpoint_name="limited"' not in text
