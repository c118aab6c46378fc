//! `techctl deploy` against moto (ECS, Application Auto Scaling, the stack
//! secret) and a real registry (Debian's `docker-registry`): the image is
//! built and pushed, the task definition and the service get every
//! attribute the rollout needs, the rollout is watched to its end, and a
//! second deploy of the same source changes nothing.

use std::process::Output;

use crate::common::{Harness, blueprint_path, said as text, techctl_at};
use aws_sdk_applicationautoscaling::types::{ScalableDimension, ServiceNamespace};
use serde_json::Value;
use testkit::registry::LocalRegistry;

fn deploy(endpoint: &str, args: &[&str]) -> Output {
    techctl_at(endpoint)
        .arg("deploy")
        .args(args)
        .arg("--blueprint")
        .arg(blueprint_path())
        .output()
        .expect("run techctl deploy")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_rolls_out_a_service_with_every_attribute_and_repeats_as_a_no_op() {
    let h = Harness::start().await;
    let bp = blueprint::load(&blueprint_path()).unwrap();
    let (report, _) = h.up(&bp).await;
    assert!(report.succeeded(), "up: {report:?}");
    let registry = tokio::task::spawn_blocking(LocalRegistry::start)
        .await
        .unwrap();
    let host = registry.url.trim_start_matches("http://").to_string();

    // A prebuilt image must come by digest; an unknown service is named.
    let out = deploy(&h.proxy.url, &["order", "--image", "x/order:latest"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("names no digest"), "{}", text(&out));
    let out = deploy(&h.proxy.url, &["kitchen"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("the blueprint has no service \"kitchen\""));

    let out = deploy(&h.proxy.url, &["order", "--registry", &registry.url]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // Application Auto Scaling did not know the new service at first.
    assert!(
        h.refused()
            .iter()
            .any(|r| r == "RegisterScalableTarget ValidationException"),
        "{:?}",
        h.refused()
    );
    let said = text(&out);
    assert!(said.contains("3 blobs uploaded"), "{said}");
    assert!(said.contains("registered arn:aws:ecs:"), "{said}");
    assert!(said.contains("desired 2, running"), "{said}");
    assert!(said.contains("order runs arn:aws:ecs:"), "{said}");

    let aws = h.direct().await;
    let secret: Value = serde_json::from_str(
        aws.secrets
            .get_secret_value()
            .secret_id("techctl/techchallenge")
            .version_stage("AWSCURRENT")
            .send()
            .await
            .unwrap()
            .secret_string()
            .unwrap(),
    )
    .unwrap();
    let output = |key: &str| secret[key].as_str().unwrap().to_string();

    // The task definition.
    let described = aws
        .ecs
        .describe_task_definition()
        .task_definition("techchallenge-order")
        .send()
        .await
        .unwrap();
    let td = described.task_definition().unwrap();
    assert_eq!(td.revision(), 1);
    assert_eq!(
        td.requires_compatibilities()
            .iter()
            .map(|c| c.as_str())
            .collect::<Vec<_>>(),
        ["FARGATE"]
    );
    assert_eq!(td.network_mode().unwrap().as_str(), "awsvpc");
    assert_eq!((td.cpu(), td.memory()), (Some("256"), Some("512")));
    // The platform is the built binary's: an arm64 build runs on ARM64.
    let platform = td.runtime_platform().expect("a runtime platform");
    let this_machine = if cfg!(target_arch = "aarch64") {
        "ARM64"
    } else {
        "X86_64"
    };
    assert_eq!(
        platform.cpu_architecture().map(|a| a.as_str()),
        Some(this_machine)
    );
    assert_eq!(
        platform.operating_system_family().map(|f| f.as_str()),
        Some("LINUX")
    );
    assert_eq!(
        td.execution_role_arn(),
        Some(output("task_execution_role_arn").as_str())
    );
    assert_eq!(
        td.task_role_arn(),
        Some(output("order_task_role_arn").as_str())
    );
    let container = &td.container_definitions()[0];
    let image = container.image().unwrap();
    assert!(
        image.starts_with(&format!("{host}/techchallenge/order@sha256:")),
        "deployed by digest: {image}"
    );
    assert_eq!(container.port_mappings()[0].container_port(), Some(4003));
    let env: std::collections::BTreeMap<&str, &str> = container
        .environment()
        .iter()
        .map(|kv| (kv.name().unwrap(), kv.value().unwrap()))
        .collect();
    assert_eq!(env["PORT"], "4003");
    assert_eq!(env["DB_NAME"], "order_service");
    assert_eq!(env["EVENT_TRANSPORT"], "sns-sqs");
    assert_eq!(env["EVENTS_QUEUE_URL"], output("order_queue_url"));
    let password = output("db_password");
    assert!(
        env.values().all(|v| !v.contains(&password)),
        "no secret in plain text"
    );
    let secrets: Vec<(&str, &str)> = container
        .secrets()
        .iter()
        .map(|s| (s.name(), s.value_from()))
        .collect();
    assert_eq!(secrets.len(), 1);
    assert_eq!(secrets[0].0, "DB_PASSWORD");
    assert!(secrets[0].1.ends_with(":db_password::"), "{secrets:?}");
    let logs = container.log_configuration().unwrap();
    assert_eq!(logs.log_driver().as_str(), "awslogs");
    assert_eq!(
        logs.options().unwrap()["awslogs-group"],
        output("order_log_group")
    );
    assert_eq!(
        container.health_check().unwrap().command(),
        ["CMD", "/usr/local/bin/order-service", "health"]
    );

    // The service and its scaling.
    let services = aws
        .ecs
        .describe_services()
        .cluster("techchallenge")
        .services("order")
        .send()
        .await
        .unwrap();
    let service = &services.services()[0];
    assert_eq!(service.task_definition(), td.task_definition_arn());
    assert_eq!(service.desired_count(), 2);
    assert_eq!(service.launch_type().unwrap().as_str(), "FARGATE");
    let vpc = service
        .network_configuration()
        .unwrap()
        .awsvpc_configuration()
        .unwrap();
    let private: Vec<String> = secret["private_subnet_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    assert_eq!(vpc.subnets(), private.as_slice());
    assert_eq!(
        vpc.security_groups(),
        [output("services_security_group_id")]
    );
    assert_eq!(vpc.assign_public_ip().unwrap().as_str(), "DISABLED");
    let balancer = &service.load_balancers()[0];
    assert_eq!(
        balancer.target_group_arn(),
        Some(output("order_target_group_arn").as_str())
    );
    assert_eq!(balancer.container_port(), Some(4003));
    // moto keeps no deployment configuration: read it from the request.
    let created = h.proxy.bodies("CreateService");
    assert_eq!(created.len(), 1);
    let deployment = &created[0]["deploymentConfiguration"];
    assert_eq!(
        deployment["deploymentCircuitBreaker"],
        serde_json::json!({"enable": true, "rollback": true})
    );
    assert_eq!(deployment["minimumHealthyPercent"], 100);
    assert_eq!(deployment["maximumPercent"], 200);
    assert_eq!(created[0]["healthCheckGracePeriodSeconds"], 60);

    let targets = aws
        .autoscaling
        .describe_scalable_targets()
        .service_namespace(ServiceNamespace::Ecs)
        .send()
        .await
        .unwrap();
    let target = &targets.scalable_targets()[0];
    assert_eq!(target.resource_id(), "service/techchallenge/order");
    assert_eq!(
        target.scalable_dimension(),
        &ScalableDimension::EcsServiceDesiredCount
    );
    assert_eq!((target.min_capacity(), target.max_capacity()), (2, 6));
    let policies = aws
        .autoscaling
        .describe_scaling_policies()
        .service_namespace(ServiceNamespace::Ecs)
        .send()
        .await
        .unwrap();
    let policy = &policies.scaling_policies()[0];
    assert_eq!(policy.policy_name(), "techchallenge-order-cpu");
    let tracking = policy
        .target_tracking_scaling_policy_configuration()
        .unwrap();
    assert_eq!(tracking.target_value(), 60.0);
    assert_eq!(
        tracking
            .predefined_metric_specification()
            .unwrap()
            .predefined_metric_type()
            .as_str(),
        "ECSServiceAverageCPUUtilization"
    );

    // The same source again: nothing uploaded, no new revision, no rollout.
    let again = deploy(&h.proxy.url, &["order", "--registry", &registry.url]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    let said = text(&again);
    assert!(said.contains("0 blobs uploaded"), "{said}");
    assert!(said.contains("task definition unchanged"), "{said}");
    assert!(said.contains("nothing to roll out"), "{said}");
    let revisions = aws
        .ecs
        .list_task_definitions()
        .family_prefix("techchallenge-order")
        .send()
        .await
        .unwrap();
    assert_eq!(revisions.task_definition_arns().len(), 1);

    // A deploy re-run after one that stopped before its rollout ended (the
    // service is on the revision, still rolling out) watches it to the end.
    // The first four looks (the deploy's own two, the one before watching
    // and the watcher's first) see the rollout in progress.
    let looks = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = looks.clone();
    h.proxy.set_policy(move |seen| {
        if seen.operation == "DescribeServices"
            && counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 4
        {
            testkit::Fault::Rewrite("\"COMPLETED\"", "\"IN_PROGRESS\"")
        } else {
            testkit::Fault::Pass
        }
    });
    let resumed = deploy(&h.proxy.url, &["order", "--registry", &registry.url]);
    h.proxy.set_policy(|_| testkit::Fault::Pass);
    assert_eq!(resumed.status.code(), Some(0), "{}", text(&resumed));
    let said = text(&resumed);
    assert!(
        said.contains("its rollout has not finished: watching it"),
        "{said}"
    );
    assert!(said.contains("order runs arn:aws:ecs:"), "{said}");

    // A dry run says what would change, and changes nothing.
    let dry = deploy(
        &h.moto.url,
        &["order", "--registry", &registry.url, "--dry-run"],
    );
    assert_eq!(dry.status.code(), Some(0), "{}", text(&dry));
    assert!(
        text(&dry).contains("task definition: no change"),
        "{}",
        text(&dry)
    );
    assert!(
        text(&dry).contains("0 of 3 blobs missing"),
        "{}",
        text(&dry)
    );

    // The payment service says which Mercado Pago credentials are missing.
    let payment = deploy(&h.proxy.url, &["payment", "--registry", &registry.url]);
    assert_eq!(payment.status.code(), Some(1), "{}", text(&payment));
    assert!(
        text(&payment).contains("mercadopago_access_token"),
        "{}",
        text(&payment)
    );
}

/// Operators add the Mercado Pago credentials to the stack secret by hand:
/// `up` leaves them there, and no command ever prints them (nor any other
/// secret value).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_operators_add_to_the_stack_secret_survive_up_and_are_never_printed() {
    let h = Harness::start().await;
    let bp = blueprint::load(&blueprint_path()).unwrap();
    assert!(h.up(&bp).await.0.succeeded());
    let direct = h.direct().await;
    let secret_id = "techctl/techchallenge";
    let operator: Vec<(&str, String)> = [
        "mercadopago_access_token",
        "mercadopago_webhook_secret",
        "mercadopago_collector_id",
        "mercadopago_pos_id",
    ]
    .iter()
    .map(|k| (*k, format!("{k}-value-{}", fastrand::u64(..))))
    .collect();
    aws::secrets::update(&direct, secret_id, |value| {
        for (k, v) in &operator {
            value.insert(k.to_string(), Value::String(v.clone()));
        }
        Ok::<_, aws::AwsError>(())
    })
    .await
    .unwrap();
    let read = || async {
        let text = direct
            .secrets
            .get_secret_value()
            .secret_id(secret_id)
            .version_stage("AWSCURRENT")
            .send()
            .await
            .unwrap()
            .secret_string()
            .unwrap()
            .to_string();
        serde_json::from_str::<serde_json::Map<String, Value>>(&text).unwrap()
    };
    let before = read().await;
    // Every value that must never be printed: the operators' and the
    // credentials `up` made, a line of the private key's PEM among them.
    let mut hidden: Vec<String> = operator.iter().map(|(_, v)| v.clone()).collect();
    hidden.push(before["db_password"].as_str().unwrap().to_string());
    let pem = before["jwt_private_key"].as_str().unwrap();
    hidden.extend(pem.lines().skip(1).take(3).map(str::to_string));

    let mut printed = String::new();
    let mut run = |args: &[&str], code: i32| {
        let out = techctl_at(&h.proxy.url)
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", text(&out));
        printed.push_str(&text(&out));
        text(&out)
    };
    let plan = run(&["plan", "--detailed-exitcode"], 0);
    assert!(plan.contains("No changes"), "{plan}");
    run(&["plan", "--detailed-exitcode", "--output", "json"], 0);
    run(&["up", "--yes", "--no-deploy"], 0);
    run(&["up", "--yes", "--no-deploy", "--output", "json"], 0);
    let status = run(&["status"], 0);
    assert!(
        status.contains("mercadopago_access_token") && status.contains("hidden"),
        "{status}"
    );
    run(&["status", "--output", "json"], 0);

    let after = read().await;
    for (k, v) in &operator {
        assert_eq!(after[*k].as_str(), Some(v.as_str()), "{k} kept by up");
    }
    assert_eq!(after["db_password"], before["db_password"]);
    for value in &hidden {
        assert!(
            !printed.contains(value.as_str()),
            "a secret value was printed: {value}"
        );
    }

    // With its credentials in place the payment service deploys.
    let registry = tokio::task::spawn_blocking(LocalRegistry::start)
        .await
        .unwrap();
    let payment = deploy(
        &h.proxy.url,
        &["payment", "--registry", &registry.url, "--no-wait"],
    );
    assert_eq!(payment.status.code(), Some(0), "{}", text(&payment));
    assert!(
        hidden.iter().all(|v| !text(&payment).contains(v.as_str())),
        "deploy printed a secret value"
    );
}
