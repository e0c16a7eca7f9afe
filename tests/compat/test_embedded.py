"""The embedded runtime with a real model: all-MiniLM-L6-v2 (fetched from PyPI by `make`) served
in-process by a registered `embedded` version, queried with the openai SDK and databricks-sdk. Its
vectors are the model's: the first values for "hello world" and two cosine similarities match
reference figures computed independently (a numpy implementation of the same forward pass), and
related sentences are closer than unrelated ones."""

import datetime
import math
import os
import pathlib
import subprocess

import openai
import pytest
import requests
from databricks.sdk.service import serving

from conftest import ADMIN_TOKEN
from harness import BIN_DIR
from hosted_models import HEADERS, serve_version
MODEL_DIR = pathlib.Path(os.environ.get("MODELGATE_EMBED_MODEL", ".venv/models/all-MiniLM-L6-v2")).resolve()
# Reference figures of all-MiniLM-L6-v2 (mean pooling, L2-normalised), from a numpy forward pass.
HELLO_WORLD_FIRST5 = [-0.034477, 0.031023, 0.006735, 0.026109, -0.039362]
FOOD, BREAD, STOCKS = "A man is eating food.", "A man is eating a piece of bread.", "The stock market crashed today."


def cosine(a, b):
    return sum(x * y for x, y in zip(a, b)) / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


@pytest.fixture(scope="module")
def embedder(server):
    assert (MODEL_DIR / "model.safetensors").is_file(), f"the model is fetched by `make`: {MODEL_DIR}"
    registered, w = serve_version(server, "team.models.minilm", {"source": str(MODEL_DIR), "runtime": "embedded"},
                                  "minilm")
    assert registered["task"] == "llm/v1/embeddings"
    return w, server


def test_the_openai_sdk_gets_the_model_s_real_vectors(embedder):
    _, server = embedder
    client = openai.OpenAI(base_url=f"{server.host}/serving-endpoints", api_key=ADMIN_TOKEN, max_retries=0)
    # The SDK asks for base64 by default and decodes it; the floats must survive.
    hello = client.embeddings.create(model="minilm", input="hello world").data[0].embedding
    assert len(hello) == 384
    assert all(abs(a - b) < 1e-4 for a, b in zip(hello[:5], HELLO_WORLD_FIRST5)), hello[:5]
    r = client.embeddings.create(model="minilm", input=[FOOD, BREAD, STOCKS], encoding_format="float")
    food, bread, stocks = (d.embedding for d in r.data)
    assert abs(cosine(food, bread) - 0.7553) < 1e-3 and abs(cosine(food, stocks) - 0.0088) < 1e-3
    assert cosine(food, bread) > cosine(food, stocks)
    assert r.usage.prompt_tokens > 0


def test_databricks_sdk_and_invocations(embedder):
    w, server = embedder
    r = w.serving_endpoints.query("minilm", input=["hello world"])
    assert all(abs(a - b) < 1e-4 for a, b in zip(r.data[0].embedding[:5], HELLO_WORLD_FIRST5))
    raw = requests.post(f"{server.host}/serving-endpoints/minilm/invocations", json={"input": "hello world"},
                        headers=HEADERS, timeout=60).json()
    assert raw["object"] == "list" and len(raw["data"][0]["embedding"]) == 384
    logs = w.serving_endpoints.logs("minilm", w.serving_endpoints.get("minilm").config.served_entities[0].name).logs
    assert "loaded the embedding model (384 dimensions)" in logs


def test_the_foundation_model_serves_by_name_and_is_priced(embedder):
    w, server = embedder
    listed = requests.get(f"{server.host}/api/2.0/foundation-models", headers=HEADERS, timeout=30).json()
    minilm = next(m for m in listed["foundation_models"] if m["name"] == "system.ai.all-minilm-l6-v2")
    assert minilm["available"], minilm
    w.serving_endpoints.create_and_wait(
        name="foundation-embed",
        config=serving.EndpointCoreConfigInput(
            name="foundation-embed",
            served_entities=[serving.ServedEntityInput(entity_name="system.ai.all-minilm-l6-v2", workload_size="Small",
                                                       scale_to_zero_enabled=True)]),
        timeout=datetime.timedelta(seconds=120),
    )
    client = openai.OpenAI(base_url=f"{server.host}/serving-endpoints", api_key=ADMIN_TOKEN, max_retries=0)
    hello = client.embeddings.create(model="foundation-embed", input="hello world").data[0].embedding
    assert all(abs(a - b) < 1e-4 for a, b in zip(hello[:5], HELLO_WORLD_FIRST5))
    report = requests.get(f"{server.host}/api/2.0/usage?group_by=endpoint,provider,model", headers=HEADERS, timeout=30).json()
    row = next(r for r in report["rows"] if r["endpoint"] == "foundation-embed")
    assert (row["provider"], row["model"]) == ("modelgate", "system.ai.all-minilm-l6-v2")
    assert row["input_tokens"] == 4 and row["cost_usd"] > 0, row
    inventory = requests.get(f"{server.host}/api/2.0/inventory", headers=HEADERS, timeout=30).json()
    assert next(e for e in inventory["endpoints"] if e["name"] == "foundation-embed")["type"] == "foundation"


def test_break_even_of_the_foundation_endpoint(embedder):
    _, server = embedder
    get = lambda q: requests.get(f"{server.host}/api/2.0/usage/break-even?{q}", headers=HEADERS, timeout=30)  # noqa: E731
    r = get("endpoint=foundation-embed&days=30")
    assert r.status_code == 200, r.text
    b = r.json()
    assert b["model"] == "system.ai.all-minilm-l6-v2" and b["tokens"] >= 4 and b["bands"] == 1
    assert b["cheaper"] == "pay-per-token" and b["provisioned_usd"] == pytest.approx(0.05 * 24 * 30)
    assert b["break_even_tokens_per_hour"] == pytest.approx(0.05 / 0.01 * 1e6)
    # An endpoint without a foundation model is told so; so is a window out of range.
    r = get("endpoint=minilm")
    assert r.status_code == 400 and "serves no foundation model" in r.json()["message"], r.text
    assert get("endpoint=foundation-embed&days=0").status_code == 400
    # The CLI prints the comparison.
    out = subprocess.run([str(pathlib.Path(BIN_DIR).resolve() / "modelgate"), "usage", "break-even", "foundation-embed"],
                         env=dict(os.environ, MODELGATE_HOST=server.host, MODELGATE_TOKEN=ADMIN_TOKEN),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "one unit wins above 5000000 tokens an hour; for this traffic: pay-per-token" in out.stdout, out.stdout


def test_the_databricks_sdk_provisions_throughput_of_a_foundation_model(embedder):
    """`create_provisioned_throughput_endpoint`: one band of the embedding model (1,000 tokens/s);
    its queries are served within the band, billed by the band-hour instead of per token."""
    w, server = embedder
    w.serving_endpoints.create_provisioned_throughput_endpoint_and_wait(
        name="pt-embed",
        config=serving.PtEndpointCoreConfig(served_entities=[
            serving.PtServedModel(entity_name="system.ai.all-minilm-l6-v2", provisioned_model_units=1, name="minilm")]),
        timeout=datetime.timedelta(seconds=120),
    )
    ep = w.serving_endpoints.get("pt-embed")
    assert ep.state.ready == serving.EndpointStateReady.READY
    assert "1 band(s) held, 1000 tokens/s" in ep.config.served_entities[0].state.deployment_state_message
    client = openai.OpenAI(base_url=f"{server.host}/serving-endpoints", api_key=ADMIN_TOKEN, max_retries=0)
    hello = client.embeddings.create(model="pt-embed", input="hello world").data[0].embedding
    assert all(abs(a - b) < 1e-4 for a, b in zip(hello[:5], HELLO_WORLD_FIRST5))
    log = requests.get(f"{server.host}/api/2.0/requests?endpoint=pt-embed", headers=HEADERS, timeout=30).json()
    (query,) = log["requests"]
    assert (query["billing"], query["cost_usd"], query["input_tokens"]) == ("provisioned", 0.0, 4), query
    # A config without units is refused by the provisioned-throughput route, naming the field.
    r = requests.put(f"{server.host}/api/2.0/serving-endpoints/pt/pt-embed/config", headers=HEADERS, timeout=30,
                     json={"config": {"served_entities": [{"entity_name": "system.ai.all-minilm-l6-v2"}]}})
    assert r.status_code == 400 and "provisioned_model_units" in r.json()["message"], r.text
