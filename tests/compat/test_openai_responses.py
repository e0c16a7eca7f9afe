"""The openai SDK's Responses API (`responses.create`, plain and streamed) against modelgate, on
endpoints backed by OpenAI and by Anthropic (the mock upstream speaks both)."""

import json

import openai
import pytest



@pytest.mark.parametrize("model", ["oa-chat", "claude"])
def test_responses_create(oa, model):
    r = oa.responses.create(model=model, instructions="Be brief.", input="hello responses", max_output_tokens=32)
    assert r.object == "response" and r.status == "completed" and r.model == model
    assert r.output_text == "echo: hello responses"
    assert r.output[0].type == "message" and r.output[0].content[0].type == "output_text"
    assert r.usage.output_tokens > 0 and r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens


@pytest.mark.parametrize("model", ["oa-chat", "claude"])
def test_responses_stream(oa, model):
    events = list(oa.responses.create(model=model, input=[{"role": "user", "content": "stream responses"}], stream=True))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "echo: stream responses"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[-1].response.output_text == "echo: stream responses"


def test_responses_errors(oa):
    with pytest.raises(openai.NotFoundError):
        oa.responses.create(model="no-such-endpoint", input="x")
    with pytest.raises(openai.BadRequestError, match="not stored"):
        oa.responses.create(model="oa-chat", input="x", previous_response_id="resp_123")


WEATHER = {"type": "function", "name": "weather", "description": "The weather in a city",
           "parameters": {"type": "object", "properties": {"text": {"type": "string"}}}}


@pytest.mark.parametrize("model", ["oa-chat", "claude"])
def test_a_function_call_round_trip(oa, model):
    first = oa.responses.create(model=model, input="weather in Oslo", tools=[WEATHER])
    call = next(o for o in first.output if o.type == "function_call")
    assert call.name == "weather" and json.loads(call.arguments) == {"text": "weather in Oslo"}
    second = oa.responses.create(model=model, tools=[WEATHER], input=[
        {"role": "user", "content": "weather in Oslo"},
        {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": "-3 C and snow"},
    ])
    assert second.output_text == "echo: -3 C and snow"


@pytest.mark.parametrize("model", ["oa-chat", "claude"])
def test_a_streamed_function_call(oa, model):
    events = list(oa.responses.create(model=model, input="weather in Oslo", tools=[WEATHER], stream=True))
    args = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    assert json.loads(args) == {"text": "weather in Oslo"}
    done = [e.item for e in events if e.type == "response.output_item.done"]
    assert done[-1].type == "function_call" and done[-1].name == "weather"
