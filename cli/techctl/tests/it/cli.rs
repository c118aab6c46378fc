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

#[test]
fn plan_detailed_exitcode_and_down_confirmation() {
    let moto = testkit::Moto::start();
    let url = moto.url.as_str();

    let plan = techctl(url, &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(2), "{}", text(&plan));
    assert!(
        text(&plan)
            .contains("Plan: 86 to create, 0 to update, 0 to replace, 0 to delete, 0 unchanged."),
        "{}",
        text(&plan)
    );
    // Without the flag a plan with changes still succeeds.
    assert_eq!(techctl(url, &["plan"]).status.code(), Some(0));

    let up = techctl(url, &["up", "--no-deploy"]);
    assert_eq!(up.status.code(), Some(0), "{}", text(&up));
    assert!(text(&up).contains("Apply complete"), "{}", text(&up));

    let plan = techctl(url, &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan));
    assert!(text(&plan).contains("No changes"));

    let json = techctl(url, &["plan", "--output", "json"]);
    let doc: serde_json::Value =
        serde_json::from_slice(&json.stdout).expect("plan --output json is JSON");
    assert_eq!(doc["counts"]["unchanged"], 86);
    assert!(
        doc["plan"]["changes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["action"] == "no-op")
    );

    let status = techctl(url, &["status", "--output", "json"]);
    let doc: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status JSON");
    assert_eq!(doc["in_sync"], true);
    assert_eq!(doc["outputs"]["db_password"], "(secret, hidden)");
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

    // No terminal and no --yes: down refuses and deletes nothing.
    let refused = techctl(url, &["down"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused).contains("re-run with --yes"),
        "{}",
        text(&refused)
    );
    assert_eq!(
        techctl(url, &["plan", "--detailed-exitcode"]).status.code(),
        Some(0)
    );

    let down = techctl(url, &["down", "--yes"]);
    assert_eq!(down.status.code(), Some(0), "{}", text(&down));
    assert!(text(&down).contains("Destroy complete"), "{}", text(&down));
    let again = techctl(url, &["down", "--yes"]);
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
