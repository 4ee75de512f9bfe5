//! The OpenAPI document says everything the server does: every status an
//! operation can answer, the scope pattern and list limit, closed request
//! bodies, lengths, and which fields may be `null` — checked against the
//! server and the core's parsers.

use axum::http::StatusCode;
use keygate::{ApiKeyFilter, ApiKeyUpdate, MAX_SCOPES_PER_LIST};
use serde_json::{json, Value};

use crate::docs::object_schema;

fn doc() -> Value {
    serde_json::to_value(keygate_axum::openapi("/api-keys")).unwrap()
}

/// Every (path, method, operation) of the document.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            out.push((path.clone(), method.clone(), op.clone()));
        }
    }
    out
}

/// A `$ref`'d response or schema, followed.
fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value["$ref"].as_str() {
        Some(r) => {
            let path = r.trim_start_matches("#/");
            path.split('/').fold(doc, |v, part| &v[part])
        }
        None => value,
    }
}

#[test]
fn every_operation_documents_every_status_it_can_answer() {
    let doc = doc();
    let with_body = |op: &Value| op.get("requestBody").is_some();
    for (path, method, op) in operations(&doc) {
        let secured = op.get("security").is_some();
        let mut expected: Vec<&str> = vec!["400", "413", "414", "431", "503"];
        if secured {
            expected.extend(["401", "403"]);
        }
        if with_body(&op) {
            expected.extend(["415", "422"]);
        }
        if path.contains("{id}") || path.contains("{key_id}") {
            expected.push("404");
        }
        if (method == "post" && (path.ends_with("/deactivate") || path.ends_with("/credits")))
            || (path == "/api-keys/{id}" && (method == "delete" || method == "patch"))
        {
            expected.push("409");
        }
        if path == "/api-keys/verify" {
            expected.extend(["401", "403"]);
        }
        // Every key check can meet a full rate limit or used-up credits:
        // the admin key's on protected routes, the checked key's on verify.
        if secured || path == "/api-keys/verify" {
            expected.push("429");
        }
        let responses = op["responses"].as_object().unwrap();
        for status in expected {
            let response = responses
                .get(status)
                .unwrap_or_else(|| panic!("{method} {path}: no {status}"));
            let response = resolve(&doc, response);
            let schema = &response["content"]["application/json"]["schema"]["$ref"];
            let body = if status == "422" {
                "#/components/schemas/ValidationErrorBody"
            } else {
                "#/components/schemas/ErrorBody"
            };
            assert_eq!(schema, body, "{method} {path} {status}");
            if status == "401" {
                assert!(
                    response["headers"].get("WWW-Authenticate").is_some(),
                    "{method} {path}: 401 without its challenge"
                );
            }
            if status == "429" {
                for header in [
                    "Retry-After",
                    "RateLimit-Limit",
                    "RateLimit-Remaining",
                    "RateLimit-Reset",
                ] {
                    assert_eq!(
                        response["headers"][header]["schema"]["type"], "integer",
                        "{method} {path}: 429 without {header}"
                    );
                }
            }
        }
        if secured {
            let (_, success) = responses.iter().find(|(s, _)| s.starts_with('2')).unwrap();
            assert!(
                success["headers"].get("RateLimit-Remaining").is_some(),
                "{method} {path}: success without RateLimit-*"
            );
        }
        let success = responses.keys().filter(|s| s.starts_with('2')).count();
        assert_eq!(success, 1, "{method} {path}");
    }
}

#[test]
fn request_bodies_are_closed_and_scopes_are_patterned_and_bounded() {
    let doc = doc();
    let scope = &doc["components"]["schemas"]["Scope"];
    assert_eq!(scope["pattern"], "^[a-z][a-z0-9:_-]*$");
    assert_eq!(
        (scope["minLength"].clone(), scope["maxLength"].clone()),
        (json!(1), json!(64))
    );
    for (schema, lists) in [
        ("CreateApiKey", &["scopes"][..]),
        ("UpdateApiKey", &["scopes"]),
        (
            "ApiKeyFilter",
            &["scopes_contain_all", "scopes_contain_any"],
        ),
        ("VerifyRequest", &["required_scopes"]),
        ("RotateRequest", &[]),
        ("CreditsRequest", &[]),
        ("RateLimit", &[]),
        ("Credits", &[]),
    ] {
        let object = object_schema(&doc, schema);
        assert_eq!(object["additionalProperties"], json!(false), "{schema}");
        for list in lists {
            let property = &object["properties"][*list];
            assert_eq!(
                property["maxItems"],
                json!(MAX_SCOPES_PER_LIST),
                "{schema}.{list}"
            );
            assert_eq!(
                property["items"]["$ref"], "#/components/schemas/Scope",
                "{schema}.{list}"
            );
        }
    }
    // Every request body of every operation is one of those.
    for (path, method, op) in operations(&doc) {
        if let Some(body) = op.get("requestBody") {
            let r = body["content"]["application/json"]["schema"]["$ref"]
                .as_str()
                .unwrap();
            let name = r.rsplit('/').next().unwrap();
            assert_eq!(
                object_schema(&doc, name)["additionalProperties"],
                json!(false),
                "{method} {path}"
            );
        }
    }
    let create = &object_schema(&doc, "CreateApiKey")["properties"];
    let lengths = |p: &Value| (p["minLength"].clone(), p["maxLength"].clone());
    assert_eq!(
        lengths(&create["name"]),
        (json!(1), json!(keygate::NAME_MAX))
    );
    assert_eq!(
        lengths(&create["description"]).1,
        json!(keygate::DESCRIPTION_MAX)
    );
    assert_eq!(
        lengths(&create["owner_id"]),
        (json!(1), json!(keygate::OWNER_ID_MAX))
    );
}

/// A field is documented as nullable exactly when the core's parser takes
/// `null` for it, and every documented field parses with a sample value.
#[test]
fn nullability_matches_the_core_parsers() {
    let doc = doc();
    let nullable = |schema: &Value| -> bool {
        schema["type"]
            .as_array()
            .is_some_and(|t| t.contains(&json!("null")))
            || schema["oneOf"]
                .as_array()
                .is_some_and(|v| v.iter().any(|s| s["type"] == "null"))
    };
    type Parse = fn(Value) -> bool;
    let filter: Parse = |v| serde_json::from_value::<ApiKeyFilter>(v).is_ok();
    let update: Parse = |v| serde_json::from_value::<ApiKeyUpdate>(v).is_ok();
    for (schema, parses) in [("ApiKeyFilter", filter), ("UpdateApiKey", update)] {
        for (field, property) in object_schema(&doc, schema)["properties"]
            .as_object()
            .unwrap()
        {
            assert_eq!(
                parses(json!({ field.clone(): null })),
                nullable(property),
                "{schema}.{field}: documented nullable = {}",
                nullable(property)
            );
        }
    }
}

/// `clear_expires: true` with an `expires_at` is refused, and the document
/// says so (its `UpdateApiKey` is `allOf` the object and an `anyOf`).
#[tokio::test]
async fn clear_expires_with_expires_at_is_refused_as_documented() {
    let doc = doc();
    let either = &doc["components"]["schemas"]["UpdateApiKey"]["allOf"][1]["anyOf"];
    assert_eq!(either.as_array().map(Vec::len), Some(2), "{either}");
    let app = crate::support::TestApp::new().await;
    let (target, _) = crate::support::key(&app.service, "t", &[]).await;
    let reply = app
        .admin(
            axum::http::Method::PATCH,
            &format!("/api-keys/{}", target.id),
        )
        .json(json!({"clear_expires": true, "expires_at": "2999-01-01T00:00:00Z"}))
        .send(&app.router)
        .await;
    assert_eq!(reply.invalid_fields(), ["clear_expires"]);
    let reply = app
        .admin(
            axum::http::Method::PATCH,
            &format!("/api-keys/{}", target.id),
        )
        .json(json!({"clear_expires": true, "expires_at": null}))
        .send(&app.router)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
}

/// String parameters of paths and queries are bounded in the document, so
/// no schema-valid request goes past the 8 KiB URI limit (even with every
/// character percent-encoded as 4 UTF-8 bytes); the audit filters are
/// enforced, longer path ids are simply unknown.
#[tokio::test]
async fn path_and_query_strings_are_bounded() {
    let doc = doc();
    let mut longest_uri = 0;
    for (path, method, op) in operations(&doc) {
        let mut uri = path.len();
        for p in op["parameters"].as_array().into_iter().flatten() {
            let schema = &p["schema"];
            let enum_len = schema["enum"].as_array().map(|values| {
                values
                    .iter()
                    .map(|v| v.as_str().map_or(0, str::len))
                    .max()
                    .unwrap_or(0)
            });
            let bound = match (schema["type"].as_str(), enum_len) {
                (_, Some(len)) => len as u64,
                (Some("string"), None) if schema.get("format").is_none() => schema["maxLength"]
                    .as_u64()
                    .unwrap_or_else(|| panic!("{method} {path}: {} has no maxLength", p["name"])),
                _ => 40,
            };
            uri += p["name"].as_str().unwrap().len() + 2 + 12 * bound as usize;
        }
        longest_uri = longest_uri.max(uri);
    }
    assert!(longest_uri < keygate_axum::MAX_URI_BYTES, "{longest_uri}");

    let app = crate::support::TestApp::new().await;
    for (field, max) in [("actor", keygate::ACTOR_MAX), ("key_id", 128)] {
        let ok = app
            .admin(
                axum::http::Method::GET,
                &format!("/audit?{field}={}", "é".repeat(max)),
            )
            .send(&app.router)
            .await;
        assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
        let long = app
            .admin(
                axum::http::Method::GET,
                &format!("/audit?{field}={}", "a".repeat(max + 1)),
            )
            .send(&app.router)
            .await;
        assert_eq!(long.invalid_fields(), [field]);
    }
}

/// The usage-limit schemas say what the core accepts: the same fields, the
/// same bounds (the core's constants), `null` exactly where the core's
/// parser takes it, and the constraints between fields.
#[test]
fn usage_limit_schemas_match_the_core() {
    use keygate::{
        Credits, RateLimit, RefillInterval, Usage, WindowUsage, MAX_COST, MAX_CREDITS,
        MAX_RATE_LIMITS, MAX_WINDOW_LIMIT, MAX_WINDOW_MS, MIN_WINDOW_MS,
    };
    let doc = doc();
    let fields = |v: Value| -> Vec<String> {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    let documented = |schema: &str| fields(object_schema(&doc, schema)["properties"].clone());
    let credits = Credits::new(5).refilled(10, RefillInterval::Hourly);
    let window = WindowUsage {
        name: "w".into(),
        limit: 1,
        remaining: 0,
        reset_ms: 1,
    };
    let usage = Usage {
        remaining: Some(1),
        rate_limits: vec![window.clone()],
    };
    let rate = RateLimit::new("w", 1, std::time::Duration::from_secs(1));
    for (schema, value) in [
        ("Credits", serde_json::to_value(&credits).unwrap()),
        ("RateLimit", serde_json::to_value(&rate).unwrap()),
        ("Usage", serde_json::to_value(&usage).unwrap()),
        ("WindowUsage", serde_json::to_value(&window).unwrap()),
    ] {
        assert_eq!(documented(schema), fields(value), "{schema}");
    }
    let intervals: Vec<Value> = RefillInterval::ALL
        .iter()
        .map(|i| json!(i.as_str()))
        .collect();
    assert_eq!(
        doc["components"]["schemas"]["RefillInterval"]["enum"],
        json!(intervals)
    );

    let range = |schema: &str, field: &str| {
        let p = &object_schema(&doc, schema)["properties"][field];
        (p["minimum"].clone(), p["maximum"].clone())
    };
    assert_eq!(
        range("RateLimit", "limit"),
        (json!(1), json!(MAX_WINDOW_LIMIT))
    );
    assert_eq!(
        range("RateLimit", "window_ms"),
        (json!(MIN_WINDOW_MS), json!(MAX_WINDOW_MS))
    );
    assert_eq!(
        range("Credits", "remaining"),
        (json!(0), json!(MAX_CREDITS))
    );
    assert_eq!(
        range("Credits", "refill_amount"),
        (json!(1), json!(MAX_CREDITS))
    );
    assert_eq!(range("VerifyRequest", "cost"), (json!(0), json!(MAX_COST)));
    assert_eq!(
        range("CreditsRequest", "set"),
        (json!(0), json!(MAX_CREDITS))
    );
    assert_eq!(
        range("CreditsRequest", "add"),
        (json!(-(MAX_CREDITS as i64)), json!(MAX_CREDITS))
    );
    let name = &object_schema(&doc, "RateLimit")["properties"]["name"];
    assert_eq!(name["pattern"], "^[a-z][a-z0-9:_-]*$");
    assert_eq!(name["maxLength"], 64);
    for schema in ["CreateApiKey", "UpdateApiKey"] {
        let list = &object_schema(&doc, schema)["properties"]["rate_limits"];
        assert_eq!(
            (list["minItems"].clone(), list["maxItems"].clone()),
            (json!(1), json!(MAX_RATE_LIMITS)),
            "{schema}"
        );
        assert_eq!(list["type"], json!(["array", "null"]), "{schema}");
    }

    // `null` is documented for exactly the fields the core takes it for.
    let nullable = |p: &Value| {
        p["type"]
            .as_array()
            .is_some_and(|t| t.contains(&json!("null")))
            || p["oneOf"]
                .as_array()
                .is_some_and(|v| v.iter().any(|s| s["type"] == "null"))
    };
    for (field, property) in object_schema(&doc, "Credits")["properties"]
        .as_object()
        .unwrap()
    {
        let mut body = json!({"remaining": 1});
        body[field] = Value::Null;
        assert_eq!(
            serde_json::from_value::<Credits>(body).is_ok(),
            nullable(property),
            "Credits.{field}"
        );
    }
    assert!(object_schema(&doc, "Credits")["properties"]["last_refill_at"]["readOnly"] == true);

    // The refill comes whole or not at all; `set` xor `add`.
    let schemas = &doc["components"]["schemas"];
    let refill = &schemas["Credits"]["allOf"][1]["anyOf"];
    assert_eq!(
        refill[1]["required"],
        json!(["refill_amount", "refill_interval"])
    );
    let either = &schemas["CreditsRequest"]["allOf"][1]["oneOf"];
    assert_eq!(
        (either[0]["required"].clone(), either[1]["required"].clone()),
        (json!(["set"]), json!(["add"]))
    );
    // The answer of verify: the entity and its usage.
    let verified = &schemas["VerifiedApiKey"]["allOf"];
    assert_eq!(verified[0]["$ref"], "#/components/schemas/ApiKey");
    assert_eq!(verified[1]["required"], json!(["usage"]));
}
