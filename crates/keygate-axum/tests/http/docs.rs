//! `/openapi.json` (OpenAPI 3.1, every route and schema) and `/docs`
//! (served from the binary, no outside request).

use std::collections::BTreeSet;

use axum::http::StatusCode;
use keygate::{ApiKeyFilter, ApiKeyUpdate};
use keygate_axum::AppConfig;
use serde_json::{json, Value};

use crate::support::{key, sqlite_service, Call, TestApp};

const ROUTES: [(&str, &[&str]); 12] = [
    ("/api-keys", &["get", "post"]),
    ("/api-keys/{id}", &["delete", "get", "patch"]),
    ("/api-keys/by-key-id/{key_id}", &["get"]),
    ("/api-keys/{id}/activate", &["post"]),
    ("/api-keys/{id}/deactivate", &["post"]),
    ("/api-keys/{id}/rotate", &["post"]),
    ("/api-keys/{id}/credits", &["post"]),
    ("/api-keys/{id}/events", &["get"]),
    ("/api-keys/search", &["post"]),
    ("/api-keys/count", &["post"]),
    ("/api-keys/verify", &["post"]),
    ("/audit", &["get"]),
];

/// The object schema named `schema` (the first member of an `allOf`, where
/// the other members add constraints).
pub(crate) fn object_schema<'a>(doc: &'a Value, schema: &str) -> &'a Value {
    let named = &doc["components"]["schemas"][schema];
    named["allOf"].get(0).unwrap_or(named)
}

fn properties(doc: &Value, schema: &str) -> BTreeSet<String> {
    object_schema(doc, schema)["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("schema {schema} missing"))
        .keys()
        .cloned()
        .collect()
}

#[tokio::test]
async fn openapi_json_is_3_1_and_lists_every_route() {
    let app = TestApp::new().await;
    let reply = Call::get("/openapi.json").send(&app.router).await;
    assert_eq!(reply.status, StatusCode::OK);
    let doc = reply.json;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().unwrap();
    assert_eq!(
        paths.len(),
        ROUTES.len(),
        "{:?}",
        paths.keys().collect::<Vec<_>>()
    );
    for (path, methods) in ROUTES {
        let item = paths.get(path).unwrap_or_else(|| panic!("{path} missing"));
        let listed: Vec<&str> = item
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        for m in methods {
            assert!(listed.contains(m), "{m} {path}: {listed:?}");
            let op = &item[*m];
            let secured = op.get("security").is_some();
            assert_eq!(secured, path != "/api-keys/verify", "{m} {path}");
        }
    }
    assert_eq!(
        doc["paths"]["/api-keys"]["post"]["responses"]["201"]["content"]["application/json"]
            ["schema"]["$ref"],
        "#/components/schemas/CreatedApiKey"
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    for schema in [
        "ApiKey",
        "CreateApiKey",
        "CreatedApiKey",
        "UpdateApiKey",
        "ApiKeyFilter",
        "VerifyRequest",
        "VerifiedApiKey",
        "RotateRequest",
        "CreditsRequest",
        "RateLimit",
        "Credits",
        "RefillInterval",
        "Usage",
        "WindowUsage",
        "AuditEvent",
        "AuditAction",
        "EventPage",
        "SearchResult",
        "CountResult",
        "ErrorBody",
        "ValidationErrorBody",
    ] {
        assert!(
            doc["components"]["schemas"].get(schema).is_some(),
            "{schema}"
        );
    }
}

/// The document's schemas mirror the core types: same field names.
#[tokio::test]
async fn openapi_schemas_match_the_json_the_api_speaks() {
    let doc = serde_json::to_value(keygate_axum::openapi("/api-keys")).unwrap();
    let (service, _repo) = sqlite_service().await;
    let (entity, _) = key(&service, "doc", &["read"]).await;
    let entity_fields: BTreeSet<String> = serde_json::to_value(&entity)
        .unwrap()
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(properties(&doc, "ApiKey"), entity_fields);
    let required: BTreeSet<String> = doc["components"]["schemas"]["ApiKey"]["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        required, entity_fields,
        "every entity field is always present"
    );

    let filter_fields: BTreeSet<String> = serde_json::to_value(ApiKeyFilter::default())
        .unwrap()
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(properties(&doc, "ApiKeyFilter"), filter_fields);

    // Every documented update field is accepted by the core's strict parser.
    let sample = |field: &str| match field {
        "name" | "description" | "owner_id" => json!("x"),
        "meta" => json!({"plan": "pro"}),
        "is_active" | "clear_expires" => json!(true),
        "scopes" => json!(["read"]),
        "expires_at" => json!("2999-01-01T00:00:00Z"),
        "rate_limits" => json!([{"name": "burst", "limit": 10, "window_ms": 1000}]),
        "credits" => json!({"remaining": 5, "refill_amount": 5, "refill_interval": "daily"}),
        other => panic!("undocumented sample for {other}"),
    };
    for field in properties(&doc, "UpdateApiKey") {
        let body = json!({ field.clone(): sample(&field) });
        serde_json::from_value::<ApiKeyUpdate>(body).unwrap_or_else(|e| panic!("{field}: {e}"));
    }
    assert_eq!(properties(&doc, "UpdateApiKey").len(), 10);

    // The audit event mirror: the fields of a real event, every one required.
    let (rotated, _) = service
        .rotate(&entity.id, std::time::Duration::from_secs(60))
        .await
        .unwrap();
    assert!(rotated.previous_secret_expires_at.is_some());
    let events = service
        .events(&keygate::EventFilter::for_key(&entity.id))
        .await
        .unwrap();
    assert_eq!(events.len(), 2);
    let event_fields: BTreeSet<String> = serde_json::to_value(&events[1])
        .unwrap()
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(properties(&doc, "AuditEvent"), event_fields);
    let actions: Vec<Value> = keygate::AuditAction::ALL
        .iter()
        .map(|a| serde_json::to_value(a).unwrap())
        .collect();
    assert_eq!(
        doc["components"]["schemas"]["AuditAction"]["enum"],
        json!(actions)
    );
    assert_eq!(
        properties(&doc, "EventPage"),
        ["items", "limit", "offset", "total"]
            .map(String::from)
            .into_iter()
            .collect()
    );
    let create = &doc["components"]["schemas"]["CreateApiKey"]["properties"];
    assert_eq!(create["owner_id"]["minLength"], 1);
    assert_eq!(create["owner_id"]["maxLength"], 256);
    assert_eq!(create["meta"]["type"], json!(["object", "null"]));
    let grace = &doc["components"]["schemas"]["RotateRequest"]["properties"]["grace_seconds"];
    assert_eq!(
        (grace["minimum"].clone(), grace["maximum"].clone()),
        (json!(0), json!(2_592_000))
    );
}

#[tokio::test]
async fn mount_path_moves_routes_and_document_together() {
    let app = TestApp::with_config(AppConfig::default().mount_path("/admin/keys")).await;
    let reply = app
        .admin(axum::http::Method::GET, "/admin/keys")
        .send(&app.router)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let doc = Call::get("/openapi.json").send(&app.router).await.json;
    assert!(doc["paths"].get("/admin/keys/{id}/activate").is_some());
    assert!(doc["paths"].get("/admin/keys/{id}/rotate").is_some());
    assert!(doc["paths"].get("/api-keys").is_none());
    // The audit log stays at the root, in the app and in the document.
    assert!(doc["paths"].get("/audit").is_some());
    assert!(doc["paths"].get("/admin/keys/audit").is_none());
    let audit = app
        .admin(axum::http::Method::GET, "/audit")
        .send(&app.router)
        .await;
    assert_eq!(audit.status, StatusCode::OK, "{}", audit.text);
}

/// Mounted at the root, the management routes and `/audit` live side by
/// side (a key id path cannot capture `/audit`).
#[tokio::test]
async fn root_mount_keeps_audit_reachable() {
    let app = TestApp::with_config(AppConfig::default().mount_path("/")).await;
    let listed = app
        .admin(axum::http::Method::GET, "/")
        .send(&app.router)
        .await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    let audit = app
        .admin(axum::http::Method::GET, "/audit")
        .send(&app.router)
        .await;
    assert_eq!(audit.status, StatusCode::OK, "{}", audit.text);
    assert!(audit.json["items"].is_array(), "{}", audit.text);
    let doc = Call::get("/openapi.json").send(&app.router).await.json;
    assert!(doc["paths"].get("/audit").is_some());
    assert!(doc["paths"].get("/{id}/rotate").is_some());
}

#[cfg(feature = "swagger-ui")]
/// Every `http(s)://host` in `text`.
fn hosts(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for scheme in ["http://", "https://"] {
        for (i, _) in text.match_indices(scheme) {
            let rest = &text[i + scheme.len()..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '-'))
                .unwrap_or(rest.len());
            // `"https://" + host` in code names no host by itself.
            if end > 0 {
                out.insert(rest[..end].to_owned());
            }
        }
    }
    out
}

#[cfg(feature = "swagger-ui")]
/// `src="..."` and `href="..."` values of an HTML page.
fn references(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["src=\"", "href=\""] {
        for (i, _) in html.match_indices(attr) {
            let rest = &html[i + attr.len()..];
            out.push(rest[..rest.find('"').unwrap()].to_owned());
        }
    }
    out
}

#[cfg(feature = "swagger-ui")]
#[tokio::test]
async fn docs_page_is_served_from_the_binary_with_no_outside_request() {
    let app = TestApp::new().await;
    let redirect = Call::get("/docs").send(&app.router).await;
    assert!(redirect.status.is_redirection());
    assert_eq!(redirect.header("location"), Some("/docs/"));

    let page = Call::get("/docs/").send(&app.router).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    assert!(
        !page.text.contains("http://") && !page.text.contains("https://"),
        "{}",
        page.text
    );

    let refs = references(&page.text);
    assert!(refs.len() >= 4, "{refs:?}");
    let mut scripts = Vec::new();
    for r in &refs {
        assert!(!r.contains("//"), "absolute reference {r}");
        let path = format!("/docs/{}", r.trim_start_matches("./"));
        let asset = Call::get(&path).send(&app.router).await;
        assert_eq!(asset.status, StatusCode::OK, "{path}");
        assert!(!asset.text.is_empty(), "{path}");
        if path.ends_with(".js") {
            scripts.push((path, asset.text));
        }
    }

    // The initializer: our document, and the online validator switched off
    // (Swagger UI's one default request to another host).
    let (_, init) = scripts
        .iter()
        .find(|(p, _)| p.ends_with("swagger-initializer.js"))
        .unwrap();
    assert!(
        !init.contains("http://") && !init.contains("https://"),
        "{init}"
    );
    assert!(init.contains("/openapi.json"), "{init}");
    let compact: String = init.split_whitespace().collect();
    assert!(compact.contains(r#""validatorUrl":"none""#), "{init}");

    // The bundles hold URL strings that are never fetched (XML namespaces,
    // links in license comments and error messages). Pin them, so a new
    // Swagger UI that adds one is looked at.
    let inert: BTreeSet<&str> = [
        "www.w3.org",
        "github.com",
        "spec.openapis.org",
        "validator.swagger.io",
        "www.tiktok.com",
        "twitter.com",
        "instagram.com",
        "example.com",
        "www.facebook.com",
        "swagger.io",
        "spdx.org",
        "soundcloud.com",
        "redux.js.org",
        "reactjs.org",
        "json-schema.org",
        "fb.me",
    ]
    .into_iter()
    .collect();
    for (path, text) in &scripts {
        for host in hosts(text) {
            assert!(inert.contains(host.as_str()), "{path} references {host}");
        }
    }
}

/// The page is titled after the document, not "Swagger UI".
#[cfg(feature = "swagger-ui")]
#[tokio::test]
async fn the_docs_page_is_titled_keygate_api() {
    let app = TestApp::new().await;
    let doc = Call::get("/openapi.json").send(&app.router).await.json;
    assert_eq!(doc["info"]["title"], "keygate API");
    for path in ["/docs/", "/docs/index.html"] {
        let page = Call::get(path).send(&app.router).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert!(
            page.text.contains("<title>keygate API</title>"),
            "{path}: {}",
            page.text
        );
        assert!(!page.text.contains("<title>Swagger UI</title>"), "{path}");
        if let Some(length) = page.header("content-length") {
            assert_eq!(length, page.text.len().to_string(), "{path}");
        }
    }
    // Other assets are served untouched.
    let init = Call::get("/docs/swagger-initializer.js")
        .send(&app.router)
        .await;
    assert_eq!(init.status, StatusCode::OK);
    assert!(init.text.contains("/openapi.json"));
}

/// Every `examples` value in `v`, with where it is.
fn examples(v: &Value, at: &str, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                if k == "examples" {
                    if let Some(items) = child.as_array() {
                        out.extend(items.iter().map(|e| (at.to_owned(), e.clone())));
                    }
                }
                examples(child, &format!("{at}/{k}"), out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                examples(child, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// The first example of each property of the object schema `name`; for a
/// list of `$ref` items without examples of its own, a list of the item
/// schema's first example (as Swagger UI builds its samples).
fn sample(doc: &Value, name: &str) -> serde_json::Map<String, Value> {
    let first_example = |schema: &Value| -> Option<Value> {
        if let Some(example) = schema["examples"].get(0) {
            return Some(example.clone());
        }
        let item = schema["items"]["$ref"].as_str()?;
        let item = &doc["components"]["schemas"][item.rsplit('/').next()?];
        Some(json!([item["examples"].get(0)?.clone()]))
    };
    object_schema(doc, name)["properties"]
        .as_object()
        .unwrap()
        .iter()
        .filter_map(|(field, schema)| Some((field.clone(), first_example(schema)?)))
        .collect()
}

/// Realistic examples (a name, the scope `read`, an expiry in the
/// future), never Swagger UI's `"string"`; the sample of a create body
/// is accepted as it is.
#[tokio::test]
async fn examples_are_realistic_and_the_create_sample_works() {
    let doc = serde_json::to_value(keygate_axum::openapi("/api-keys")).unwrap();
    let mut all = Vec::new();
    examples(&doc, "", &mut all);
    assert!(all.len() >= 30, "{all:?}");
    for (at, example) in &all {
        assert_ne!(example, "string", "{at}");
    }

    let create = sample(&doc, "CreateApiKey");
    assert_eq!(create["name"], "billing-service");
    assert_eq!(create["scopes"], json!(["read"]));
    let entity = sample(&doc, "ApiKey");
    assert_eq!(entity["name"], "billing-service");
    assert_eq!(entity["scopes"], json!(["read"]));
    let now = chrono::Utc::now();
    for (schema, fields) in [("CreateApiKey", &create), ("ApiKey", &entity)] {
        let expiry = fields["expires_at"].as_str().unwrap();
        let expiry = chrono::DateTime::parse_from_rfc3339(expiry).unwrap();
        assert!(expiry > now, "{schema}: expiry {expiry} is in the past");
    }
    assert_eq!(
        sample(&doc, "UpdateApiKey")["expires_at"],
        "2030-01-01T00:00:00Z"
    );
    assert_eq!(sample(&doc, "RateLimit")["name"], "burst");
    assert_eq!(sample(&doc, "ErrorBody")["detail"], "API key invalid");
    // The key example is a well-formed key.
    let key = sample(&doc, "CreatedApiKey")["api_key"].clone();
    keygate::KeyFormat::default()
        .parse(key.as_str().unwrap())
        .expect("a well-formed example key");

    // The create body the docs page builds from these examples (objects
    // of `$ref` schemas from their own properties) is accepted.
    let app = TestApp::new().await;
    let mut body = create.clone();
    body.insert(
        "rate_limits".into(),
        json!([Value::Object(sample(&doc, "RateLimit"))]),
    );
    let mut credits = sample(&doc, "Credits");
    credits.remove("last_refill_at"); // read-only: never sent
    credits.insert("refill_interval".into(), json!("daily"));
    body.insert("credits".into(), Value::Object(credits));
    let (made, _) = app.create(Value::Object(body)).await;
    assert_eq!(made["name"], "billing-service");
    assert_eq!(made["expires_at"], "2030-01-01T00:00:00Z");
}

/// `/healthz` and `/readyz` are in the document of a server that serves
/// them (`AppConfig::document_health_routes`), and only there.
#[tokio::test]
async fn health_routes_are_documented_on_request() {
    let plain = TestApp::new().await;
    let doc = Call::get("/openapi.json").send(&plain.router).await.json;
    assert!(doc["paths"].get("/healthz").is_none());

    let app = TestApp::with_config(AppConfig::default().document_health_routes()).await;
    let doc = Call::get("/openapi.json").send(&app.router).await.json;
    for path in ["/healthz", "/readyz"] {
        let op = &doc["paths"][path]["get"];
        assert!(op.is_object(), "{path} missing");
        assert!(op.get("security").is_none(), "{path} is open");
        assert_eq!(op["tags"], json!(["health"]), "{path}");
        let statuses: BTreeSet<&str> = op["responses"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(statuses, BTreeSet::from(["200", "503"]), "{path}");
        assert_eq!(
            op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/Health"
        );
    }
    assert!(doc["components"]["schemas"]["Health"]["required"]
        .as_array()
        .unwrap()
        .contains(&json!("status")));
    // Every other route as before.
    assert_eq!(doc["paths"].as_object().unwrap().len(), ROUTES.len() + 2);
}
