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
        if (method == "post" && path.ends_with("/deactivate"))
            || (path == "/api-keys/{id}" && (method == "delete" || method == "patch"))
        {
            expected.push("409");
        }
        if path == "/api-keys/verify" {
            expected.extend(["401", "403"]);
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
