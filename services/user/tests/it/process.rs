//! The user service as a process: keys read from the stack secret in
//! Secrets Manager (moto standing in for AWS), the round trip over a
//! socket, and configuration errors that name the variable.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use testkit::http;
use testkit::jwt::TestSigner;

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signs_with_the_key_of_the_stack_secret() {
    let aws = testkit::StrictAws::start().await;
    let signer = TestSigner::new("stack-key");
    let config = aws.sdk_config().await;
    aws_sdk_secretsmanager::Client::new(&config)
        .create_secret()
        .name("techctl/test")
        .secret_string(signer.key_file(&[]))
        .send()
        .await
        .unwrap();

    let port = testkit::free_port();
    let (database, bus) = tokio::task::spawn_blocking(|| {
        let postgres = testkit::postgres();
        (
            postgres.fresh_database("user_process"),
            postgres.fresh_database("user_process_bus"),
        )
    })
    .await
    .unwrap();
    let _service = Running(
        Command::new(env!("CARGO_BIN_EXE_user-service"))
            .env("PORT", port.to_string())
            .env("DATABASE_URL", &database)
            // Where its events go (locally, a database of queues).
            .env("EVENTS_DATABASE_URL", &bus)
            .env("KEYS_SECRET_ID", "techctl/test")
            .env("AWS_ENDPOINT_URL", aws.url())
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("ADMIN_EMAIL", "admin@lanchonete.example")
            .env("ADMIN_PASSWORD", "correct horse battery staple")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    tokio::task::spawn_blocking(move || {
        http::wait_until_ok(port, "/health/ready", Duration::from_secs(30))
    })
    .await
    .unwrap();

    let answers = tokio::task::spawn_blocking(move || {
        let registered = http::send(
            port,
            "POST",
            "/users",
            &[],
            Some(r#"{"name":"Ana","cpf":"529.982.247-25","email":"ana@example.com"}"#),
        )
        .unwrap();
        let token = http::send(
            port,
            "POST",
            "/auth/token",
            &[],
            Some(r#"{"cpf":"52998224725"}"#),
        )
        .unwrap();
        let jwks = http::send(port, "GET", "/.well-known/jwks.json", &[], None).unwrap();
        let admin = http::send(
            port,
            "POST",
            "/auth/employee/token",
            &[],
            Some(
                r#"{"email":"admin@lanchonete.example","password":"correct horse battery staple"}"#,
            ),
        )
        .unwrap();
        (registered, token, jwks, admin)
    })
    .await
    .unwrap();
    let (registered, token, jwks, admin) = answers;
    assert_eq!(registered.status, 201, "{}", registered.body);
    assert_eq!(token.status, 200, "{}", token.body);
    assert_eq!(jwks.json()["keys"][0]["kid"], "stack-key");
    assert_eq!(
        admin.status, 200,
        "the first admin comes from configuration: {}",
        admin.body
    );

    // The token verifies with the published key, as any service would check it.
    let verifier = service_kit::auth::Verifier::new(
        "techchallenge",
        "techchallenge",
        Box::new(service_kit::auth::StaticKeys(vec![signer.public_jwk()])),
    )
    .await
    .unwrap();
    let caller = verifier
        .verify(token.json()["access_token"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(caller.subject, registered.json()["id"].as_str().unwrap());
}

#[test]
fn configuration_errors_name_the_variable() {
    let out = Command::new(env!("CARGO_BIN_EXE_user-service"))
        .env_clear()
        .env("DATABASE_URL", "postgres://nowhere/x")
        .env("EVENTS_DATABASE_URL", "postgres://nowhere/bus")
        .env("ADMIN_EMAIL", "admin@x.example")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("ADMIN_PASSWORD: is not set"), "{said}");

    let out = Command::new(env!("CARGO_BIN_EXE_user-service"))
        .env_clear()
        .env("DATABASE_URL", "postgres://nowhere/x")
        .env("EVENTS_DATABASE_URL", "postgres://nowhere/bus")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("KEYS_SECRET_ID: is not set"), "{said}");
    assert!(
        said.contains("or set KEYS_FILE to a local key file"),
        "{said}"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_user-service"))
        .env_clear()
        .env("DATABASE_URL", "postgres://nowhere/x")
        .env("KEYS_FILE", "keys.json")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("EVENTS_DATABASE_URL: is not set"), "{said}");
}
