//! The OpenAPI 3.1 document (`GET /v1/openapi.json`) and the reference page (`GET /docs`).
//!
//! The document is generated from the code: every handler carries a `#[utoipa::path]`
//! annotation (method, path, parameters, body, answers, and the abilities it needs as
//! `x-abilities`), and [`crate::api`] builds the router and the document from the same
//! `routes!` lists, so a route cannot be served without being documented. [`document`] then
//! adds what every operation shares: the error answer, the auth schemes, a unique
//! `operationId`, and the abilities in words.
//!
//! The page is Swagger UI from assets compiled into the binary (the `swagger-ui-dist`
//! crate): it loads nothing from anywhere but this server (its online validator badge is
//! turned off).

use std::sync::LazyLock;

use axum::http::header;
use axum::response::{Html, IntoResponse};
use serde_json::{json, Map, Value};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;

/// Where the page's assets are served from.
const ASSETS: &str = "/docs/assets";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Agora",
        description = "A forum that publishes its events as signed webhooks. Every error is \
            answered as `{code, message, status}`. Authenticate with an API key (`Authorization: \
            Bearer agora_…` or `x-api-key: agora_…`) or a user session from `POST /v1/auth/login` \
            (`Authorization: Bearer agora_session_…`). A key may do what its abilities allow (`admin` \
            allows everything, `x:write` includes `x:read`); a session what its user's role \
            allows. Each operation lists the abilities it needs in `x-abilities`.",
        license(name = "MIT")
    ),
    components(schemas(crate::schemas::ErrorBody))
)]
struct Base;

/// The routes of the document and the page; the page is not an operation of the API.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(openapi_json))
}

/// The page: Swagger UI on this server's document, from assets in the binary.
pub(crate) fn page() -> axum::Router<AppState> {
    let assets = swagger_ui_dist::ApiDefinition {
        uri_prefix: ASSETS,
        api_definition: swagger_ui_dist::OpenApiSource::Uri("/v1/openapi.json"),
        title: Some("Agora API"),
    };
    axum::Router::new()
        .route("/docs", axum::routing::get(docs))
        .merge(swagger_ui_dist::generate_routes(assets).with_state(()))
}

async fn docs() -> Html<String> {
    Html(format!(
        r##"<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8" />
  <meta name="viewport" content="width=device-width, initial-scale=1" />
  <title>Agora API</title>
  <link rel="stylesheet" href="{ASSETS}/swagger-ui.css" />
</head>
<body>
<div id="swagger-ui"></div>
<script src="{ASSETS}/swagger-ui-bundle.js"></script>
<script>
  window.onload = () => {{
    window.ui = SwaggerUIBundle({{
      url: "/v1/openapi.json",
      dom_id: "#swagger-ui",
      validatorUrl: null,
    }});
  }};
</script>
</body>
</html>"##
    ))
}

/// This OpenAPI 3.1 document: every operation of the API, its parameters, bodies, answers,
/// auth and abilities.
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 document.", content_type = "application/json", body = Object)),
    security(()),
    extensions(("x-abilities" = json!([])))
)]
async fn openapi_json() -> impl IntoResponse {
    static TEXT: LazyLock<String> = LazyLock::new(|| document().to_string());
    ([(header::CONTENT_TYPE, "application/json")], TEXT.as_str())
}

/// The document, as JSON: the annotations of every route of [`crate::api`], and what every
/// operation shares.
pub fn document() -> Value {
    let (_, doc) = OpenApiRouter::with_openapi(Base::openapi())
        .merge(crate::api())
        .split_for_parts();
    let mut doc = serde_json::to_value(doc).expect("the document serializes");
    doc["components"]["securitySchemes"] = json!({
        "api_key": {
            "type": "http", "scheme": "bearer", "bearerFormat": "agora_…",
            "description": "An API key, as `Authorization: Bearer agora_…`."
        },
        "api_key_header": {
            "type": "apiKey", "in": "header", "name": "x-api-key",
            "description": "An API key, as `x-api-key: agora_…`."
        },
        "session": {
            "type": "http", "scheme": "bearer", "bearerFormat": "agora_session_…",
            "description": "A user session from `POST /v1/auth/login`, as `Authorization: Bearer agora_session_…`."
        }
    });
    doc["security"] = json!([{"api_key": []}, {"api_key_header": []}, {"session": []}]);
    let idempotent = idempotent_operations();
    if let Some(paths) = doc["paths"].as_object_mut() {
        for (path, item) in paths.iter_mut() {
            for (method, op) in item.as_object_mut().into_iter().flatten() {
                if let Some(op) = op.as_object_mut() {
                    complete(op);
                    if idempotent.contains(&(path.clone(), method.clone())) {
                        op.entry("parameters")
                            .or_insert_with(|| json!([]))
                            .as_array_mut()
                            .expect("parameters are a list")
                            .push(idempotency_key());
                    }
                }
            }
        }
    }
    doc
}

/// The writes the `Idempotency-Key` guard wraps, as (path, method) pairs of the document.
fn idempotent_operations() -> Vec<(String, String)> {
    let (_, doc) = crate::idempotent().split_for_parts();
    let doc = serde_json::to_value(doc).expect("the document serializes");
    let mut writes = Vec::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for method in item.as_object().into_iter().flat_map(|i| i.keys()) {
            if matches!(method.as_str(), "post" | "put" | "patch" | "delete") {
                writes.push((path.clone(), method.clone()));
            }
        }
    }
    writes
}

/// The `Idempotency-Key` header parameter.
fn idempotency_key() -> Value {
    json!({
        "name": "Idempotency-Key",
        "in": "header",
        "required": false,
        "description": "A repeat with the same key and body within 24 hours answers the first \
            answer (with `Idempotent-Replayed: true`) and creates nothing; the same key with \
            another body answers 422 `idempotency_key_reused`, a repeat while the first still \
            runs 409 `idempotency_key_in_progress`. At most 255 printable ASCII characters; \
            keys are per API key or user.",
        "schema": {"type": "string", "minLength": 1, "maxLength": 255}
    })
}

/// Adds to one operation what all share: `{tag}_{handler}` as its id (handler names repeat
/// across modules), the error answer for every status it does not list, and its abilities in
/// its description.
fn complete(op: &mut Map<String, Value>) {
    let tag = op
        .get("tags")
        .and_then(|t| t[0].as_str())
        .unwrap_or("api")
        .to_owned();
    if let Some(id) = op.get("operationId").and_then(Value::as_str) {
        op["operationId"] = json!(format!("{tag}_{id}"));
    }
    let error = json!({
        "description": "An error, in the one error shape.",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    });
    if let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) {
        responses.insert("default".to_owned(), error);
    }
    let public = op
        .get("security")
        .and_then(Value::as_array)
        .is_some_and(|s| s.iter().all(|r| r.as_object().is_some_and(Map::is_empty)));
    if public {
        op["security"] = json!([]);
    }
    let abilities: Vec<String> = op
        .get("x-abilities")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str().map(|a| format!("`{a}`")))
        .collect();
    let needs = match (public, abilities.is_empty()) {
        (true, _) => "No authentication.".to_owned(),
        (false, true) => "Any API key or session.".to_owned(),
        (false, false) => format!("Needs {}.", abilities.join(", ")),
    };
    let description = match op.get("description").and_then(Value::as_str) {
        Some(d) if !d.is_empty() => format!("{d}\n\n{needs}"),
        _ => needs,
    };
    op.insert("description".to_owned(), json!(description));
}
