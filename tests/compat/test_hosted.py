"""A hosted model through the real clients: a registered version whose command is the mock
upstream (an OpenAI-compatible server) is served by an endpoint the databricks-sdk creates, and
answers the openai SDK and databricks-sdk queries."""

import os
import pathlib
import re
import signal
import sys
import time

import openai
import pytest
import requests
from databricks.sdk.service import serving

from conftest import ADMIN_TOKEN
from harness import BIN_DIR, start_server
from hosted_models import HEADERS, serve_version


@pytest.fixture(scope="module")
def hosted(server, tmp_path_factory):
    source = tmp_path_factory.mktemp("model")
    (source / "README").write_text("an OpenAI-compatible server")
    command = [str(pathlib.Path(BIN_DIR).resolve() / "modelgate-mock-upstream"), "--listen", "127.0.0.1:$PORT"]
    _, w = serve_version(server, "team.models.echo", {"source": str(source), "runtime": "process", "command": command},
                         "hosted-echo")
    return w, server


def test_the_openai_sdk_queries_a_hosted_model(hosted):
    _, server = hosted
    client = openai.OpenAI(base_url=f"{server.host}/serving-endpoints", api_key=ADMIN_TOKEN, max_retries=0)
    r = client.chat.completions.create(model="hosted-echo", messages=[{"role": "user", "content": "hi hosted"}])
    assert r.choices[0].message.content == "echo: hi hosted"
    chunks = client.chat.completions.create(model="hosted-echo", messages=[{"role": "user", "content": "a b c"}],
                                            stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: a b c"


def test_databricks_sdk_queries_and_reads_logs(hosted):
    w, _ = hosted
    r = w.serving_endpoints.query("hosted-echo", messages=[
        serving.ChatMessage(role=serving.ChatMessageRole.USER, content="from the sdk")])
    assert r.choices[0].message.content == "echo: from the sdk"
    ep = w.serving_endpoints.get("hosted-echo")
    entity = ep.config.served_entities[0]
    assert (entity.entity_name, entity.workload_size) == ("team.models.echo", "Small")
    assert "Served by 1 replica" in entity.state.deployment_state_message
    logs = w.serving_endpoints.logs("hosted-echo", entity.name).logs
    assert "replica ready after" in logs


@pytest.fixture(scope="module")
def scoring(server, tmp_path_factory):
    source = tmp_path_factory.mktemp("scorer")
    (source / "model.txt").write_text("sums each row")
    script = pathlib.Path(__file__).with_name("scoring_server.py")
    version = {"source": str(source), "runtime": "process", "task": "mlflow/scoring",
               "command": [sys.executable, str(script)]}
    _, w = serve_version(server, "team.models.summer", version, "summer")
    return w, server


def test_databricks_sdk_scores_a_custom_model_in_every_input_format(scoring):
    w, _ = scoring
    q = lambda **kw: w.serving_endpoints.query("summer", **kw).predictions  # noqa: E731
    assert q(dataframe_split=serving.DataframeSplitInput(columns=["a", "b"], data=[[1, 2], [3, 4]])) == [3, 7]
    assert q(dataframe_records=[{"a": 1, "b": 2}, {"a": 10, "b": 20}]) == [3, 30]
    assert q(instances=[[1, 2, 3]]) == [6]
    assert q(inputs=[[5, 5]]) == [10]
    assert w.serving_endpoints.get("summer").task == "mlflow/scoring"


def test_scoring_errors_are_named(scoring):
    _, server = scoring
    url = f"{server.host}/serving-endpoints/summer/invocations"
    r = requests.post(url, json={"messages": [{"role": "user", "content": "hi"}]}, headers=HEADERS, timeout=30)
    assert r.status_code == 400 and "dataframe_split" in r.json()["message"], r.text
    r = requests.post(url, json={"inputs": [[1]], "instances": [[2]]}, headers=HEADERS, timeout=30)
    assert r.status_code == 400 and "give only one of" in r.json()["message"], r.text
    r = requests.post(url, json={"inputs": ["not numbers"]}, headers=HEADERS, timeout=30)
    assert r.status_code == 400 and "cannot score" in r.json()["message"], r.text
    r = requests.post(url, json={"inputs": [[1]], "stream": True}, headers=HEADERS, timeout=30)
    assert r.status_code == 400 and "stream" in r.json()["message"], r.text


def test_replicas_a_killed_server_left_are_stopped_at_its_next_start(tmp_path):
    """SIGKILL leaves the server no chance to stop its replicas; the next start on the same data
    directory finds them (by their working directories) and stops them with their groups."""
    def alive(pid):
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] != "Z"
        except FileNotFoundError:
            return False

    data, source = tmp_path / "data", tmp_path / "model"
    source.mkdir()
    command = [str(pathlib.Path(BIN_DIR).resolve() / "modelgate-mock-upstream"), "--listen", "127.0.0.1:$PORT"]
    first = start_server(data, ADMIN_TOKEN)
    pid = None
    try:
        post = lambda path, body: requests.post(f"{first.host}{path}", json=body, headers=HEADERS, timeout=60)  # noqa: E731
        assert post("/api/2.0/registered-models", {"name": "orphans"}).status_code == 200
        r = post("/api/2.0/registered-models/orphans/versions",
                 {"source": str(source), "runtime": "process", "command": command})
        assert r.status_code == 200, r.text
        r = post("/api/2.0/serving-endpoints", {"name": "orphans", "config": {"served_entities": [
            {"name": "m", "entity_name": "orphans", "entity_version": "1", "workload_size": "Small",
             "scale_to_zero_enabled": False}]}})
        assert r.status_code == 200, r.text
        for _ in range(300):
            logs = requests.get(f"{first.host}/api/2.0/serving-endpoints/orphans/served-models/m/logs",
                                headers=HEADERS, timeout=10).json().get("logs", "")
            found = re.search(r"\(pid (\d+)\)", logs)
            if found and "replica ready" in logs:
                pid = int(found.group(1))
                break
            time.sleep(0.1)
        assert pid and alive(pid), logs
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(timeout=10)
        time.sleep(0.3)
        assert alive(pid), "the killed server's replica is still running"
        second = start_server(data, ADMIN_TOKEN)
        try:
            for _ in range(100):
                if not alive(pid):
                    break
                time.sleep(0.1)
            assert not alive(pid), "the next start stopped it"
        finally:
            second.stop()
    finally:
        first.stop()
        if pid and alive(pid):
            os.killpg(pid, signal.SIGKILL)
