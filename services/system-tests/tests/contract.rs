//! Each service keeps the contract its `/openapi.json` states: schemathesis
//! (from `.venv`, as `scripts/test.sh` installs it) sends every operation
//! valid and invalid requests, without a token, with a customer's and with
//! an admin's, and finds no server error, no status, header or content type
//! the document does not declare, no response that does not match its
//! schema, no route that ignores its token and no invalid input accepted.
//!
//! One check is left out: that every request the schemas allow is
//! accepted. A CPF's check digits, a category that must exist or a
//! product that must be on the menu are rules no JSON schema states; the
//! service answers them with `422`, which the document declares.

use std::process::Command;

use system_tests::{Options, SERVICES, System};

fn schemathesis() -> std::path::PathBuf {
    let bin = testkit::workspace_root().join(".venv/bin/schemathesis");
    assert!(
        bin.is_file(),
        "schemathesis is not installed at {}: run `python3 -m venv .venv && \
         .venv/bin/pip install schemathesis` (scripts/test.sh does)",
        bin.display()
    );
    bin
}

#[tokio::test(flavor = "multi_thread")]
async fn every_service_answers_what_its_openapi_document_says() {
    let bin = schemathesis();
    let system = System::start(Options::new()).await;
    system.product("X-Burger", "Lanche", 2590).await;
    // Schemathesis keeps a cache where it runs: not in the checkout.
    let scratch = std::env::temp_dir().join(format!("contract-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).expect("a scratch folder");
    let admin = system.signer.token("admin-1", "admin");
    let customer = system.signer.token("customer-1", "customer");
    let mut failed = Vec::new();
    for service in SERVICES {
        for (who, token) in [
            ("no token", None),
            ("a customer", Some(&customer)),
            ("an admin", Some(&admin)),
        ] {
            let url = format!("{}/openapi.json", system.url(service));
            let mut run = Command::new(&bin);
            run.current_dir(&scratch);
            run.args(["run", &url, "--checks", "all", "--max-examples", "15"])
                .args(["--exclude-checks", "positive_data_acceptance"])
                .args(["--phases", "examples,coverage,fuzzing", "--no-color"])
                .args(["--seed", "1", "--suppress-health-check", "all"]);
            if let Some(token) = token {
                run.args(["--header", &format!("Authorization: Bearer {token}")]);
            }
            let out = tokio::task::spawn_blocking(move || run.output())
                .await
                .unwrap()
                .expect("run schemathesis");
            let said = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            println!(
                "== {service}, {who}\n{}",
                said.lines()
                    .rev()
                    .take(12)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            if !out.status.success() {
                failed.push(format!("{service} with {who}:\n{said}"));
            }
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));
}
