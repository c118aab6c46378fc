//! The user service through its router, against its own PostgreSQL
//! database, with keys in a local key file as `techctl dev` writes them.

use std::path::PathBuf;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use service_kit::keys::KeySource;
use testkit::jwt::TestSigner;
use testkit::router::{self, Answer, assert_problem};
use user_service::{AppState, Config, MIGRATOR, Settings};

const ADMIN_EMAIL: &str = "admin@lanchonete.example";
const ADMIN_PASSWORD: &str = "correct horse battery staple";
const CPF: &str = "529.982.247-25";

struct App {
    router: Router,
    state: AppState,
    key_file: PathBuf,
}

impl App {
    async fn start(signer: &TestSigner) -> App {
        App::start_limited(signer, user_service::limits::LimitSettings::off()).await
    }

    async fn start_limited(
        signer: &TestSigner,
        limits: user_service::limits::LimitSettings,
    ) -> App {
        let dir = std::env::temp_dir().join(format!(
            "user-test-{}-{}",
            std::process::id(),
            uuid::Uuid::now_v7()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let key_file = dir.join("keys.json");
        std::fs::write(&key_file, signer.key_file(&[])).unwrap();
        let url = tokio::task::spawn_blocking(|| testkit::postgres().fresh_database("user"))
            .await
            .unwrap();
        let pool = service_kit::db::connect(&url, 5, &MIGRATOR).await.unwrap();
        let config = Config {
            port: 0,
            database_url: url,
            pool_size: 5,
            settings: Settings {
                issuer: "techchallenge".into(),
                public_url: "http://localhost:8080".into(),
            },
            jwt_audience: "techchallenge".into(),
            token_lifetime: Duration::from_secs(900),
            keys_refresh: Duration::from_secs(3600),
            admin: Some((ADMIN_EMAIL.into(), ADMIN_PASSWORD.into())),
            limits,
            events: user_service::EventSettings::postgres(""),
        };
        let state = user_service::state(pool, KeySource::File(key_file.clone()), &config)
            .await
            .unwrap();
        App {
            router: user_service::router(state.clone()),
            state,
            key_file,
        }
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

    async fn register(&self, name: &str, cpf: &str, email: &str) -> Answer {
        self.call(
            "POST",
            "/users",
            None,
            Some(json!({"name": name, "cpf": cpf, "email": email})),
        )
        .await
    }

    async fn token(&self, path: &str, body: Option<Value>) -> String {
        let answer = self.call("POST", path, None, body).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        answer.body["access_token"].as_str().unwrap().to_string()
    }

    async fn admin_token(&self) -> String {
        self.token(
            "/auth/employee/token",
            Some(json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})),
        )
        .await
    }
}

/// The header and claims of a token, read without verifying it.
fn decode(token: &str) -> (Value, Value) {
    let mut parts = token.split('.');
    let mut part =
        || serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap()).unwrap();
    (part(), part())
}

#[tokio::test]
async fn a_customer_registers_and_gets_a_token_without_personal_data() {
    let app = App::start(&TestSigner::new("key-a")).await;
    let created = app.register("Ana Souza", CPF, "Ana@Example.com").await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["cpf"], "52998224725");
    assert_eq!(created.body["email"], "ana@example.com");
    let id = created.body["id"].as_str().unwrap().to_string();

    assert_problem(
        &app.register("Other", "52998224725", "other@example.com")
            .await,
        StatusCode::CONFLICT,
        "this CPF is already registered",
    );
    assert_problem(
        &app.register("Other", "111.444.777-35", "ana@example.com")
            .await,
        StatusCode::CONFLICT,
        "this email is already registered",
    );

    let token = app
        .token("/auth/token", Some(json!({"cpf": "52998224725"})))
        .await;
    let (header, claims) = decode(&token);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["kid"], "key-a");
    assert_eq!(claims["sub"], id.as_str());
    assert_eq!(claims["role"], "customer");
    assert_eq!(claims["iss"], "techchallenge");
    assert_eq!(claims["aud"], "techchallenge");
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        900
    );
    assert!(claims["jti"].is_string());
    let everything = format!("{header}{claims}");
    assert!(
        !everything.contains("52998224725")
            && !everything.contains("ana@")
            && !everything.contains("Souza"),
        "no CPF, email or name in a token: {everything}"
    );
    assert!(claims.get("name").is_none());

    // A CPF got the token, so it reads the record masked, and changes
    // nothing: staff do, at the counter, before anything is read.
    let own = app
        .call("GET", &format!("/users/{id}"), Some(&token), None)
        .await;
    assert_eq!(own.status, StatusCode::OK);
    assert_eq!(own.body["email"], "a***@example.com");
    assert_eq!(own.body["cpf"], "***.982.247-**");
    assert_eq!(own.body["name"], "Ana Souza");
    for body in [json!({"name": "Ana S. Souza"}), json!({"name": 5})] {
        assert_problem(
            &app.call("PATCH", &format!("/users/{id}"), Some(&token), Some(body))
                .await,
            StatusCode::FORBIDDEN,
            "by staff at the counter",
        );
    }
    let staff = app.admin_token().await;
    let edited = app
        .call(
            "PATCH",
            &format!("/users/{id}"),
            Some(&staff),
            Some(json!({"name": "Ana S. Souza"})),
        )
        .await;
    assert_eq!(edited.body["name"], "Ana S. Souza");
    assert_eq!(
        edited.body["email"], "ana@example.com",
        "staff see it whole"
    );
    let other = app
        .register("Bruno", "111.444.777-35", "bruno@example.com")
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_problem(
        &app.call("GET", &format!("/users/{other}"), Some(&token), None)
            .await,
        StatusCode::FORBIDDEN,
        "only the customer themself or staff",
    );
    assert_problem(
        &app.call("GET", "/users?cpf=52998224725", Some(&token), None)
            .await,
        StatusCode::FORBIDDEN,
        "for employee or admin",
    );

    let found = app
        .call("GET", "/users?cpf=529.982.247-25", Some(&staff), None)
        .await;
    assert_eq!(found.body["id"], id.as_str());
}

#[tokio::test]
async fn bad_input_is_a_problem_with_the_field_named() {
    let app = App::start(&TestSigner::new("key-a")).await;
    for (cpf, why) in [
        ("111.111.111-11", "one repeated digit"),
        ("529.982.247-24", "check digits do not match"),
        ("529.982.247", "11 digits"),
    ] {
        let answer = app.register("Ana", cpf, "ana@example.com").await;
        assert_problem(&answer, StatusCode::UNPROCESSABLE_ENTITY, why);
        assert_eq!(answer.body["errors"][0]["field"], "cpf");
    }
    let answer = app
        .register(&"A".repeat(101), "111.111.111-11", "not-an-email")
        .await;
    assert_problem(
        &answer,
        StatusCode::UNPROCESSABLE_ENTITY,
        "3 fields are invalid",
    );
    let missing = app
        .call(
            "POST",
            "/users",
            None,
            Some(json!({"name": "Ana", "cpf": CPF})),
        )
        .await;
    assert_problem(
        &missing,
        StatusCode::UNPROCESSABLE_ENTITY,
        "missing field `email`",
    );
    let unknown = app
        .call(
            "POST",
            "/auth/token",
            None,
            Some(json!({"cpf": "111.444.777-35"})),
        )
        .await;
    assert_problem(&unknown, StatusCode::NOT_FOUND, "register with POST /users");
    let bad = app
        .call("POST", "/auth/token", None, Some(json!({"cpf": "123"})))
        .await;
    assert_problem(&bad, StatusCode::UNPROCESSABLE_ENTITY, "11 digits");
}

#[tokio::test]
async fn guests_and_employees_get_tokens_of_their_role() {
    let app = App::start(&TestSigner::new("key-a")).await;
    let guest = app.token("/auth/guest", None).await;
    let (_, claims) = decode(&guest);
    assert_eq!(claims["role"], "guest");
    assert!(uuid::Uuid::parse_str(claims["sub"].as_str().unwrap()).is_ok());

    let admin = app.admin_token().await;
    assert_eq!(decode(&admin).1["role"], "admin");
    let wrong = app
        .call(
            "POST",
            "/auth/employee/token",
            None,
            Some(json!({"email": ADMIN_EMAIL, "password": "nope"})),
        )
        .await;
    let unknown = app
        .call(
            "POST",
            "/auth/employee/token",
            None,
            Some(json!({"email": "who@x.example", "password": "nope"})),
        )
        .await;
    assert_problem(&wrong, StatusCode::UNAUTHORIZED, "wrong email or password");
    assert_eq!(
        wrong.body, unknown.body,
        "an unknown email and a wrong password look the same"
    );

    let new = json!({"name": "Carla", "email": "carla@lanchonete.example", "password": "twelve chars ok", "role": "employee"});
    let created = app
        .call("POST", "/employees", Some(&admin), Some(new.clone()))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_problem(
        &app.call("POST", "/employees", Some(&admin), Some(new))
            .await,
        StatusCode::CONFLICT,
        "exists already",
    );
    let employee = app
        .token(
            "/auth/employee/token",
            Some(json!({"email": "carla@lanchonete.example", "password": "twelve chars ok"})),
        )
        .await;
    assert_eq!(decode(&employee).1["role"], "employee");
    let refused = app
        .call("POST", "/employees", Some(&employee), Some(json!({"name": "D", "email": "d@x.example", "password": "twelve chars ok", "role": "admin"})))
        .await;
    assert_problem(&refused, StatusCode::FORBIDDEN, "this route is for admin");
    assert_problem(
        &app.call("GET", "/users?cpf=52998224725", Some(&guest), None)
            .await,
        StatusCode::FORBIDDEN,
        "the token is a guest's",
    );
}

#[tokio::test]
async fn staff_erase_a_customer_whose_tokens_stop_and_an_event_tells_the_others() {
    let app = App::start(&TestSigner::new("key-a")).await;
    let id = app.register("Ana Souza", CPF, "ana@example.com").await.body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let token = app.token("/auth/token", Some(json!({"cpf": CPF}))).await;
    let path = format!("/users/{id}/anonymization");
    // A CPF (and all it reveals) is not enough, nor is being a customer.
    assert_problem(
        &app.call("POST", &path, Some(&token), None).await,
        StatusCode::FORBIDDEN,
        "by staff at the counter",
    );
    let old_route = app
        .call(
            "POST",
            "/users/anonymization",
            None,
            Some(json!({"name": "Ana Souza", "cpf": CPF, "email": "ana@example.com"})),
        )
        .await;
    assert_eq!(
        old_route.status,
        StatusCode::METHOD_NOT_ALLOWED,
        "the old proof-by-CPF route is gone: {}",
        old_route.body
    );

    let staff = app.admin_token().await;
    let done = app.call("POST", &path, Some(&staff), None).await;
    assert_eq!(done.status, StatusCode::ACCEPTED, "{}", done.body);
    assert_eq!(done.body["erased"], json!(["name", "cpf", "email"]));
    let follows: Vec<&str> = done.body["follows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["service"].as_str().unwrap())
        .collect();
    assert_eq!(follows, ["order", "production", "payment"]);
    // Again: the same answer, and no second event.
    let again = app.call("POST", &path, Some(&staff), None).await;
    assert_eq!(again.status, StatusCode::ACCEPTED);
    assert_eq!(again.body["anonymized_at"], done.body["anonymized_at"]);
    let events: Vec<(String, String)> = sqlx::query_as("SELECT event_name, envelope FROM outbox")
        .fetch_all(&app.state.pool)
        .await
        .unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].0, "user.anonymized");
    assert!(events[0].1.contains(&id) && !events[0].1.contains("Ana"));

    let record = app
        .call("GET", &format!("/users/{id}"), Some(&staff), None)
        .await;
    assert_eq!(record.status, StatusCode::OK);
    assert_eq!(record.body["name"], Value::Null);
    assert_eq!(record.body["cpf"], Value::Null);
    assert_eq!(record.body["email"], Value::Null);
    assert!(record.body["anonymized_at"].is_string());
    let by: Option<uuid::Uuid> =
        sqlx::query_scalar("SELECT anonymized_by FROM customers WHERE id = $1::uuid")
            .bind(&id)
            .fetch_one(&app.state.pool)
            .await
            .unwrap();
    assert!(by.is_some(), "who erased is kept");
    // The token the customer held is refused, and listed for the others.
    assert_problem(
        &app.call("GET", &format!("/users/{id}"), Some(&token), None)
            .await,
        StatusCode::UNAUTHORIZED,
        "revoked",
    );
    let revoked = app.call("GET", "/auth/revocations", None, None).await;
    assert!(revoked.body.to_string().contains(&id), "{}", revoked.body);
    assert_eq!(
        app.call("POST", "/auth/token", None, Some(json!({"cpf": CPF})))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // The CPF is free again.
    assert_eq!(
        app.register("Ana Souza", CPF, "ana@example.com")
            .await
            .status,
        StatusCode::CREATED
    );
    assert_problem(
        &app.call(
            "POST",
            &format!("/users/{}/anonymization", uuid::Uuid::now_v7()),
            Some(&staff),
            None,
        )
        .await,
        StatusCode::NOT_FOUND,
        "no customer with id",
    );
}

#[tokio::test]
async fn keys_are_published_and_a_rotation_keeps_live_tokens_valid() {
    let old = TestSigner::new("key-a");
    let new = TestSigner::new("key-b");
    let app = App::start(&old).await;
    let id = app.register("Ana", CPF, "ana@example.com").await.body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let before = app.token("/auth/token", Some(json!({"cpf": CPF}))).await;

    let jwks = app.call("GET", "/.well-known/jwks.json", None, None).await;
    assert_eq!(jwks.body["keys"][0]["kid"], "key-a");
    assert!(
        jwks.body["keys"][0].get("d").is_none(),
        "no private part is published"
    );
    let discovery = app
        .call("GET", "/.well-known/openid-configuration", None, None)
        .await;
    assert_eq!(discovery.body["issuer"], "techchallenge");
    assert_eq!(
        discovery.body["jwks_uri"],
        "http://localhost:8080/.well-known/jwks.json"
    );
    assert_eq!(
        discovery.body["id_token_signing_alg_values_supported"],
        json!(["RS256"])
    );

    // Rotate: sign with key-b, keep publishing key-a.
    std::fs::write(&app.key_file, new.key_file(&[&old])).unwrap();
    app.state.verifier.refresh().await.unwrap();
    let after = app.token("/auth/token", Some(json!({"cpf": CPF}))).await;
    assert_eq!(decode(&after).0["kid"], "key-b");
    for token in [&before, &after] {
        assert_eq!(
            app.call("GET", &format!("/users/{id}"), Some(token), None)
                .await
                .status,
            StatusCode::OK
        );
    }

    // Retire key-a: tokens it signed are refused, the new ones still work.
    std::fs::write(&app.key_file, new.key_file(&[])).unwrap();
    app.state.verifier.refresh().await.unwrap();
    assert_problem(
        &app.call("GET", &format!("/users/{id}"), Some(&before), None)
            .await,
        StatusCode::UNAUTHORIZED,
        "unknown or retired key",
    );
    assert_eq!(
        app.call("GET", &format!("/users/{id}"), Some(&after), None)
            .await
            .status,
        StatusCode::OK
    );

    // A key file that cannot be read keeps the last good keys.
    std::fs::write(&app.key_file, "{ broken").unwrap();
    let _ = app.state.verifier.refresh().await;
    assert_eq!(
        decode(&app.token("/auth/guest", None).await).0["kid"],
        "key-b"
    );
}

#[tokio::test]
async fn sign_ins_are_limited_per_client_and_wrong_passwords_per_account() {
    use service_kit::limit::Rate;
    use user_service::limits::LimitSettings;
    let app = App::start_limited(
        &TestSigner::new("key-limits"),
        LimitSettings {
            // Twelve at once, then one a minute: nothing refills in the test.
            per_client: Rate {
                per_minute: 1,
                burst: 12,
            },
            per_identity: Rate {
                per_minute: 6,
                burst: 3,
            },
            ..LimitSettings::off()
        },
    )
    .await;
    // Wrong passwords for one account: three, then that account waits,
    // even with the right password, before any hash is computed.
    for _ in 0..3 {
        let wrong = app
            .call(
                "POST",
                "/auth/employee/token",
                None,
                Some(json!({"email": ADMIN_EMAIL, "password": "guess"})),
            )
            .await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    }
    let limited = app
        .call(
            "POST",
            "/auth/employee/token",
            None,
            Some(json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})),
        )
        .await;
    assert_problem(
        &limited,
        StatusCode::TOO_MANY_REQUESTS,
        "attempts for this account",
    );
    assert_eq!(limited.retry_after.as_deref(), Some("10"));
    // A CPF asked for too often waits too; guests only count per client.
    for _ in 0..3 {
        let unknown = app
            .call("POST", "/auth/token", None, Some(json!({"cpf": CPF})))
            .await;
        assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    }
    let cpf_limited = app
        .call("POST", "/auth/token", None, Some(json!({"cpf": CPF})))
        .await;
    assert_eq!(cpf_limited.status, StatusCode::TOO_MANY_REQUESTS);
    // Eight requests so far: four guests more use the client's burst of
    // twelve; then everything waits, the body not even read (a malformed
    // one gets 429, not 400).
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(app.call("POST", "/auth/guest", None, None).await.status);
    }
    assert_eq!(statuses[..4], [StatusCode::OK; 4], "{statuses:?}");
    assert_eq!(statuses[4], StatusCode::TOO_MANY_REQUESTS);
    let malformed = router::send(
        &app.router,
        axum::http::Request::builder()
            .method("POST")
            .uri("/users")
            .header("content-type", "application/json")
            .body(axum::body::Body::from("{"))
            .unwrap(),
    )
    .await;
    assert_eq!(malformed.status, StatusCode::TOO_MANY_REQUESTS);
}

/// `POST /auth/guest` from `peer`, naming `forwarded_for` as the client.
async fn guest_from(app: &App, peer: &str, forwarded_for: &str) -> StatusCode {
    use axum::extract::ConnectInfo;
    let request = axum::http::Request::post("/auth/guest")
        .header("x-forwarded-for", forwarded_for)
        .extension(ConnectInfo(peer.parse::<std::net::SocketAddr>().unwrap()))
        .body(axum::body::Body::empty())
        .unwrap();
    router::send(&app.router, request).await.status
}

#[tokio::test]
async fn only_the_gateway_may_say_who_the_client_is() {
    use service_kit::limit::{Rate, TrustedProxies};
    use user_service::limits::LimitSettings;
    let app = App::start_limited(
        &TestSigner::new("key-proxies"),
        LimitSettings {
            per_client: Rate {
                per_minute: 1,
                burst: 2,
            },
            trusted: TrustedProxies::parse("10.0.0.0/16").unwrap(),
            ..LimitSettings::off()
        },
    )
    .await;
    // Behind the gateway (a trusted peer), each client has its own limit.
    for client in ["198.51.100.1", "198.51.100.2", "198.51.100.3"] {
        for _ in 0..2 {
            let status = guest_from(&app, "10.0.3.7:40000", client).await;
            assert_eq!(status, StatusCode::OK, "{client}");
        }
    }
    assert_eq!(
        guest_from(&app, "10.0.3.7:40000", "198.51.100.1").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // A caller reaching the service directly cannot name itself anew to
    // escape its limit: its own address counts.
    for (n, status) in [
        StatusCode::OK,
        StatusCode::OK,
        StatusCode::TOO_MANY_REQUESTS,
    ]
    .into_iter()
    .enumerate()
    {
        let named = format!("203.0.113.{n}");
        assert_eq!(guest_from(&app, "192.0.2.9:5000", &named).await, status);
    }
}
