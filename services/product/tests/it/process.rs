//! The product service as a real process on a socket: configuration
//! errors, the full round trip, and a graceful stop on SIGTERM.

use std::io::Write;
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use testkit::http;
use testkit::jwt::TestSigner;

struct Service {
    child: Child,
    port: u16,
    signer: TestSigner,
    _dir: std::path::PathBuf,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> Service {
    start_with(&[], Stdio::null())
}

fn start_with(env: &[(&str, &str)], stdout: Stdio) -> Service {
    let signer = TestSigner::new("key-1");
    let dir = std::env::temp_dir().join(format!(
        "product-process-{}-{}",
        std::process::id(),
        testkit::free_port()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let jwks = dir.join("jwks.json");
    std::fs::write(&jwks, signer.jwk_set()).unwrap();
    let port = testkit::free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_product-service"))
        .env("PORT", port.to_string())
        .env(
            "DATABASE_URL",
            testkit::postgres().fresh_database("product_process"),
        )
        .env("KEYS_FILE", &jwks)
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .stdout(stdout)
        .stderr(Stdio::null())
        .spawn()
        .expect("start the product service");
    http::wait_until_ok(port, "/health/ready", Duration::from_secs(30));
    Service {
        child,
        port,
        signer,
        _dir: dir,
    }
}

#[test]
fn a_missing_variable_is_named_at_start() {
    let out = Command::new(env!("CARGO_BIN_EXE_product-service"))
        .env_clear()
        .env("PORT", "4002")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("DATABASE_URL: is not set"), "{said}");
    assert!(
        said.contains("set DATABASE_URL to a postgres:// URL"),
        "{said}"
    );
}

#[test]
fn the_catalog_round_trip_over_a_socket() {
    let service = start();
    let token = format!("Bearer {}", service.signer.token("employee-1", "employee"));
    let created = http::send(
        service.port,
        "POST",
        "/products",
        &[("Authorization", &token)],
        Some(
            r#"{"name":"X-Salada","category":"Lanche","price_cents":2890,"preparation_minutes":9}"#,
        ),
    )
    .unwrap();
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.json()["id"].as_str().unwrap().to_string();
    let read = http::send(service.port, "GET", &format!("/products/{id}"), &[], None).unwrap();
    assert_eq!(read.status, 200);
    assert_eq!(read.json()["name"], "X-Salada");
    assert!(read.header("x-request-id").is_some());
    let missing = http::send(service.port, "GET", "/nowhere", &[], None).unwrap();
    assert_eq!(missing.status, 404);
    assert_eq!(
        missing.header("content-type"),
        Some("application/problem+json")
    );
}

#[test]
fn sigterm_lets_the_request_in_flight_finish_and_exits_0() {
    let mut service = start();
    let token = format!("Bearer {}", service.signer.token("employee-1", "employee"));
    let body =
        r#"{"name":"Milkshake","category":"Sobremesa","price_cents":1500,"preparation_minutes":4}"#;
    let text = http::request_text(
        "POST",
        "/products",
        &[("Authorization", &token)],
        Some(body),
    );
    let (first, rest) = text.split_at(text.len() - 20);

    // The request is under way: headers and part of the body are sent.
    let mut stream = TcpStream::connect(("127.0.0.1", service.port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(first.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let killed = Command::new("kill")
        .args(["-TERM", &service.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    std::thread::sleep(Duration::from_millis(300));

    // The rest of the body arrives after SIGTERM; the answer still comes.
    stream.write_all(rest.as_bytes()).unwrap();
    let answer = http::read_answer(&mut stream).unwrap();
    assert_eq!(answer.status, 201, "{}", answer.body);

    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = service.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the service did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));
    // And it no longer listens.
    assert!(TcpStream::connect(("127.0.0.1", service.port)).is_err());
}

#[test]
fn json_logs_carry_the_request_id() {
    let mut service = start_with(
        &[("LOG_FORMAT", "json"), ("RUST_LOG", "info")],
        Stdio::piped(),
    );
    let answer = http::send(
        service.port,
        "GET",
        "/categories",
        &[("x-request-id", "trace-me-123")],
        None,
    )
    .unwrap();
    assert_eq!(answer.header("x-request-id"), Some("trace-me-123"));
    let _ = Command::new("kill")
        .args(["-TERM", &service.child.id().to_string()])
        .status();
    let mut out = String::new();
    std::io::Read::read_to_string(service.child.stdout.as_mut().unwrap(), &mut out).unwrap();
    let line = out
        .lines()
        .find(|l| l.contains("trace-me-123"))
        .unwrap_or_else(|| panic!("no log line names the request id:\n{out}"));
    let entry: serde_json::Value = serde_json::from_str(line).expect("a JSON log line");
    assert_eq!(entry["span"]["request_id"], "trace-me-123");
    assert_eq!(entry["span"]["path"], "/categories");
}
