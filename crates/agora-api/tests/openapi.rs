//! The OpenAPI document: valid OpenAPI 3.1, complete, and the only way routes are added.
//! (tests/it/openapi.rs in the `agora` crate checks the running server answers every
//! operation it lists.)

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

/// The OpenAPI Initiative's schema of 3.1 documents
/// (<https://spec.openapis.org/oas/3.1/schema/2022-10-07>), as the `openapi-spec-validator`
/// package (0.9.0, PyPI) ships it.
const OAS_31_SCHEMA: &str = include_str!("fixtures/openapi-3.1-schema.json");

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("a path item") {
            if METHODS.contains(&method.as_str()) {
                ops.push((method.clone(), path.clone(), op));
            }
        }
    }
    ops
}

#[test]
fn the_document_is_valid_openapi_3_1() {
    let doc = agora_api::openapi::document();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1."));
    let schema: Value = serde_json::from_str(OAS_31_SCHEMA).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("the 3.1 schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(&doc)
        .map(|e| format!("{e} at {}", e.instance_path))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
}

#[test]
fn every_operation_has_a_unique_id_its_abilities_its_auth_and_the_error_answer() {
    let doc = agora_api::openapi::document();
    let ops = operations(&doc);
    assert!(ops.len() >= 79, "{} operations", ops.len());
    let mut ids = BTreeSet::new();
    for (method, path, op) in &ops {
        let at = format!("{method} {path}");
        let id = op["operationId"].as_str().expect("an operationId");
        assert!(ids.insert(id.to_owned()), "{at}: operationId {id} repeats");
        assert!(op["x-abilities"].is_array(), "{at}: no x-abilities");
        assert_eq!(
            op["responses"]["default"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/Error",
            "{at}"
        );
        assert!(
            op["description"].as_str().is_some_and(|d| !d.is_empty()),
            "{at}"
        );
        for name in path
            .split('{')
            .skip(1)
            .map(|p| p.split('}').next().unwrap())
        {
            let declared = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| p["name"] == name && p["in"] == "path");
            assert!(declared, "{at}: path parameter {name} undeclared");
        }
    }
    let public: BTreeSet<String> = ops
        .iter()
        .filter(|(_, _, op)| op["security"] == serde_json::json!([]))
        .map(|(m, p, _)| format!("{m} {p}"))
        .collect();
    let expected: BTreeSet<String> = [
        "get /healthz",
        "get /readyz",
        "post /v1/auth/login",
        "get /v1/openapi.json",
    ]
    .map(String::from)
    .into();
    assert_eq!(public, expected, "only these answer without authentication");
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    for scheme in ["api_key", "api_key_header", "session"] {
        assert!(schemes.contains_key(scheme), "{scheme}");
    }
    let webhooks = &doc["paths"]["/v1/webhooks"]["post"];
    assert_eq!(
        webhooks["x-abilities"],
        serde_json::json!(["webhooks:write"])
    );
    assert!(webhooks["description"]
        .as_str()
        .unwrap()
        .contains("Needs `webhooks:write`"));
}

/// Routes reach the router only through the `routes!` lists of `agora_api::api`, which also
/// document them; a bare `.route(…)` would serve a path the document does not list. Two
/// exceptions: the page at /docs (openapi.rs), which is not an operation of the API, and the
/// private scrape listener of `AGORA_METRICS_LISTEN` (metrics.rs), which serves the documented
/// `/metrics` alone.
#[test]
fn no_route_is_added_outside_the_documented_lists() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut offenders = Vec::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let relative = path
                .strip_prefix(&src)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            for (n, line) in text.lines().enumerate() {
                let adds = [".route(", ".route_service(", ".nest(", ".nest_service("]
                    .iter()
                    .any(|call| line.contains(call));
                let the_page = relative == "openapi.rs" && line.contains(r#".route("/docs""#);
                let the_scrape_listener =
                    relative == "metrics.rs" && line.contains(r#".route("/metrics""#);
                if adds && !the_page && !the_scrape_listener {
                    offenders.push(format!("{relative}:{}: {}", n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "routes added outside routes!(…) are missing from the OpenAPI document: {offenders:#?}"
    );
}
