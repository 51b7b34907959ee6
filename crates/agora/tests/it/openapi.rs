//! `GET /v1/openapi.json` and `GET /docs` on a running server: the document is served without
//! a key, the server answers every operation it lists (and nothing else on those paths), and
//! the reference page loads only from this server.

use serde_json::Value;

use crate::helpers::spawn_app;

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

#[tokio::test]
async fn the_server_answers_every_documented_operation_and_no_other_method() {
    let app = spawn_app().await;
    let res = app
        .client
        .get(app.url("/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "served without a key");
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let doc: Value = res.json().await.unwrap();
    assert_eq!(doc, agora_api::openapi::document());

    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 45, "{} paths", paths.len());
    for (template, item) in paths {
        // Ids no resource has: every handler answers before it changes anything.
        let path = template
            .split('/')
            .map(|s| if s.starts_with('{') { "nope_0" } else { s })
            .collect::<Vec<_>>()
            .join("/");
        for method in METHODS {
            let documented = item.get(method.to_lowercase()).is_some();
            let answer = app.request_as(&app.key, method, &path, None).await;
            let at = format!("{method} {template}: {} {}", answer.status, answer.body);
            assert!(answer.status < 500, "{at}");
            if documented {
                assert_ne!(answer.status, 405, "{at}");
                assert_ne!(answer.body["message"], "route not found", "{at}");
            } else {
                assert_eq!(answer.status, 405, "undocumented method answered: {at}");
            }
            assert!(
                answer.body["code"].is_string() || answer.status < 400,
                "{at}"
            );
        }
    }
}

#[tokio::test]
async fn the_reference_page_loads_its_assets_from_this_server() {
    let app = spawn_app().await;
    let page = app.client.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "{html}"
    );
    for asset in [
        "/docs/assets/swagger-ui.css",
        "/docs/assets/swagger-ui-bundle.js",
    ] {
        assert!(html.contains(asset), "{asset}");
        let res = app.client.get(app.url(asset)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{asset}");
        assert!(res.bytes().await.unwrap().len() > 10_000, "{asset}");
    }
    assert!(html.contains("/v1/openapi.json"));
}
