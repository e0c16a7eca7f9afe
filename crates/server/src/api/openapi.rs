//! The OpenAPI 3 document served at `GET .../openapi`, describing one endpoint's invocation
//! request and response for its task.

use serde_json::{Value, json};

fn usage(with_completion: bool) -> Value {
    let mut props = serde_json::Map::new();
    props.insert("prompt_tokens".into(), json!({"type": "integer"}));
    props.insert("total_tokens".into(), json!({"type": "integer"}));
    if with_completion {
        props.insert("completion_tokens".into(), json!({"type": "integer"}));
    }
    json!({"type": "object", "properties": props})
}

fn common_params() -> Value {
    json!({
        "max_tokens": {"type": "integer", "minimum": 1},
        "temperature": {"type": "number", "minimum": 0, "maximum": 2, "default": 1.0},
        "top_p": {"type": "number", "minimum": 0, "maximum": 1},
        "n": {"type": "integer", "minimum": 1, "maximum": 5, "default": 1},
        "stop": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
        "stream": {"type": "boolean", "default": false},
        "extra_params": {"type": "object", "description": "Passed to the provider as is."},
        "client_request_id": {"type": "string", "description": "Recorded in usage and inference logs."},
        "usage_context": {"type": "object", "additionalProperties": {"type": "string"},
                          "description": "Attribution keys (team, project, ...) recorded with usage."}
    })
}

fn merge(mut a: Value, b: Value) -> Value {
    if let (Some(a), Value::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
    a
}

fn schemas(task: Option<&str>) -> (Value, Value) {
    match task {
        Some("llm/v1/chat") => (
            json!({
                "type": "object",
                "required": ["messages"],
                "properties": merge(common_params(), json!({
                    "messages": {"type": "array", "minItems": 1, "items": {
                        "type": "object", "required": ["role"],
                        "properties": {
                            "role": {"type": "string", "enum": ["system", "user", "assistant", "tool"]},
                            "content": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}]},
                            "tool_calls": {"type": "array", "items": {"type": "object"}},
                            "tool_call_id": {"type": "string"}
                        }}},
                    "tools": {"type": "array", "items": {"type": "object"}},
                    "tool_choice": {"oneOf": [{"type": "string"}, {"type": "object"}]},
                    "response_format": {"type": "object"},
                    "stream_options": {"type": "object", "properties": {"include_usage": {"type": "boolean"}}},
                    "seed": {"type": "integer"},
                    "user": {"type": "string"}
                }))
            }),
            json!({
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "object": {"type": "string", "enum": ["chat.completion"]},
                    "created": {"type": "integer", "description": "Unix seconds."},
                    "model": {"type": "string"},
                    "choices": {"type": "array", "items": {"type": "object", "properties": {
                        "index": {"type": "integer"},
                        "message": {"type": "object", "properties": {
                            "role": {"type": "string"}, "content": {"type": "string", "nullable": true},
                            "tool_calls": {"type": "array", "items": {"type": "object"}}}},
                        "finish_reason": {"type": "string", "nullable": true}}}},
                    "usage": usage(true)
                }
            }),
        ),
        Some("llm/v1/completions") => (
            json!({
                "type": "object",
                "required": ["prompt"],
                "properties": merge(common_params(), json!({
                    "prompt": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
                }))
            }),
            json!({
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "object": {"type": "string", "enum": ["text_completion"]},
                    "created": {"type": "integer"},
                    "model": {"type": "string"},
                    "choices": {"type": "array", "items": {"type": "object", "properties": {
                        "index": {"type": "integer"}, "text": {"type": "string"},
                        "finish_reason": {"type": "string", "nullable": true},
                        "logprobs": {"type": "object", "nullable": true}}}},
                    "usage": usage(true)
                }
            }),
        ),
        Some("llm/v1/embeddings") => (
            json!({
                "type": "object",
                "required": ["input"],
                "properties": {
                    "input": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
                    "encoding_format": {"type": "string", "enum": ["float", "base64"]},
                    "client_request_id": {"type": "string"},
                    "usage_context": {"type": "object", "additionalProperties": {"type": "string"}}
                }
            }),
            json!({
                "type": "object",
                "properties": {
                    "object": {"type": "string", "enum": ["list"]},
                    "model": {"type": "string"},
                    "data": {"type": "array", "items": {"type": "object", "properties": {
                        "object": {"type": "string", "enum": ["embedding"]},
                        "index": {"type": "integer"},
                        "embedding": {"type": "array", "items": {"type": "number"}}}}},
                    "usage": usage(false)
                }
            }),
        ),
        Some("llm/v1/images") => (
            json!({
                "type": "object",
                "required": ["prompt"],
                "properties": {
                    "prompt": {"type": "string"},
                    "n": {"type": "integer", "minimum": 1, "maximum": 10},
                    "size": {"type": "string", "example": "1024x1024"},
                    "quality": {"type": "string"},
                    "response_format": {"type": "string", "enum": ["url", "b64_json"]},
                    "output_format": {"type": "string", "enum": ["png", "jpeg", "webp"]},
                    "negative_prompt": {"type": "string"},
                    "seed": {"type": "integer"},
                    "client_request_id": {"type": "string"},
                    "usage_context": {"type": "object", "additionalProperties": {"type": "string"}}
                }
            }),
            json!({
                "type": "object",
                "properties": {
                    "created": {"type": "integer"},
                    "data": {"type": "array", "items": {"type": "object", "properties": {
                        "b64_json": {"type": "string"}, "url": {"type": "string"},
                        "revised_prompt": {"type": "string"}}}},
                    "usage": {"type": "object", "properties": {
                        "input_tokens": {"type": "integer"}, "output_tokens": {"type": "integer"},
                        "total_tokens": {"type": "integer"}}}
                }
            }),
        ),
        _ => (
            json!({
                "type": "object",
                "description": "One of the custom-model input formats.",
                "properties": {
                    "dataframe_records": {"type": "array", "items": {"type": "object"}},
                    "dataframe_split": {"type": "object", "properties": {
                        "columns": {"type": "array"}, "data": {"type": "array"}, "index": {"type": "array"}}},
                    "instances": {"type": "array"},
                    "inputs": {}
                }
            }),
            json!({"type": "object", "properties": {"predictions": {}}}),
        ),
    }
}

/// The document for endpoint `name` with task `task`.
pub fn document(name: &str, task: Option<&str>) -> Value {
    let (request, response) = schemas(task);
    let error = json!({"type": "object", "required": ["error_code", "message"],
        "properties": {"error_code": {"type": "string"}, "message": {"type": "string"}}});
    let error_ref = json!({"description": "Error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": format!("{name} serving endpoint"),
            "version": "1",
            "description": format!("Invocation API of the serving endpoint '{name}' (task: {}).", task.unwrap_or("custom model"))
        },
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}],
        "paths": {
            format!("/serving-endpoints/{name}/invocations"): {
                "post": {
                    "operationId": "invoke",
                    "summary": format!("Query the serving endpoint '{name}'"),
                    "requestBody": {"required": true, "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/Request"}}}},
                    "responses": {
                        "200": {
                            "description": "The model's answer. With \"stream\": true, a text/event-stream of data: lines ending with data: [DONE].",
                            "headers": {"served-model-name": {"schema": {"type": "string"},
                                "description": "The served entity that answered."}},
                            "content": {
                                "application/json": {"schema": {"$ref": "#/components/schemas/Response"}},
                                "text/event-stream": {"schema": {"type": "string"}}
                            }
                        },
                        "400": error_ref.clone(), "401": error_ref.clone(), "403": error_ref.clone(),
                        "404": error_ref.clone(), "429": error_ref.clone(), "500": error_ref.clone(),
                        "502": error_ref.clone(), "504": error_ref
                    }
                }
            }
        },
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Request": request, "Response": response, "Error": error}
        }
    })
}
