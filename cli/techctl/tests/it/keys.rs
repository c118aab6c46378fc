//! `techctl keys` against moto, with the user service reading the signing
//! keys secret and a verifier of another service reading only the public
//! keys secret: a rotation fails no request, a retirement takes effect
//! without a restart, concurrent rotations lose no key, the public set
//! never holds a private key, and a secret edited into something unusable
//! is refused and left alone.
//!
//! Needs the moto server (`scripts/moto.sh` installs it into `.venv`) and
//! PostgreSQL's server binaries (`apt-get install postgresql`).

use std::process::{Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_secretsmanager::Client as Secrets;
use serde_json::{Map, Value, json};
use service_kit::auth::{AuthError, Verifier};
use service_kit::keys::KeySource;
use techctl::keystore::KeyStore;
use testkit::http::{self, Answer};

use crate::common::*;

const SECRET: &str = "techctl/techchallenge/signing-keys";
const PUBLIC: &str = "techctl/techchallenge/public-keys";
/// The services reread the keys this often here (60 s by default).
const REFRESH: Duration = Duration::from_secs(1);

/// The command's answer: its last JSON line (a `{"warning": …}` line, such
/// as a wait for the stack lock, may come before it).
fn json_of(out: &Output) -> Value {
    assert!(out.status.success(), "{}", said(out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {}", said(out)))
}

async fn secrets_client(url: &str) -> Secrets {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(REGION))
        .endpoint_url(url)
        .test_credentials()
        .load()
        .await;
    Secrets::new(&config)
}

/// Moto behind the strict proxy, holding the key secrets as `techctl up`
/// makes them: the ring with a first key (and a field of someone else's,
/// to be kept), and its public set. Everything talks through the proxy.
async fn moto_with_stack_secret() -> (Harness, Secrets) {
    let h = Harness::start().await;
    let secrets = secrets_client(&h.proxy.url).await;
    let mut value = keys::key_document(&keys::generate().unwrap());
    let public = json!({"jwt_jwks": value["jwt_jwks"].clone()});
    value.insert("vpc_id".into(), json!("vpc-0123"));
    value.insert("db_password".into(), json!("kept-as-it-is"));
    for (name, value) in [(SECRET, Value::Object(value)), (PUBLIC, public)] {
        secrets
            .create_secret()
            .name(name)
            .secret_string(value.to_string())
            .send()
            .await
            .unwrap();
    }
    (h, secrets)
}

/// The public set as published, checked to hold public halves only.
async fn public_kids(secrets: &Secrets) -> Vec<String> {
    let out = secrets
        .get_secret_value()
        .secret_id(PUBLIC)
        .version_stage("AWSCURRENT")
        .send()
        .await
        .unwrap();
    let text = out.secret_string().unwrap();
    assert!(
        !text.contains("PRIVATE KEY") && !text.contains("\"d\""),
        "the public set holds a private key: {text}"
    );
    published(&serde_json::from_str(text).unwrap())
}

async fn version_count(secrets: &Secrets) -> usize {
    secrets
        .list_secret_version_ids()
        .secret_id(SECRET)
        .send()
        .await
        .unwrap()
        .versions()
        .len()
}

/// The value and version id under `stage`.
async fn version(secrets: &Secrets, stage: &str) -> (Map<String, Value>, String) {
    let out = secrets
        .get_secret_value()
        .secret_id(SECRET)
        .version_stage(stage)
        .send()
        .await
        .unwrap();
    let value = serde_json::from_str(out.secret_string().unwrap()).unwrap();
    (value, out.version_id().unwrap().to_string())
}

fn published(value: &Map<String, Value>) -> Vec<String> {
    value["jwt_jwks"]["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect()
}

/// The user service, in this process, on a free port.
struct UserService {
    port: u16,
}

impl UserService {
    async fn start(moto: &str) -> UserService {
        let database =
            tokio::task::spawn_blocking(|| testkit::postgres().fresh_database("user_keys"))
                .await
                .unwrap();
        let port = testkit::free_port();
        let config = user_service::Config {
            port,
            database_url: database,
            pool_size: 4,
            settings: user_service::Settings {
                issuer: "techchallenge".into(),
                public_url: format!("http://127.0.0.1:{port}"),
            },
            jwt_audience: "techchallenge".into(),
            token_lifetime: Duration::from_secs(3600),
            keys_refresh: REFRESH,
            admin: None,
            limits: user_service::limits::LimitSettings::off(),
            // Only its relay uses it, and this test starts none.
            events: user_service::EventSettings::postgres(""),
        };
        let pool = service_kit::db::connect(&config.database_url, 4, &user_service::MIGRATOR)
            .await
            .unwrap();
        let keys = KeySource::SecretsManager {
            client: secrets_client(moto).await,
            secret_id: SECRET.into(),
        };
        let state = user_service::state(pool, keys, &config).await.unwrap();
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        tokio::spawn(async move {
            axum::serve(listener, user_service::router(state))
                .await
                .unwrap();
        });
        UserService { port }
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> Answer {
        let (port, method, path) = (self.port, method.to_string(), path.to_string());
        let bearer = token.map(|t| format!("Bearer {t}"));
        let body = body.map(str::to_string);
        tokio::task::spawn_blocking(move || {
            let headers: Vec<(&str, &str)> = bearer
                .as_deref()
                .map(|b| vec![("authorization", b)])
                .unwrap_or_default();
            http::send(port, &method, &path, &headers, body.as_deref()).unwrap()
        })
        .await
        .unwrap()
    }

    /// A fresh customer token, and the customer's id.
    async fn token(&self) -> (String, String) {
        let answer = self
            .send(
                "POST",
                "/auth/token",
                None,
                Some(r#"{"cpf":"52998224725"}"#),
            )
            .await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        let token = answer.json()["access_token"].as_str().unwrap().to_string();
        (
            token,
            answer.json()["subject"].as_str().unwrap().to_string(),
        )
    }

    /// The status of reading the customer's own record with `token`.
    async fn read_with(&self, token: &str, customer: &str) -> u16 {
        self.send("GET", &format!("/users/{customer}"), Some(token), None)
            .await
            .status
    }
}

fn kid_of(token: &str) -> String {
    use base64::Engine;
    let header = token.split('.').next().unwrap();
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .unwrap();
    serde_json::from_slice::<Value>(&header).unwrap()["kid"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Polls `check` until it holds or `within` passes; says how long it took.
async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < within {
        if check().await {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: not within {within:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_fails_no_request_and_a_retirement_needs_no_restart() {
    let (h, secrets) = moto_with_stack_secret().await;
    let (before, before_version) = version(&secrets, "AWSCURRENT").await;
    let first = before["jwt_kid"].as_str().unwrap().to_string();

    let users = UserService::start(&h.proxy.url).await;
    // Another service's verifier, reading the public set only.
    let other = Verifier::start(
        "techchallenge",
        "techchallenge",
        KeySource::SecretsManager {
            client: secrets_client(&h.proxy.url).await,
            secret_id: PUBLIC.into(),
        },
        REFRESH,
    )
    .await
    .unwrap();
    let registered = users
        .send(
            "POST",
            "/users",
            None,
            Some(r#"{"name":"Ana","cpf":"529.982.247-25","email":"ana@example.com"}"#),
        )
        .await;
    assert_eq!(registered.status, 201, "{}", registered.body);
    let (old_token, customer) = users.token().await;
    assert_eq!(kid_of(&old_token), first);

    // Rotate.
    let rotated = json_of(&techctl(
        &h.proxy.url,
        &["keys", "rotate", "--output", "json"],
    ));
    let second = rotated["signing"].as_str().unwrap().to_string();
    assert_ne!(second, first);
    assert_eq!(rotated["previous"], first.as_str());
    let (after, _) = version(&secrets, "AWSCURRENT").await;
    assert_eq!(after["jwt_kid"], second.as_str());
    assert_eq!(published(&after), [first.clone(), second.clone()]);
    assert_eq!(public_kids(&secrets).await, [first.clone(), second.clone()]);
    assert_eq!(after["vpc_id"], "vpc-0123", "the outputs are kept");
    assert_eq!(after["db_password"], "kept-as-it-is");
    let (previous, previous_version) = version(&secrets, "AWSPREVIOUS").await;
    assert_eq!(
        previous_version, before_version,
        "the old version is AWSPREVIOUS"
    );
    assert_eq!(previous["jwt_kid"], first.as_str());

    // The user service signs with the new key within a refresh interval...
    let took = eventually(REFRESH * 5, "tokens carry the new kid", || async {
        kid_of(&users.token().await.0) == second
    })
    .await;
    println!("the user service signed with the new key {took:?} after the rotation");
    let (new_token, _) = users.token().await;
    // ... and every request keeps working: old and new tokens, everywhere.
    for _ in 0..3 {
        assert_eq!(users.read_with(&old_token, &customer).await, 200);
        assert_eq!(users.read_with(&new_token, &customer).await, 200);
        assert!(other.verify(&old_token).await.is_ok());
        assert!(other.verify(&new_token).await.is_ok());
        tokio::time::sleep(REFRESH).await;
    }

    let listed = json_of(&techctl(
        &h.proxy.url,
        &["keys", "list", "--output", "json"],
    ));
    let roles: Vec<(&str, &str)> = listed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k["kid"].as_str().unwrap(), k["role"].as_str().unwrap()))
        .collect();
    assert_eq!(roles, [(first.as_str(), "published"), (&second, "signing")]);
    assert!(listed["keys"][0]["tokens_live_until"].is_string());
    assert_eq!(listed["keys"][0]["retirable"], false);
    assert!(listed["keys"][1]["created_at"].is_string());
    let table = said(&techctl(&h.proxy.url, &["keys", "list"]));
    assert!(table.contains("TOKENS LIVE UNTIL"), "{table}");
    assert!(table.contains(&format!("{second}  ")), "{table}");

    // Nothing has expired: a plain retire leaves the old key published.
    let nothing = techctl(&h.proxy.url, &["keys", "retire"]);
    assert!(
        said(&nothing).contains("Nothing to retire"),
        "{}",
        said(&nothing)
    );
    assert_eq!(published(&version(&secrets, "AWSCURRENT").await.0).len(), 2);
    // Retiring it by kid warns of live tokens and wants a confirmation.
    let unconfirmed = techctl(&h.proxy.url, &["keys", "retire", "--kid", &first]);
    assert_eq!(unconfirmed.status.code(), Some(1), "{}", said(&unconfirmed));
    assert!(
        said(&unconfirmed).contains("may be alive until"),
        "{}",
        said(&unconfirmed)
    );
    assert_eq!(published(&version(&secrets, "AWSCURRENT").await.0).len(), 2);
    let retired = techctl(&h.proxy.url, &["keys", "retire", "--kid", &first, "--yes"]);
    assert!(retired.status.success(), "{}", said(&retired));
    assert_eq!(
        published(&version(&secrets, "AWSCURRENT").await.0),
        [second.as_str()]
    );
    assert_eq!(public_kids(&secrets).await, [second.as_str()]);
    // Within a refresh interval the old token is refused everywhere.
    eventually(REFRESH * 5, "the old token refused", || async {
        users.read_with(&old_token, &customer).await == 401
            && other.verify(&old_token).await == Err(AuthError::UnknownKey)
    })
    .await;
    assert_eq!(users.read_with(&new_token, &customer).await, 200);
    assert!(other.verify(&new_token).await.is_ok());

    // Two rotations at the same moment: the stack lock makes one wait for
    // the other, and both keys end up published.
    let rotate = ["keys", "rotate", "--output", "json", "--lock-timeout", "2m"];
    let (a, b) = tokio::join!(
        tokio::task::spawn_blocking({
            let url = h.proxy.url.clone();
            move || techctl(&url, &rotate)
        }),
        tokio::task::spawn_blocking({
            let url = h.proxy.url.clone();
            move || techctl(&url, &rotate)
        }),
    );
    let (a, b) = (json_of(&a.unwrap()), json_of(&b.unwrap()));
    let (now, _) = version(&secrets, "AWSCURRENT").await;
    let kids = published(&now);
    for kid in [
        &second,
        a["signing"].as_str().unwrap(),
        b["signing"].as_str().unwrap(),
    ] {
        assert!(kids.iter().any(|k| k == kid), "{kid} lost from {kids:?}");
    }
    assert_eq!(kids.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_that_loses_the_race_is_redone_on_the_winners_version() {
    let (h, secrets) = moto_with_stack_secret().await;
    let aws = connect(&h.proxy.url).await;
    // Both rotations read the same version before either writes: the
    // barrier holds each first attempt until the other has read too. (Each
    // rotation first runs its change once on a copy, to publish the new key
    // ahead of the ring: that call is not an attempt to write.)
    let barrier = Arc::new(Barrier::new(2));
    let attempts = Arc::new(AtomicUsize::new(0));
    let rotation = |aws: aws::Aws| {
        let (barrier, attempts) = (barrier.clone(), attempts.clone());
        let key = keys::generate().unwrap();
        let kid = key.kid.clone();
        let task = tokio::task::spawn_blocking(move || {
            let store = KeyStore::Stack {
                aws: Box::new(aws),
                name: SECRET.into(),
                public: PUBLIC.into(),
            };
            let mut calls = 0;
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(store.update(|ring| {
                    calls += 1;
                    if calls == 1 {
                        ring.rotate(&key, SystemTime::now());
                        return Ok(());
                    }
                    attempts.fetch_add(1, Ordering::SeqCst);
                    if calls == 2 {
                        barrier.wait();
                    }
                    ring.rotate(&key, SystemTime::now());
                    Ok(())
                }))
                .map(|_| ())
        });
        (kid, task)
    };
    let (kid_a, a) = rotation(aws.clone());
    let (kid_b, b) = rotation(aws.clone());
    a.await.unwrap().unwrap();
    b.await.unwrap().unwrap();
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        3,
        "one of the two writes must have lost and been redone"
    );
    let (value, _) = version(&secrets, "AWSCURRENT").await;
    let kids = published(&value);
    assert_eq!(kids.len(), 3);
    assert!(kids.contains(&kid_a) && kids.contains(&kid_b), "{kids:?}");
    assert_eq!(
        public_kids(&secrets).await,
        kids,
        "the public set follows the ring"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_edited_into_invalid_json_is_refused_and_left_alone() {
    let (h, secrets) = moto_with_stack_secret().await;
    // The hand edit: a new current version holding broken JSON. (Made
    // current by moving the label: moto mislabels versions when a plain
    // put follows a moved label.)
    let (_, good) = version(&secrets, "AWSCURRENT").await;
    let broken = secrets
        .put_secret_value()
        .secret_id(SECRET)
        .secret_string("{\"jwt_kid\": \"abc\", ")
        .version_stages("hand-edit")
        .send()
        .await
        .unwrap();
    secrets
        .update_secret_version_stage()
        .secret_id(SECRET)
        .version_stage("AWSCURRENT")
        .move_to_version_id(broken.version_id().unwrap())
        .remove_from_version_id(&good)
        .send()
        .await
        .unwrap();
    let versions_before = version_count(&secrets).await;

    for args in [
        &["keys", "rotate"][..],
        &["keys", "list"],
        &["keys", "retire"],
    ] {
        let out = techctl(&h.proxy.url, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", said(&out));
        let message = said(&out);
        assert!(message.contains("does not hold a JSON object"), "{message}");
        assert!(message.contains("nothing was changed"), "{message}");
        assert!(message.contains("AWSPREVIOUS"), "{message}");
    }
    let current = secrets
        .get_secret_value()
        .secret_id(SECRET)
        .version_stage("AWSCURRENT")
        .send()
        .await
        .unwrap();
    assert_eq!(current.version_id(), broken.version_id());
    assert_eq!(current.secret_string(), Some("{\"jwt_kid\": \"abc\", "));
    let versions_after = version_count(&secrets).await;
    assert_eq!(versions_after, versions_before, "no version was added");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_commands_work_on_the_local_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let home = dev::home::Home::open(dir.path()).unwrap();
    let first = home.ensure_keys().unwrap();
    let local = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_techctl"))
            .current_dir(dir.path())
            .arg("--blueprint")
            .arg(blueprint_path())
            .args(args)
            .arg("--local")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let rotated = json_of(&local(&["keys", "rotate", "--output", "json"]));
    let second = rotated["signing"].as_str().unwrap().to_string();
    let file: Value =
        serde_json::from_str(&std::fs::read_to_string(home.keys_file()).unwrap()).unwrap();
    assert_eq!(file["jwt_kid"], second.as_str());
    assert_eq!(
        published(file.as_object().unwrap()),
        [first.clone(), second.clone()]
    );
    // A service reading the file accepts both.
    let keys = KeySource::File(home.keys_file()).read().await.unwrap();
    assert_eq!(keys["jwt_kid"], second.as_str());

    let listed = json_of(&local(&["keys", "list", "--output", "json"]));
    assert_eq!(listed["keys"][0]["role"], "published");
    assert_eq!(listed["keys"][1]["role"], "signing");
    let retired = local(&["keys", "retire", "--kid", &first, "--yes"]);
    assert!(retired.status.success(), "{}", said(&retired));
    assert!(
        said(&retired).contains("may be alive until"),
        "{}",
        said(&retired)
    );
    let listed = json_of(&local(&["keys", "list", "--output", "json"]));
    assert_eq!(listed["keys"][0]["role"], "retired");
    let file: Value =
        serde_json::from_str(&std::fs::read_to_string(home.keys_file()).unwrap()).unwrap();
    assert_eq!(published(file.as_object().unwrap()), [second.as_str()]);
    // Retiring the signing key is refused with the way out.
    let refused = local(&["keys", "retire", "--kid", &second, "--yes"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        said(&refused).contains("techctl keys rotate"),
        "{}",
        said(&refused)
    );

    // `rotate --retire-old`: a key that stopped signing long ago (its date
    // moved back by hand) is retired in the same write that adds the new
    // key; the key just replaced stays published.
    let third = json_of(&local(&["keys", "rotate", "--output", "json"]))["signing"]
        .as_str()
        .unwrap()
        .to_string();
    let mut file: Value =
        serde_json::from_str(&std::fs::read_to_string(home.keys_file()).unwrap()).unwrap();
    for record in file["jwt_keys"].as_array_mut().unwrap() {
        if record["kid"] == second.as_str() {
            record["signing_until"] = json!("2020-01-01T00:00:00Z");
        }
    }
    std::fs::write(home.keys_file(), file.to_string()).unwrap();
    let listed = json_of(&local(&["keys", "list", "--output", "json"]));
    assert_eq!(listed["keys"][1]["retirable"], true);
    let rotated = json_of(&local(&[
        "keys",
        "rotate",
        "--retire-old",
        "--output",
        "json",
    ]));
    assert_eq!(rotated["retired"], json!([second]));
    let fourth = rotated["signing"].as_str().unwrap();
    assert_eq!(rotated["published"], json!([third, fourth]));
    let roles: Vec<String> = json_of(&local(&["keys", "list", "--output", "json"]))["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["role"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(roles, ["retired", "retired", "published", "signing"]);
}
