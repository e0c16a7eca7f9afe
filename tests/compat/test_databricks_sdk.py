"""databricks-sdk's WorkspaceClient against the running modelgate binary."""

import base64

import pytest
from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import (
    InvalidParameterValue,
    NotFound,
    OperationFailed,
    ResourceAlreadyExists,
    ResourceConflict,
    Unauthenticated,
)
from databricks.sdk.service import serving

from conftest import ADMIN_TOKEN, SECRET_VALUE


@pytest.fixture(scope="module")
def w(server):
    return WorkspaceClient(host=server.host, token=ADMIN_TOKEN)


def chat_entity(model, key="{{secrets/sdk/openai}}"):
    return serving.ServedEntityInput(
        external_model=serving.ExternalModel(
            provider=serving.ExternalModelProvider.OPENAI,
            name=model,
            task="llm/v1/chat",
            openai_config=serving.OpenAiConfig(openai_api_key=key),
        )
    )


def test_secrets_round_trip(w):
    w.secrets.create_scope(scope="sdk")
    with pytest.raises(ResourceAlreadyExists):
        w.secrets.create_scope(scope="sdk")
    w.secrets.put_secret(scope="sdk", key="openai", string_value=SECRET_VALUE)
    w.secrets.put_secret(scope="sdk", key="blob", bytes_value=base64.b64encode(b"\x00\x01").decode())
    assert "sdk" in [s.name for s in w.secrets.list_scopes()]
    keys = {s.key: s.last_updated_timestamp for s in w.secrets.list_secrets(scope="sdk")}
    assert set(keys) == {"openai", "blob"} and all(t > 1_600_000_000_000 for t in keys.values())
    got = w.secrets.get_secret(scope="sdk", key="blob")
    assert base64.b64decode(got.value) == b"\x00\x01"
    w.secrets.delete_secret(scope="sdk", key="blob")
    with pytest.raises(NotFound):
        w.secrets.get_secret(scope="sdk", key="blob")


def test_endpoint_lifecycle(w):
    ep = w.serving_endpoints.create_and_wait(
        name="sdk-chat",
        config=serving.EndpointCoreConfigInput(name="sdk-chat", served_entities=[chat_entity("gpt-4o-mini")]),
        tags=[serving.EndpointTag(key="team", value="ml")],
    )
    assert ep.state.ready == serving.EndpointStateReady.READY
    assert ep.state.config_update == serving.EndpointStateConfigUpdate.NOT_UPDATING
    assert ep.config.config_version == 1
    assert ep.config.served_entities[0].name == "gpt-4o-mini"
    assert ep.config.served_entities[0].state.deployment == serving.ServedModelStateDeployment.DEPLOYMENT_READY
    assert ep.config.served_entities[0].external_model.openai_config.openai_api_key == "{{secrets/sdk/openai}}"

    got = w.serving_endpoints.get("sdk-chat")
    assert got.id == ep.id and len(got.id) == 32
    assert got.tags[0].key == "team"
    assert "sdk-chat" in [e.name for e in w.serving_endpoints.list()]

    # A second update while one is in progress is a conflict (the deployer is held 300 ms).
    w.serving_endpoints.update_config(name="sdk-chat", served_entities=[chat_entity("gpt-4o")])
    with pytest.raises(ResourceConflict):
        w.serving_endpoints.update_config(name="sdk-chat", served_entities=[chat_entity("o3")])
    updated = w.serving_endpoints.wait_get_serving_endpoint_not_updating("sdk-chat")
    assert updated.config.config_version == 2
    assert updated.config.served_entities[0].name == "gpt-4o"

    updated = w.serving_endpoints.update_config_and_wait(
        name="sdk-chat",
        served_entities=[chat_entity("gpt-4o"), chat_entity("gpt-4.1")],
        traffic_config=serving.TrafficConfig(routes=[
            serving.Route(served_model_name="gpt-4o", traffic_percentage=90),
            serving.Route(served_model_name="gpt-4-1", traffic_percentage=10),
        ]),
    )
    assert updated.config.config_version == 3
    assert [r.traffic_percentage for r in updated.config.traffic_config.routes] == [90, 10]

    gw = w.serving_endpoints.put_ai_gateway(
        "sdk-chat",
        usage_tracking_config=serving.AiGatewayUsageTrackingConfig(enabled=True),
        rate_limits=[serving.AiGatewayRateLimit(calls=10, renewal_period=serving.AiGatewayRateLimitRenewalPeriod.MINUTE,
                                                key=serving.AiGatewayRateLimitKey.USER)],
    )
    assert gw.rate_limits[0].calls == 10 and gw.usage_tracking_config.enabled

    tags = w.serving_endpoints.patch("sdk-chat", add_tags=[serving.EndpointTag(key="env", value="dev")], delete_tags=["team"])
    assert [(t.key, t.value) for t in tags.tags] == [("env", "dev")]

    logs = w.serving_endpoints.build_logs("sdk-chat", "gpt-4o")
    assert "credentials resolved" in logs.logs and SECRET_VALUE not in logs.logs
    doc = w.serving_endpoints.get_open_api("sdk-chat")
    assert b'"openapi": "3.0.3"' in doc.contents.read()

    w.serving_endpoints.delete("sdk-chat")
    with pytest.raises(NotFound):
        w.serving_endpoints.get("sdk-chat")


def test_errors_map_to_sdk_exceptions(w, server):
    with pytest.raises(InvalidParameterValue) as e:
        w.serving_endpoints.create(
            name="bad",
            config=serving.EndpointCoreConfigInput(name="bad", served_entities=[chat_entity("m", key="sk-not-a-reference")]),
        )
    assert "config.served_entities[0].external_model.openai_config.openai_api_key" in str(e.value)
    assert "sk-not-a-reference" not in str(e.value)

    w.serving_endpoints.create_and_wait(name="dup", config=serving.EndpointCoreConfigInput(name="dup", served_entities=[chat_entity("m")]))
    with pytest.raises(ResourceAlreadyExists):
        w.serving_endpoints.create(name="dup", config=serving.EndpointCoreConfigInput(name="dup", served_entities=[chat_entity("m")]))

    with pytest.raises(OperationFailed):
        w.serving_endpoints.update_config_and_wait(name="dup", served_entities=[chat_entity("m", key="{{secrets/sdk/absent}}")])
    assert w.serving_endpoints.get("dup").state.ready == serving.EndpointStateReady.READY

    bad = WorkspaceClient(host=server.host, token="mgt_wrong")
    with pytest.raises(Unauthenticated):
        bad.serving_endpoints.list()
    w.serving_endpoints.delete("dup")
