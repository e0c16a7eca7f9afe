"""Anthropic's own SDK against modelgate's Messages API (`base_url` set to the server, the token
as its API key): plain and streamed messages, token counting and errors, against endpoints backed
by OpenAI, Anthropic and Amazon Bedrock (the mock upstream speaks all three)."""

import anthropic
import pytest

from conftest import ADMIN_TOKEN


@pytest.fixture(scope="module")
def claude_client(endpoints):
    return anthropic.Anthropic(base_url=endpoints.host, api_key=ADMIN_TOKEN, max_retries=0)


@pytest.mark.parametrize("model", ["oa-chat", "claude", "bedrock"])
def test_messages_create(claude_client, model):
    m = claude_client.messages.create(model=model, max_tokens=32, system="Be brief.",
                                      messages=[{"role": "user", "content": "hello anthropic"}])
    assert m.type == "message" and m.role == "assistant" and m.model == model
    assert m.content[0].type == "text" and m.content[0].text == "echo: hello anthropic"
    assert m.stop_reason == "end_turn"
    assert m.usage.output_tokens > 0


@pytest.mark.parametrize("model", ["oa-chat", "claude", "bedrock"])
def test_messages_stream(claude_client, model):
    with claude_client.messages.stream(model=model, max_tokens=32,
                                       messages=[{"role": "user", "content": "stream anthropic"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "echo: stream anthropic"
    assert final.content[0].text == text and final.stop_reason == "end_turn"


def test_count_tokens_and_errors(claude_client):
    short = claude_client.messages.count_tokens(model="oa-chat", messages=[{"role": "user", "content": "hi"}])
    long = claude_client.messages.count_tokens(model="oa-chat", messages=[{"role": "user", "content": "word " * 200}])
    assert 0 < short.input_tokens < long.input_tokens
    with pytest.raises(anthropic.NotFoundError):
        claude_client.messages.create(model="no-such-endpoint", max_tokens=8, messages=[{"role": "user", "content": "x"}])
    wrong = anthropic.Anthropic(base_url=claude_client.base_url, api_key="mgt_not_a_token", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        wrong.messages.create(model="oa-chat", max_tokens=8, messages=[{"role": "user", "content": "x"}])


WEATHER = {"name": "weather", "description": "The weather in a city",
           "input_schema": {"type": "object", "properties": {"text": {"type": "string"}}}}


@pytest.mark.parametrize("model", ["oa-chat", "claude", "bedrock"])
@pytest.mark.parametrize("stream", [False, True])
def test_a_tool_round_trip(claude_client, model, stream):
    question = [{"role": "user", "content": "weather in Oslo"}]
    if stream:
        with claude_client.messages.stream(model=model, max_tokens=64, tools=[WEATHER], messages=question) as s:
            first = s.get_final_message()
    else:
        first = claude_client.messages.create(model=model, max_tokens=64, tools=[WEATHER], messages=question)
    assert first.stop_reason == "tool_use"
    call = next(b for b in first.content if b.type == "tool_use")
    assert call.name == "weather" and call.input == {"text": "weather in Oslo"}
    answer = claude_client.messages.create(model=model, max_tokens=64, tools=[WEATHER], messages=question + [
        {"role": "assistant", "content": [b.model_dump() for b in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "-3 C and snow"}]},
    ])
    assert answer.stop_reason == "end_turn" and answer.content[0].text == "echo: -3 C and snow"
