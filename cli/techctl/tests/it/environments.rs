//! One blueprint, several stacks: the shipped blueprint's `staging` and
//! `prod` environments, made side by side in one account with the real
//! binary, each with its own values, and one taken down without touching
//! the other.

use std::process::Output;

use crate::common::*;

const STAGING: &str = "techchallenge-staging";
const PROD: &str = "techchallenge-prod";

/// `techctl ARGS` through the strict proxy, with `TECHCTL_ENV` set when
/// `environment` is given (the flag is tested alongside).
async fn run(url: &str, environment: Option<&str>, args: &[&str]) -> Output {
    let mut command = techctl_at(url);
    if let Some(environment) = environment {
        command.env("TECHCTL_ENV", environment);
    }
    command.args(args).stdin(std::process::Stdio::null());
    output_off_runtime(command).await
}

async fn instance_class(aws: &aws::Aws, stack: &str) -> Option<String> {
    let instances = aws.rds.describe_db_instances().send().await.unwrap();
    instances
        .db_instances()
        .iter()
        .find(|i| {
            i.tag_list()
                .iter()
                .any(|t| t.key() == Some("techctl:stack") && t.value() == Some(stack))
        })
        .and_then(|i| i.db_instance_class().map(str::to_string))
}

async fn retention(aws: &aws::Aws, stack: &str, service: &str) -> Option<i32> {
    let name = engine::plan::expand::log_group_name(stack, service);
    let groups = aws
        .logs
        .describe_log_groups()
        .log_group_name_prefix(&name)
        .send()
        .await
        .unwrap();
    groups
        .log_groups()
        .iter()
        .find(|g| g.log_group_name() == Some(name.as_str()))
        .and_then(|g| g.retention_in_days())
}

/// The rate and burst the stack's API stage throttles every route at.
async fn throttling(aws: &aws::Aws, stack: &str) -> (Option<f64>, Option<i32>) {
    let api_id = secret_json(aws, stack).await.unwrap()["api_id"]
        .as_str()
        .unwrap()
        .to_string();
    let stages = aws.apigw.get_stages().api_id(api_id).send().await.unwrap();
    let settings = stages.items()[0].default_route_settings().unwrap();
    (
        settings.throttling_rate_limit(),
        settings.throttling_burst_limit(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environments_are_stacks_of_their_own_and_one_s_down_leaves_the_other() {
    let h = Harness::start().await;
    let url = h.proxy.url.clone();

    // The plan says which stack and which values came from the environment.
    let plan = run(&url, None, &["--env", "prod", "plan"]).await;
    assert_eq!(plan.status.code(), Some(0), "{}", said(&plan));
    let text = said(&plan);
    assert!(
        text.contains(
            "Environment prod: stack techchallenge-prod; from [env.prod], over the base:"
        ),
        "{text}"
    );
    assert!(text.contains("  network.nat (line "), "{text}");
    assert!(text.contains("  services.order.max (line "), "{text}");
    let json = run(&url, None, &["--env", "prod", "plan", "--output", "json"]).await;
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).expect("plan JSON");
    assert_eq!(doc["stack"], PROD);
    assert_eq!(doc["environment"]["name"], "prod");
    assert!(doc["environment"]["overrides"].as_array().unwrap().len() >= 5);

    let up = run(
        &url,
        None,
        &["--env", "staging", "up", "--no-deploy", "--yes"],
    )
    .await;
    assert_eq!(up.status.code(), Some(0), "{}", said(&up));
    let up = run(&url, Some("prod"), &["up", "--no-deploy", "--yes"]).await;
    assert_eq!(up.status.code(), Some(0), "{}", said(&up));

    // Two stacks, each with its environment's values.
    let aws = h.direct().await;
    let staging = count_tagged(&aws, STAGING).await;
    let prod = count_tagged(&aws, PROD).await;
    assert_eq!((staging["vpc"], prod["vpc"]), (1, 1));
    assert_eq!(
        staging["nat-gateway"], 1,
        "staging keeps the base's single NAT"
    );
    assert_eq!(prod["nat-gateway"], 2, "prod has one per zone");
    assert_eq!(
        instance_class(&aws, STAGING).await.as_deref(),
        Some("db.t4g.micro")
    );
    assert_eq!(
        instance_class(&aws, PROD).await.as_deref(),
        Some("db.t4g.small")
    );
    assert_eq!(retention(&aws, STAGING, "order").await, Some(7));
    assert_eq!(retention(&aws, PROD, "order").await, Some(30));
    // The API stage throttles as each environment's blueprint says.
    assert_eq!(throttling(&aws, STAGING).await, (Some(20.0), Some(40)));
    assert_eq!(throttling(&aws, PROD).await, (Some(100.0), Some(200)));
    for stack in [STAGING, PROD] {
        assert!(
            secret_json(&aws, stack).await.is_some(),
            "{stack}'s own secret"
        );
    }
    // Nothing of the base stack was made.
    assert_eq!(count_tagged(&aws, "techchallenge").await["vpc"], 0);

    // Staging goes; prod is exactly as it was.
    let down = run(
        &url,
        None,
        &[
            "--env",
            "staging",
            "down",
            "--yes",
            "--force-delete-secrets",
        ],
    )
    .await;
    assert_eq!(down.status.code(), Some(0), "{}", said(&down));
    // Staging's deploy role goes with it; the account's GitHub OIDC
    // provider stays for every other stack that trusts it.
    assert!(
        aws.iam
            .get_role()
            .role_name("techchallenge-staging-deploy")
            .send()
            .await
            .is_err()
    );
    let providers = aws
        .iam
        .list_open_id_connect_providers()
        .send()
        .await
        .unwrap();
    assert_eq!(providers.open_id_connect_provider_list().len(), 1);
    let staging = count_tagged(&aws, STAGING).await;
    assert!(staging.values().all(|n| *n == 0), "{staging:?}");
    assert_eq!(instance_class(&aws, STAGING).await, None);
    assert_eq!(count_tagged(&aws, PROD).await, prod);
    assert_eq!(
        instance_class(&aws, PROD).await.as_deref(),
        Some("db.t4g.small")
    );
    let unchanged = run(&url, Some("prod"), &["plan", "--detailed-exitcode"]).await;
    assert_eq!(unchanged.status.code(), Some(0), "{}", said(&unchanged));

    // An environment the blueprint does not declare: refused before AWS.
    let unknown = run(&url, Some("qa"), &["plan"]).await;
    assert_eq!(unknown.status.code(), Some(1), "{}", said(&unknown));
    assert!(
        said(&unknown).contains("the environment `qa` is not in the blueprint"),
        "{}",
        said(&unknown)
    );
}
