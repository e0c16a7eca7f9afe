"""The `openai` SDK against every chat provider modelgate translates to (a tool-calling
conversation, whole and streamed), and its `images.generate` against image endpoints backed by
OpenAI, Azure OpenAI, Titan on Bedrock and Imagen on Vertex AI. The mock upstream speaks each
provider's wire format, so a call only comes back if modelgate translated it both ways."""

import base64
import json
import pathlib

import pytest
import requests

from conftest import ADMIN_TOKEN
from test_dataplane_clients import api, create, openai_entity

ROOT = pathlib.Path(__file__).resolve().parents[2]
HEADERS = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def vertex_entity(model, task):
    return {"external_model": {"provider": "google-cloud-vertex-ai", "name": model, "task": task,
                               "google_cloud_vertex_ai_config": {"project_id": "proj", "region": "us-central1",
                                                                 "private_key": "{{secrets/dp/gcp-sa}}"}}}


def azure_entity(mock, deployment, task):
    return {"external_model": {"provider": "openai", "name": deployment, "task": task, "openai_config": {
        "openai_api_type": "azure", "openai_api_key": "{{secrets/dp/key}}", "openai_api_base": mock.host,
        "openai_deployment_name": deployment, "openai_api_version": "2025-04-01-preview"}}}


@pytest.fixture(scope="module")
def everywhere(endpoints, mock_upstream):
    """Chat endpoints on Azure, Cohere, Gemini and Claude on Vertex (OpenAI, Anthropic and Bedrock
    ones come with `endpoints`), and image endpoints."""
    server = endpoints
    pem = (ROOT / "crates/mock-upstream/testdata/test-service-account.pem").read_text()
    key_file = json.dumps({"type": "service_account", "project_id": "proj", "private_key_id": "k1", "private_key": pem,
                           "client_email": "svc@proj.iam.gserviceaccount.com",
                           "token_uri": "https://oauth2.googleapis.com/token"})
    api(server, "POST", "/api/2.0/secrets/put", {"scope": "dp", "key": "gcp-sa", "string_value": key_file})
    create(server, "azure-chat", azure_entity(mock_upstream, "gpt-4o-deploy", "llm/v1/chat"))
    create(server, "cohere-chat", {"external_model": {"provider": "cohere", "name": "command-r-plus", "task": "llm/v1/chat",
                                                      "cohere_config": {"cohere_api_key": "{{secrets/dp/key}}"}}})
    create(server, "gemini-chat", vertex_entity("gemini-2.0-flash", "llm/v1/chat"))
    create(server, "vertex-claude", vertex_entity("claude-sonnet-4@20250514", "llm/v1/chat"))
    create(server, "oa-image", openai_entity(mock_upstream, "dall-e-3", "llm/v1/images"))
    create(server, "gpt-image", openai_entity(mock_upstream, "gpt-image-1", "llm/v1/images"))
    create(server, "azure-image", azure_entity(mock_upstream, "dall-e-3", "llm/v1/images"))
    create(server, "titan-image", {"external_model": {
        "provider": "amazon-bedrock", "name": "amazon.titan-image-generator-v2:0", "task": "llm/v1/images",
        "amazon_bedrock_config": {"aws_region": "us-east-1", "bedrock_provider": "amazon",
                                  "aws_access_key_id": "{{secrets/dp/aws-id}}",
                                  "aws_secret_access_key": "{{secrets/dp/aws-secret}}"}}})
    create(server, "imagen", vertex_entity("imagen-4.0-generate-001", "llm/v1/images"))
    return server


CHAT = ["oa-chat", "azure-chat", "claude", "bedrock", "cohere-chat", "gemini-chat", "vertex-claude"]
LOOKUP = [{"type": "function", "function": {"name": "lookup", "description": "Looks a thing up.",
                                            "parameters": {"type": "object", "properties": {"text": {"type": "string"}}}}}]


@pytest.mark.parametrize("model", CHAT)
def test_a_tool_calling_conversation(oa, everywhere, model):
    question = {"role": "user", "content": "trains to Bergen"}
    first = oa.chat.completions.create(model=model, messages=[question], tools=LOOKUP, max_tokens=64)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "lookup" and json.loads(call.function.arguments) == {"text": "trains to Bergen"}
    second = oa.chat.completions.create(model=model, tools=LOOKUP, max_tokens=64, messages=[
        question, choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "hourly from 07:00"}])
    assert second.choices[0].message.content == "echo: hourly from 07:00"
    assert second.choices[0].finish_reason == "stop"


@pytest.mark.parametrize("model", CHAT)
def test_a_streamed_tool_call(oa, everywhere, model):
    calls, finish = {}, None
    for chunk in oa.chat.completions.create(model=model, messages=[{"role": "user", "content": "ferry times"}],
                                            tools=LOOKUP, stream=True, max_tokens=64):
        for d in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            c = calls.setdefault(d.index, {"id": None, "name": "", "arguments": ""})
            c["id"] = c["id"] or d.id
            c["name"] += (d.function.name or "") if d.function else ""
            c["arguments"] += (d.function.arguments or "") if d.function else ""
        if chunk.choices and chunk.choices[0].finish_reason:
            finish = chunk.choices[0].finish_reason
    assert finish == "tool_calls" and list(calls) == [0]
    assert calls[0]["id"] and calls[0]["name"] == "lookup"
    assert json.loads(calls[0]["arguments"]) == {"text": "ferry times"}


def last_request(server, endpoint):
    r = requests.get(f"{server.host}/api/2.0/requests", params={"endpoint": endpoint}, headers=HEADERS, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["requests"][0]


@pytest.mark.parametrize("model,price", [("oa-image", 0.04), ("azure-image", 0.04), ("titan-image", 0.01),
                                         ("imagen", 0.04)])
def test_images_generate(oa, everywhere, model, price):
    r = oa.images.generate(model=model, prompt="a lighthouse at dusk", n=2, size="1024x1024",
                           response_format="b64_json")
    assert len(r.data) == 2
    assert all(base64.b64decode(d.b64_json).startswith(b"\x89PNG") for d in r.data)
    rec = last_request(everywhere, model)
    assert rec["status_code"] == 200 and rec["images"] == 2
    assert rec["cost_usd"] == pytest.approx(2 * price)


def test_images_generate_gpt_image_reports_tokens(oa, everywhere):
    r = oa.images.generate(model="gpt-image", prompt="a lighthouse at dusk")
    assert r.usage.input_tokens == 4 and r.usage.output_tokens == 272
    rec = last_request(everywhere, "gpt-image")
    assert (rec["input_tokens"], rec["output_tokens"], rec["images"]) == (4, 272, 1)
    assert rec["cost_usd"] == pytest.approx((4 * 5.0 + 272 * 40.0) / 1e6)


def test_images_errors_are_openai_errors(oa, everywhere):
    import openai
    with pytest.raises(openai.BadRequestError) as e:
        oa.images.generate(model="imagen", prompt="kite", response_format="url")
    assert "response_format 'url'" in str(e.value)
    with pytest.raises(openai.BadRequestError) as e:
        oa.images.generate(model="titan-image", prompt="__filtered__ kite")
    assert "content filters" in str(e.value)
    with pytest.raises(openai.BadRequestError) as e:
        oa.images.generate(model="oa-chat", prompt="kite")
    assert "not llm/v1/images" in str(e.value)
    url = oa.images.generate(model="oa-image", prompt="kite", response_format="url")
    assert url.data[0].url.startswith("https://")
