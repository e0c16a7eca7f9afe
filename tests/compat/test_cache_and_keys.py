"""The `openai` SDK against the response cache and against keys with their own limits: a repeated
embeddings request comes back from the cache (the header says so, the answer is the same); a key
limited to one endpoint is refused on another with the SDK's PermissionDeniedError; a key whose
budget is spent gets the SDK's RateLimitError while its owner's other key goes on."""

import openai
import pytest
import requests

from conftest import ADMIN_TOKEN
from test_dataplane_clients import api, create, openai_entity

HEADERS = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture(scope="module")
def keyed(endpoints, mock_upstream):
    """An embeddings endpoint with a cache, and a user allowed to query it and `oa-chat`."""
    server = endpoints
    create(server, "cached-embed", openai_entity(mock_upstream, "text-embedding-3-small", "llm/v1/embeddings"))
    api(server, "PUT", "/api/2.0/serving-endpoints/cached-embed/ai-gateway",
        {"cache_config": {"enabled": True, "ttl_seconds": 600}})
    r = requests.post(f"{server.host}/api/2.0/preview/scim/v2/Users", json={"userName": "keyed@example.com"},
                      headers=HEADERS, timeout=30)
    assert r.status_code == 201, r.text
    for name in ["cached-embed", "oa-chat"]:
        ep = api(server, "GET", f"/api/2.0/serving-endpoints/{name}")
        api(server, "PATCH", f"/api/2.0/permissions/serving-endpoints/{ep['id']}",
            {"access_control_list": [{"user_name": "keyed@example.com", "permission_level": "CAN_QUERY"}]})
    return server


def key(server, limits):
    body = {"user_name": "keyed@example.com", "limits": limits}
    return api(server, "POST", "/api/2.0/token-management/on-behalf-of/tokens", body)["token_value"]


def client(server, token):
    return openai.OpenAI(base_url=f"{server.host}/serving-endpoints", api_key=token, max_retries=0)


def test_a_repeated_embeddings_request_comes_from_the_cache(keyed, mock_upstream):
    oa = client(keyed, ADMIN_TOKEN)
    words = ["a sentence to embed once", "and another"]
    first = oa.embeddings.with_raw_response.create(model="cached-embed", input=words)
    second = oa.embeddings.with_raw_response.create(model="cached-embed", input=words)
    assert first.headers["x-modelgate-cache"] == "miss"
    assert second.headers["x-modelgate-cache"] == "hit"
    assert [d.embedding for d in second.parse().data] == [d.embedding for d in first.parse().data]
    fresh = oa.embeddings.with_raw_response.create(model="cached-embed", input=words,
                                                   extra_headers={"Cache-Control": "no-cache"})
    assert fresh.headers["x-modelgate-cache"] == "bypass"


def test_a_key_limited_to_one_endpoint_is_refused_on_another(keyed):
    oa = client(keyed, key(keyed, {"allowed_endpoints": ["cached-embed"]}))
    assert len(oa.embeddings.create(model="cached-embed", input="fine").data) == 1
    with pytest.raises(openai.PermissionDeniedError) as refused:
        oa.chat.completions.create(model="oa-chat", messages=[{"role": "user", "content": "hi"}])
    assert "may query only 'cached-embed'" in str(refused.value)
    assert [m.id for m in oa.models.list()] == ["cached-embed"]


def test_a_key_with_a_spent_budget_is_stopped_and_the_owners_other_key_is_not(keyed):
    capped = client(keyed, key(keyed, {"budget": {"amount_usd": 0.000001, "period": "day", "action": "BLOCK"}}))
    other = client(keyed, key(keyed, {}))
    ask = {"model": "oa-chat", "messages": [{"role": "user", "content": "hello"}]}
    capped.chat.completions.create(**ask)
    with pytest.raises(openai.RateLimitError) as stopped:
        capped.chat.completions.create(**ask)
    assert "budget of token" in str(stopped.value)
    assert other.chat.completions.create(**ask).choices[0].message.content == "echo: hello"
