//! The product service through its router, against a real PostgreSQL
//! database of its own, with tokens signed like the user service's.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use product_service::{AppState, MIGRATOR};
use serde_json::{Value, json};
use service_kit::auth::{StaticKeys, Verifier};
use service_kit::keys::KeySource;
use testkit::jwt::{self, TestSigner};
use testkit::router::{self, Answer, assert_problem, send};
use tower::ServiceExt;

struct App {
    router: Router,
    signer: TestSigner,
}

impl App {
    async fn start() -> App {
        let signer = TestSigner::new("key-1");
        App {
            router: replica(database().await, &signer).await,
            signer,
        }
    }

    fn staff(&self) -> String {
        self.signer.token("employee-1", "employee")
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        router::call(&self.router, method, path, token, body).await
    }

    async fn create(&self, body: Value) -> Value {
        let answer = self
            .call("POST", "/products", Some(&self.staff()), Some(body))
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        answer.body
    }
}

async fn database() -> sqlx::PgPool {
    let url = tokio::task::spawn_blocking(|| testkit::postgres().fresh_database("product"))
        .await
        .unwrap();
    service_kit::db::connect(&url, 5, &MIGRATOR).await.unwrap()
}

fn burger() -> Value {
    json!({
        "name": "X-Burger", "description": "Pão, carne e queijo", "category": "Lanche",
        "price_cents": 2590, "image_url": "https://img.example/x.png", "preparation_minutes": 8
    })
}

#[tokio::test]
async fn categories_are_seeded_in_menu_order() {
    let app = App::start().await;
    let answer = app.call("GET", "/categories", None, None).await;
    assert_eq!(answer.status, StatusCode::OK);
    let names: Vec<&str> = answer
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Lanche", "Acompanhamento", "Bebida", "Sobremesa"]);
}

#[tokio::test]
async fn employees_manage_the_catalog_and_everyone_reads_it() {
    let app = App::start().await;
    let created = app
        .call("POST", "/products", Some(&app.staff()), Some(burger()))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_string();
    assert_eq!(
        created.location.as_deref(),
        Some(format!("/products/{id}").as_str())
    );
    assert_eq!(created.body["price_cents"], 2590);
    assert_eq!(created.body["category"], "Lanche");
    assert_eq!(uuid::Uuid::parse_str(&id).unwrap().get_version_num(), 7);

    app.create(json!({"name": "Batata frita", "category": "Acompanhamento", "price_cents": 1200, "preparation_minutes": 5})).await;
    app.create(json!({"name": "Refrigerante", "category": "Bebida", "price_cents": 700, "preparation_minutes": 0})).await;

    let all = app.call("GET", "/products", None, None).await;
    assert_eq!(all.body["total"], 3);
    let drinks = app
        .call("GET", "/products?category=Bebida", None, None)
        .await;
    assert_eq!(drinks.body["total"], 1);
    assert_eq!(drinks.body["items"][0]["name"], "Refrigerante");
    let page2 = app
        .call("GET", "/products?page=2&per_page=2", None, None)
        .await;
    assert_eq!(page2.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(page2.body["page"], 2);

    let mut changed = burger();
    changed["price_cents"] = json!(2790);
    let updated = app
        .call(
            "PUT",
            &format!("/products/{id}"),
            Some(&app.staff()),
            Some(changed),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK);
    assert_eq!(updated.body["price_cents"], 2790);

    let deleted = app
        .call(
            "DELETE",
            &format!("/products/{id}"),
            Some(&app.staff()),
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let after = app
        .call("GET", &format!("/products/{id}"), None, None)
        .await;
    assert_eq!(
        after.status,
        StatusCode::OK,
        "a deactivated product stays readable"
    );
    assert_eq!(after.body["active"], false);
    assert_eq!(
        app.call("GET", "/products", None, None).await.body["total"],
        2
    );
    // Repricing a product taken off the menu leaves it off; it comes back
    // only when asked to.
    let mut repriced = burger();
    repriced["price_cents"] = json!(2990);
    let put = |body: Value| {
        let (app, id) = (&app, id.clone());
        async move {
            app.call(
                "PUT",
                &format!("/products/{id}"),
                Some(&app.staff()),
                Some(body),
            )
            .await
        }
    };
    let still_off = put(repriced.clone()).await;
    assert_eq!(still_off.status, StatusCode::OK, "{}", still_off.body);
    assert_eq!(still_off.body["active"], false);
    assert_eq!(still_off.body["price_cents"], 2990);
    repriced["active"] = json!(true);
    let back = put(repriced).await;
    assert_eq!(back.body["active"], true);
    assert_eq!(
        app.call("GET", "/products", None, None).await.body["total"],
        3
    );
}

#[tokio::test]
async fn the_batch_lookup_names_unknown_and_inactive_ids() {
    let app = App::start().await;
    let kept = app.create(burger()).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let gone = app.create(json!({"name": "Sorvete", "category": "Sobremesa", "price_cents": 900, "preparation_minutes": 2})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    app.call(
        "DELETE",
        &format!("/products/{gone}"),
        Some(&app.staff()),
        None,
    )
    .await;
    let unknown = uuid::Uuid::now_v7().to_string();
    let answer = app
        .call(
            "POST",
            "/products/lookup",
            None,
            Some(json!({"ids": [kept, gone, unknown]})),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["products"][0]["id"], kept.as_str());
    assert_eq!(answer.body["products"][0]["price_cents"], 2590);
    assert_eq!(answer.body["inactive"], json!([gone]));
    assert_eq!(answer.body["unknown"], json!([unknown]));
    let empty = app
        .call("POST", "/products/lookup", None, Some(json!({"ids": []})))
        .await;
    assert_problem(
        &empty,
        StatusCode::UNPROCESSABLE_ENTITY,
        "must hold 1 to 100 product ids",
    );
}

#[tokio::test]
async fn bad_input_gets_a_problem_never_a_500() {
    let app = App::start().await;
    let staff = app.staff();
    let post = |body: Body, content_type: &'static str| {
        Request::builder()
            .method("POST")
            .uri("/products")
            .header(header::AUTHORIZATION, format!("Bearer {staff}"))
            .header(header::CONTENT_TYPE, content_type)
            .body(body)
            .unwrap()
    };
    let malformed = send(
        &app.router,
        post(Body::from("{\"name\": "), "application/json"),
    )
    .await;
    assert_problem(
        &malformed,
        StatusCode::BAD_REQUEST,
        "the body is not valid JSON",
    );
    let wrong_type = send(
        &app.router,
        post(Body::from(burger().to_string()), "text/plain"),
    )
    .await;
    assert_problem(
        &wrong_type,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "Content-Type: application/json",
    );

    let missing = app
        .call(
            "POST",
            "/products",
            Some(&app.staff()),
            Some(json!({"name": "X"})),
        )
        .await;
    assert_problem(
        &missing,
        StatusCode::UNPROCESSABLE_ENTITY,
        "missing field `category`",
    );
    let unknown_field = {
        let mut b = burger();
        b["stock"] = json!(3);
        app.call("POST", "/products", Some(&app.staff()), Some(b))
            .await
    };
    assert_problem(
        &unknown_field,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown field `stock`",
    );

    for price in [0, -100] {
        let mut b = burger();
        b["price_cents"] = json!(price);
        let answer = app
            .call("POST", "/products", Some(&app.staff()), Some(b))
            .await;
        assert_problem(
            &answer,
            StatusCode::UNPROCESSABLE_ENTITY,
            "must be a whole number of cents from 1",
        );
        assert_eq!(answer.body["errors"][0]["field"], "price_cents");
    }
    let fractional = {
        let mut b = burger();
        b["price_cents"] = json!(25.9);
        app.call("POST", "/products", Some(&app.staff()), Some(b))
            .await
    };
    assert_problem(&fractional, StatusCode::UNPROCESSABLE_ENTITY, "price_cents");

    let oversized = {
        let mut b = burger();
        b["name"] = json!("x".repeat(101));
        b["description"] = json!("y".repeat(501));
        app.call("POST", "/products", Some(&app.staff()), Some(b))
            .await
    };
    assert_problem(
        &oversized,
        StatusCode::UNPROCESSABLE_ENTITY,
        "2 fields are invalid",
    );
    let fields: Vec<&str> = oversized.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["name", "description"]);

    let unknown_category = {
        let mut b = burger();
        b["category"] = json!("Pizza");
        app.call("POST", "/products", Some(&app.staff()), Some(b))
            .await
    };
    assert_problem(
        &unknown_category,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown category \\\"Pizza\\\"; one of: Lanche, Acompanhamento, Bebida, Sobremesa",
    );

    app.create(burger()).await;
    let duplicate = app
        .call("POST", "/products", Some(&app.staff()), Some(burger()))
        .await;
    assert_problem(
        &duplicate,
        StatusCode::CONFLICT,
        "a product named \\\"X-Burger\\\" already exists",
    );

    assert_problem(
        &app.call("GET", "/nowhere", None, None).await,
        StatusCode::NOT_FOUND,
        "no such route",
    );
    assert_problem(
        &app.call("PATCH", "/categories", None, None).await,
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed",
    );
    assert_problem(
        &app.call("GET", "/products/not-a-uuid", None, None).await,
        StatusCode::BAD_REQUEST,
        "invalid path",
    );
    assert_problem(
        &app.call("GET", "/products?page=abc", None, None).await,
        StatusCode::BAD_REQUEST,
        "invalid query string",
    );
    assert_problem(
        &app.call("GET", "/products?per_page=1000", None, None).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "per_page",
    );
    // A page so far out that its offset would overflow is refused, not a 500.
    assert_problem(
        &app.call("GET", "/products?page=9223372036854775807", None, None)
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "page",
    );
    assert_problem(
        &app.call(
            "GET",
            &format!("/products/{}", uuid::Uuid::now_v7()),
            None,
            None,
        )
        .await,
        StatusCode::NOT_FOUND,
        "no product with id",
    );
}

#[tokio::test]
async fn tokens_are_checked_and_roles_enforced() {
    let app = &App::start().await;
    let claims = |role: &str| app.signer.claims("someone", role);
    let attempt = |token: String| async move {
        app.call("POST", "/products", Some(&token), Some(burger()))
            .await
    };

    assert_problem(
        &app.call("POST", "/products", None, Some(burger())).await,
        StatusCode::UNAUTHORIZED,
        "missing bearer token",
    );
    assert_problem(
        &attempt("not.a.token".into()).await,
        StatusCode::UNAUTHORIZED,
        "malformed token",
    );

    let mut expired = claims("employee");
    expired.insert("exp".into(), json!(1_600_000_000));
    assert_problem(
        &attempt(app.signer.sign(expired)).await,
        StatusCode::UNAUTHORIZED,
        "the token has expired",
    );

    let mut other_audience = claims("employee");
    other_audience.insert("aud".into(), json!("someone-else"));
    assert_problem(
        &attempt(app.signer.sign(other_audience)).await,
        StatusCode::UNAUTHORIZED,
        "not meant for techchallenge",
    );

    let mut other_issuer = claims("employee");
    other_issuer.insert("iss".into(), json!("evil"));
    assert_problem(
        &attempt(app.signer.sign(other_issuer)).await,
        StatusCode::UNAUTHORIZED,
        "not issued by techchallenge",
    );

    // Signed by another key that claims to be ours.
    let forger = TestSigner::new("key-1");
    assert_problem(
        &attempt(forger.token("someone", "employee")).await,
        StatusCode::UNAUTHORIZED,
        "signature is invalid",
    );
    assert_problem(
        &attempt(jwt::unsigned(claims("employee"), "key-1")).await,
        StatusCode::UNAUTHORIZED,
        "only RS256 tokens are accepted, this one is none",
    );
    let public_key_bytes = app.signer.jwk_set().into_bytes();
    assert_problem(
        &attempt(jwt::hs256(claims("employee"), "key-1", &public_key_bytes)).await,
        StatusCode::UNAUTHORIZED,
        "this one is HS256",
    );
    assert_problem(
        &attempt(app.signer.sign_as(claims("employee"), "key-9")).await,
        StatusCode::UNAUTHORIZED,
        "unknown or retired key",
    );
    let customer = app.signer.token("customer-1", "customer");
    assert_problem(
        &attempt(customer).await,
        StatusCode::FORBIDDEN,
        "this route is for employee or admin; the token is a customer's",
    );
    assert_eq!(
        attempt(app.signer.token("admin-1", "admin")).await.status,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn a_rotated_key_verifies_until_it_is_retired() {
    let old = TestSigner::new("key-old");
    let new = TestSigner::new("key-new");
    let dir = tempfile_dir();
    let file = dir.join("jwks.json");
    let both = json!({"keys": [Value::Object(old.public_jwk().as_ref().clone()), Value::Object(new.public_jwk().as_ref().clone())]});
    std::fs::write(&file, both.to_string()).unwrap();
    let verifier = Verifier::new(
        "techchallenge",
        "techchallenge",
        Box::new(KeySource::File(file.clone())),
    )
    .await
    .unwrap();

    let old_token = old.token("e", "employee");
    let new_token = new.token("e", "employee");
    assert!(
        verifier.verify(&old_token).await.is_ok(),
        "rotated but not retired: still valid"
    );
    assert!(verifier.verify(&new_token).await.is_ok());

    // Retire the old key: the set now holds only the new one.
    std::fs::write(&file, new.jwk_set()).unwrap();
    verifier.refresh().await.unwrap();
    assert_eq!(
        verifier.verify(&old_token).await.unwrap_err().to_string(),
        "the token was signed with an unknown or retired key"
    );
    assert!(verifier.verify(&new_token).await.is_ok());

    // A set that cannot be read keeps the last good one.
    std::fs::write(&file, "{ not json").unwrap();
    assert!(verifier.refresh().await.is_err());
    assert!(verifier.verify(&new_token).await.is_ok());
    let _ = Arc::strong_count(&verifier);
}

#[tokio::test]
async fn health_docs_and_request_ids() {
    let app = App::start().await;
    let live = app.call("GET", "/health/live", None, None).await;
    assert_eq!(live.status, StatusCode::OK);
    let ready = app.call("GET", "/health/ready", None, None).await;
    assert_eq!(ready.body["database"], "ok");
    assert!(
        uuid::Uuid::parse_str(ready.request_id.as_deref().unwrap()).is_ok(),
        "a request id is made when none is sent"
    );

    let given = Request::builder()
        .uri("/categories")
        .header("x-request-id", "abc-123")
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        send(&app.router, given).await.request_id.as_deref(),
        Some("abc-123")
    );

    let spec = app.call("GET", "/openapi.json", None, None).await;
    assert_eq!(spec.status, StatusCode::OK);
    for path in [
        "/products",
        "/products/{id}",
        "/products/lookup",
        "/categories",
    ] {
        assert!(
            spec.body["paths"].get(path).is_some(),
            "{path} is not documented"
        );
    }
    let page = app
        .router
        .clone()
        .oneshot(Request::builder().uri("/docs").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let html = String::from_utf8(
        page.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    assert!(html.contains("fetch('openapi.json')"));
    assert!(
        !html.contains("src=\"http"),
        "the docs page loads nothing from elsewhere"
    );
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "product-test-{}-{}",
        std::process::id(),
        uuid::Uuid::now_v7()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The verifier every replica of these tests uses.
async fn verifier(signer: &TestSigner) -> Arc<Verifier> {
    Verifier::new(
        "techchallenge",
        "techchallenge",
        Box::new(StaticKeys(vec![signer.public_jwk()])),
    )
    .await
    .unwrap()
}

/// A replica of the service on `pool`, as a router. A long cache life:
/// reads after writes must still be fresh.
async fn replica(pool: sqlx::PgPool, signer: &TestSigner) -> Router {
    let state = AppState::new(pool, verifier(signer).await, Duration::from_secs(600));
    product_service::router(state)
}

/// A replica that hears no other replica: whatever it shows fresh after a
/// write, its own write made fresh.
async fn deaf_replica(pool: sqlx::PgPool, signer: &TestSigner) -> Router {
    let state = AppState {
        menu: product_service::menu::Menu::deaf(pool.clone()),
        ..AppState::new(pool, verifier(signer).await, Duration::from_secs(600))
    };
    product_service::router(state)
}

/// The bound the README states for another replica's write to reach this
/// one: the catalog's notification, well before `UNWATCHED_TTL`.
const NOTIFIED_WITHIN: Duration = Duration::from_millis(500);

/// The names of the menu as `router` lists it.
async fn menu_names(router: &Router) -> Vec<String> {
    let answer = router::call(router, "GET", "/products?per_page=100", None, None).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    answer.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect()
}

/// How long until `read` passes `done`, held to [`NOTIFIED_WITHIN`].
async fn until<T: std::fmt::Debug, F: std::future::Future<Output = T>>(
    what: &str,
    read: impl Fn() -> F,
    done: impl Fn(&T) -> bool,
) -> Duration {
    let started = std::time::Instant::now();
    loop {
        let seen = read().await;
        if done(&seen) {
            println!("{what}: {:?}", started.elapsed());
            return started.elapsed();
        }
        assert!(
            started.elapsed() < NOTIFIED_WITHIN,
            "{what}: still {seen:?} after {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// How long until `router`'s menu passes `done`.
async fn until_menu(router: &Router, done: impl Fn(&[String]) -> bool) -> Duration {
    until("another replica's menu", || menu_names(router), |n| done(n)).await
}

/// A product's price as `router` answers `path` (`items[0]` of a list, or
/// the product itself).
async fn price_at(router: &Router, path: &str) -> Value {
    let answer = router::call(router, "GET", path, None, None).await;
    let body = &answer.body;
    body["items"][0]["price_cents"]
        .as_i64()
        .or(body["price_cents"].as_i64())
        .map_or(Value::Null, Value::from)
}

#[tokio::test]
async fn the_menu_is_served_from_memory_and_no_write_is_ever_hidden() {
    let signer = TestSigner::new("key-1");
    let pool = database().await;
    let (a, b) = (
        replica(pool.clone(), &signer).await,
        replica(pool.clone(), &signer).await,
    );
    let staff = signer.token("employee-1", "employee");
    // Both replicas hold a menu in memory.
    assert!(menu_names(&a).await.is_empty() && menu_names(&b).await.is_empty());

    // Created through A: A lists it at once, B as soon as it is told.
    let made = router::call(&a, "POST", "/products", Some(&staff), Some(burger())).await;
    assert_eq!(made.status, StatusCode::CREATED);
    let id = made.body["id"].as_str().unwrap().to_string();
    assert_eq!(menu_names(&a).await, ["X-Burger"]);
    until_menu(&b, |names| names == ["X-Burger"]).await;

    // Repriced through B: B at once, A soon after, in its menu and in its
    // cache of single products alike.
    let one = format!("/products/{id}");
    assert_eq!(price_at(&a, &one).await, 2590, "now cached in A");
    let mut repriced = burger();
    repriced["price_cents"] = json!(2990);
    let put = router::call(&b, "PUT", &one, Some(&staff), Some(repriced)).await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.body);
    assert_eq!(price_at(&b, "/products").await, 2990);
    until(
        "A's menu price",
        || price_at(&a, "/products"),
        |p| *p == 2990,
    )
    .await;
    until("A's cached product", || price_at(&a, &one), |p| *p == 2990).await;

    // Taken off the menu through A; and a write by hand in the database,
    // which no replica made, reaches both as well.
    let off = router::call(&a, "DELETE", &one, Some(&staff), None).await;
    assert_eq!(off.status, StatusCode::NO_CONTENT);
    assert!(menu_names(&a).await.is_empty());
    until_menu(&b, |names| names.is_empty()).await;
    sqlx::query("UPDATE products SET active = true")
        .execute(&pool)
        .await
        .unwrap();
    until_menu(&a, |names| names == ["X-Burger"]).await;
    until_menu(&b, |names| names == ["X-Burger"]).await;
    // The categories come from the same snapshot.
    let categories = router::call(&b, "GET", "/categories", None, None).await;
    assert_eq!(categories.body.as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn a_replica_sees_its_own_writes_at_once_and_prices_from_the_database() {
    let signer = TestSigner::new("key-1");
    let pool = database().await;
    // No notification reaches this replica: what it shows after a write,
    // the write itself made fresh.
    let deaf = deaf_replica(pool.clone(), &signer).await;
    let staff = signer.token("employee-1", "employee");
    assert!(menu_names(&deaf).await.is_empty());

    let made = router::call(&deaf, "POST", "/products", Some(&staff), Some(burger())).await;
    let id = made.body["id"].as_str().unwrap().to_string();
    let one = format!("/products/{id}");
    assert_eq!(menu_names(&deaf).await, ["X-Burger"], "created");
    assert_eq!(price_at(&deaf, &one).await, 2590);

    let mut repriced = burger();
    repriced["price_cents"] = json!(2990);
    let put = router::call(&deaf, "PUT", &one, Some(&staff), Some(repriced)).await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.body);
    assert_eq!(
        price_at(&deaf, "/products").await,
        2990,
        "repriced, in the menu"
    );
    assert_eq!(price_at(&deaf, &one).await, 2990, "repriced, the product");

    let off = router::call(&deaf, "DELETE", &one, Some(&staff), None).await;
    assert_eq!(off.status, StatusCode::NO_CONTENT);
    assert!(menu_names(&deaf).await.is_empty(), "taken off the menu");

    // A write this replica did not make stays unseen here: the freshness
    // above came from its own writes, not from a notification.
    sqlx::query("UPDATE products SET active = true, price_cents = 3190")
        .execute(&pool)
        .await
        .unwrap();
    tokio::time::sleep(NOTIFIED_WITHIN).await;
    assert!(menu_names(&deaf).await.is_empty(), "the menu is stale here");
    // Pricing an order never reads the menu: the lookup has the new price.
    let lookup = router::call(
        &deaf,
        "POST",
        "/products/lookup",
        None,
        Some(json!({ "ids": [id] })),
    )
    .await;
    assert_eq!(lookup.status, StatusCode::OK, "{}", lookup.body);
    assert_eq!(lookup.body["products"][0]["price_cents"], 3190);
    assert_eq!(lookup.body["inactive"], json!([]));
}

/// A GET with `If-None-Match`, answered with its status, headers and body.
async fn revalidate(
    router: &Router,
    path: &str,
    etag: Option<&str>,
) -> (StatusCode, header::HeaderMap, Vec<u8>) {
    let mut request = Request::get(path);
    if let Some(etag) = etag {
        request = request.header(header::IF_NONE_MATCH, etag);
    }
    let response = router
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, headers, body)
}

#[tokio::test]
async fn a_kiosk_with_the_current_menu_gets_304_and_no_body() {
    let app = App::start().await;
    app.create(burger()).await;
    for path in [
        "/products",
        "/products?category=lanche&page=1",
        "/categories",
    ] {
        let (status, headers, body) = revalidate(&app.router, path, None).await;
        assert_eq!(status, StatusCode::OK);
        assert!(!body.is_empty());
        let etag = headers[header::ETAG].to_str().unwrap().to_string();
        assert!(
            etag.starts_with('"') && etag.ends_with('"'),
            "a strong ETag: {etag}"
        );
        assert_eq!(
            headers[header::CACHE_CONTROL],
            "public, max-age=5, stale-while-revalidate=30"
        );
        let (status, again, body) = revalidate(&app.router, path, Some(&etag)).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED, "{path}");
        assert!(body.is_empty());
        assert_eq!(again[header::ETAG], etag.as_str());
        // A list of tags, or the weak form, names it too.
        let listed = format!("\"other\", W/{etag}");
        assert_eq!(
            revalidate(&app.router, path, Some(&listed)).await.0,
            StatusCode::NOT_MODIFIED
        );
    }

    // After a change the old tag gets the new list.
    let (_, headers, _) = revalidate(&app.router, "/products", None).await;
    let old = headers[header::ETAG].to_str().unwrap().to_string();
    let mut fries = burger();
    fries["name"] = json!("Batata");
    fries["category"] = json!("Acompanhamento");
    app.create(fries).await;
    let (status, headers, body) = revalidate(&app.router, "/products", Some(&old)).await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(headers[header::ETAG], old.as_str());
    let page: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(page["total"], 2);
    assert_eq!(
        page["items"][0]["name"], "X-Burger",
        "menu order: Lanche first"
    );
}
