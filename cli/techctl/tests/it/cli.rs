//! The `techctl` binary as a user runs it: exit codes, confirmations, and
//! a bad blueprint or setup never reaching AWS.

use std::io::Write;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::common::said as text;
use crate::common::*;

/// A listener that counts connections: proof that nothing reached "AWS".
fn counting_endpoint() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            seen.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    (url, count)
}

#[test]
fn a_clock_scale_is_refused_against_aws_and_when_it_is_no_scale() {
    let (url, connections) = counting_endpoint();
    let out = techctl_at(&url)
        .env_remove("AWS_ENDPOINT_URL")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("TECHCTL_AWS_CLOCK_SCALE", "0.1")
        .args(["up", "--yes", "--no-deploy"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("talking to AWS itself"),
        "{}",
        text(&out)
    );
    for bad in ["fast", "0", "2", "-1"] {
        let out = techctl_at(&url)
            .env("TECHCTL_AWS_CLOCK_SCALE", bad)
            .args(["down", "--yes"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert!(
            text(&out).contains("is not a scale"),
            "{bad}: {}",
            text(&out)
        );
    }
    assert_eq!(connections.load(Ordering::SeqCst), 0);
}

#[test]
fn a_bad_blueprint_fails_with_exit_1_and_no_aws_call() {
    let (url, connections) = counting_endpoint();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    let source = blueprint_source().replacen("port = 4002", "port = 4001", 1);
    std::fs::File::create(&path)
        .unwrap()
        .write_all(source.as_bytes())
        .unwrap();
    for command in ["plan", "up", "down", "status"] {
        let out = techctl(
            &url,
            &[command, "--yes", "--blueprint", path.to_str().unwrap()],
        );
        assert_eq!(out.status.code(), Some(1), "{command}: {}", text(&out));
        let said = text(&out);
        assert!(
            said.contains("services.product.port: port 4001 is also used by service \"user\""),
            "{said}"
        );
        assert!(said.contains("bad.toml:"), "{said}");
    }
    let missing = techctl(&url, &["plan", "--blueprint", "no/such.toml"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        text(&missing).contains("cannot read the blueprint no/such.toml"),
        "{}",
        text(&missing)
    );
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "a bad blueprint reached the endpoint"
    );
}

#[test]
fn a_region_other_than_the_blueprints_is_refused() {
    let (url, connections) = counting_endpoint();
    let out = techctl(&url, &["plan", "--region", "eu-west-1"]);
    assert_eq!(out.status.code(), Some(1));
    let said = text(&out);
    assert!(said.contains("the blueprint describes a stack in us-east-1 but the AWS configuration selects eu-west-1"), "{said}");
    assert!(said.contains("pass --region us-east-1"), "{said}");
    assert_eq!(connections.load(Ordering::SeqCst), 0);
}

/// Mercado Pago settings an operator put in the stack secret (where they
/// lived before each service had a secret of its own, `techctl secrets`):
/// `up` does not own them, so it keeps them, and no command prints them.
const OPERATORS_VALUES: [(&str, &str); 4] = [
    ("mercadopago_access_token", "APP_USR-operator-token-5521"),
    ("mercadopago_webhook_secret", "operator-webhook-secret-7731"),
    ("mercadopago_collector_id", "operator-collector-991"),
    ("mercadopago_pos_id", "operator-pos-4410"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_detailed_exitcode_and_down_confirmation() {
    // Through the strict proxy, as every AWS test is.
    let h = Harness::start().await;
    let url = h.proxy.url.clone();
    let run = |args: &'static [&'static str]| techctl_async(&url, args);

    let plan = run(&["plan", "--detailed-exitcode"]).await;
    assert_eq!(plan.status.code(), Some(2), "{}", text(&plan));
    assert!(
        text(&plan)
            .contains("Plan: 91 to create, 0 to update, 0 to replace, 0 to delete, 0 unchanged."),
        "{}",
        text(&plan)
    );
    // Without the flag a plan with changes still succeeds.
    assert_eq!(run(&["plan"]).await.status.code(), Some(0));

    let up = run(&["up", "--no-deploy"]).await;
    assert_eq!(up.status.code(), Some(0), "{}", text(&up));
    assert!(text(&up).contains("Apply complete"), "{}", text(&up));

    // An operator adds the Mercado Pago settings to the stack secret.
    let aws = h.direct().await;
    let mut secret = secret_json(&aws, "techchallenge")
        .await
        .expect("the stack secret");
    for (key, value) in OPERATORS_VALUES {
        secret[key] = value.into();
    }
    // A new version made current, as the console makes it (in two steps:
    // moto mislabels a plain put that follows a moved label).
    let before = aws
        .secrets
        .get_secret_value()
        .secret_id("techctl/techchallenge")
        .version_stage("AWSCURRENT")
        .send()
        .await
        .unwrap();
    let edited = aws
        .secrets
        .put_secret_value()
        .secret_id("techctl/techchallenge")
        .secret_string(secret.to_string())
        .version_stages("operator-edit")
        .send()
        .await
        .unwrap();
    aws.secrets
        .update_secret_version_stage()
        .secret_id("techctl/techchallenge")
        .version_stage("AWSCURRENT")
        .move_to_version_id(edited.version_id().unwrap())
        .remove_from_version_id(before.version_id().unwrap())
        .send()
        .await
        .unwrap();

    let plan = run(&["plan", "--detailed-exitcode"]).await;
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan));
    assert!(text(&plan).contains("No changes"));

    let json = run(&["plan", "--output", "json"]).await;
    let doc: serde_json::Value =
        serde_json::from_slice(&json.stdout).expect("plan --output json is JSON");
    assert_eq!(doc["counts"]["unchanged"], 91);
    assert!(
        doc["plan"]["changes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["action"] == "no-op")
    );

    // Another up keeps them; so does one in JSON.
    let again = run(&["up", "--no-deploy"]).await;
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    let again_json = run(&["up", "--no-deploy", "--output", "json"]).await;
    assert_eq!(again_json.status.code(), Some(0), "{}", text(&again_json));
    let kept = secret_json(&aws, "techchallenge").await.unwrap();
    for (key, value) in OPERATORS_VALUES {
        assert_eq!(kept[key], value, "up kept {key}");
    }

    let status = run(&["status", "--output", "json"]).await;
    let doc: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status JSON");
    assert_eq!(doc["in_sync"], true);
    assert_eq!(doc["outputs"]["db_password"], "(secret, hidden)");
    for (key, _) in OPERATORS_VALUES {
        assert_eq!(doc["outputs"][key], "(set by an operator, hidden)", "{key}");
    }
    assert!(
        doc["outputs"].get("jwt_private_key").is_none(),
        "no key in the stack secret"
    );
    assert!(
        doc["outputs"]["vpc_id"]
            .as_str()
            .unwrap()
            .starts_with("vpc-")
    );
    assert!(!String::from_utf8_lossy(&status.stdout).contains("BEGIN PRIVATE KEY"));
    let status_text = run(&["status"]).await;
    assert_eq!(status_text.status.code(), Some(0), "{}", text(&status_text));

    // Not one of their values, nor the database's password, in anything
    // printed since they were added: plan, up and status, text and JSON.
    let password = kept["db_password"]
        .as_str()
        .expect("db_password")
        .to_string();
    for out in [&plan, &json, &again, &again_json, &status, &status_text] {
        let printed = text(out);
        for (key, value) in OPERATORS_VALUES {
            assert!(
                !printed.contains(value),
                "{key}'s value printed:\n{printed}"
            );
        }
        assert!(!printed.contains(&password), "the password printed");
    }

    // No terminal and no --yes: down refuses and deletes nothing.
    let refused = run(&["down"]).await;
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused).contains("re-run with --yes"),
        "{}",
        text(&refused)
    );
    assert_eq!(
        run(&["plan", "--detailed-exitcode"]).await.status.code(),
        Some(0)
    );

    let down = run(&["down", "--yes"]).await;
    assert_eq!(down.status.code(), Some(0), "{}", text(&down));
    assert!(text(&down).contains("Destroy complete"), "{}", text(&down));
    let again = run(&["down", "--yes"]).await;
    assert!(
        text(&again).contains("Nothing to delete"),
        "{}",
        text(&again)
    );
}

#[test]
fn shells_complete_man_documents_and_every_command_shows_examples() {
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_techctl"))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        String::from_utf8(out.stdout).unwrap()
    };
    let bash = run(&["completions", "bash"]);
    assert!(bash.contains("_techctl()"), "{bash}");
    for command in ["plan", "up", "deploy", "events", "redrive"] {
        assert!(bash.contains(command), "bash completes {command}");
    }
    // Sourced by bash, it completes `techctl de` to both commands.
    let completed = std::process::Command::new("bash")
        .arg("-c")
        .arg(
            "source <(\"$TECHCTL\" completions bash) && COMP_WORDS=(techctl de) && COMP_CWORD=1 \
             && COMP_LINE='techctl de' && COMP_POINT=10 && _techctl techctl de techctl && echo \"${COMPREPLY[@]}\"",
        )
        .env("TECHCTL", env!("CARGO_BIN_EXE_techctl"))
        .output()
        .unwrap();
    let words = String::from_utf8_lossy(&completed.stdout);
    let mut words: Vec<&str> = words.split_whitespace().collect();
    words.sort();
    assert_eq!(words, ["deploy", "dev"], "{}", text(&completed));
    assert!(run(&["completions", "zsh"]).contains("#compdef techctl"));
    assert!(run(&["completions", "fish"]).contains("complete -c techctl"));
    assert!(run(&["completions", "powershell"]).contains("Register-ArgumentCompleter"));

    let page = run(&["man"]);
    assert!(
        page.starts_with(".ie") && page.contains(".TH techctl 1"),
        "{page}"
    );
    assert!(
        page.contains("techctl\\-events"),
        "every command is in the page"
    );
    let dir = tempfile::tempdir().unwrap();
    run(&["man", "--dir", dir.path().to_str().unwrap()]);
    let rotate = std::fs::read_to_string(dir.path().join("techctl-keys-rotate.1")).unwrap();
    assert!(rotate.contains(".TH techctl-keys-rotate 1"), "{rotate}");
    assert!(rotate.contains("techctl keys rotate"), "{rotate}");

    for command in [
        "plan",
        "up",
        "deploy",
        "down",
        "status",
        "verify",
        "dev",
        "keys",
        "secrets",
        "events",
        "completions",
        "man",
    ] {
        let help = run(&[command, "--help"]);
        assert!(help.contains("Examples:\n  techctl "), "{command}: {help}");
    }
}

/// `secrets set` on a terminal asks for the value without showing it: run
/// under `script`, which gives it a pseudo-terminal, the value typed after
/// the prompt never comes back in what the terminal shows.
#[test]
fn a_value_typed_at_the_prompt_is_not_echoed() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let command = format!(
        "{} --blueprint {} secrets set payment mercadopago_access_token --local",
        env!("CARGO_BIN_EXE_techctl"),
        blueprint_path().display()
    );
    let mut child = std::process::Command::new("script")
        .args(["-q", "-e", "-c", &command, "/dev/null"])
        .current_dir(dir.path())
        .env_remove("TECHCTL_ENV")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("script (util-linux) gives techctl a terminal");
    let mut shown = child.stdout.take().unwrap();
    // Type only once the prompt is up (and the echo off).
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    while !String::from_utf8_lossy(&seen).contains("(not shown): ") {
        let n = shown.read(&mut byte).unwrap();
        assert!(n > 0, "no prompt: {}", String::from_utf8_lossy(&seen));
        seen.push(byte[0]);
    }
    let typed = "typed-token-4f1c9";
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{typed}").unwrap();
    shown.read_to_end(&mut seen).unwrap();
    drop(stdin);
    let status = child.wait().unwrap();
    let shown = String::from_utf8_lossy(&seen);
    assert!(status.success(), "{shown}");
    assert!(
        shown.contains("payment mercadopago_access_token (not shown): "),
        "{shown}"
    );
    assert!(!shown.contains(typed), "the value was echoed: {shown}");
    let kept = std::fs::read_to_string(dir.path().join(".techctl/secrets.json")).unwrap();
    assert!(kept.contains(typed), "the value was kept");
}
