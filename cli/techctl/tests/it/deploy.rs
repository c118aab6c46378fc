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
    // Before its first rollout the service got its database role, from a
    // one-off task that alone read the master password.
    assert!(
        said.contains("database set-up: a role and a database for order"),
        "{said}"
    );
    let ran = h.proxy.bodies("RunTask");
    assert_eq!(ran.len(), 1, "{ran:?}");
    assert_eq!(ran[0]["startedBy"], "techctl-db-init");
    assert_eq!(
        ran[0]["overrides"]["containerOverrides"][0]["command"],
        serde_json::json!(["/usr/local/bin/order-service", "db-init"])
    );

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
    // It logs in as its own role, with its own password from its own
    // secret; it never sees the stack secret.
    assert_eq!(env["DB_USER"], "order_service");
    assert_eq!(env["KEYS_SECRET_ID"], output("public_keys_secret_arn"));
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
    assert_eq!(
        secrets,
        [(
            "DB_PASSWORD",
            format!("{}:db_password::", output("order_secret_arn")).as_str()
        )]
    );
    // The set-up task's definition: the master password by reference, from
    // the stack secret, under its own execution role; no task role.
    let init = aws
        .ecs
        .describe_task_definition()
        .task_definition("techchallenge-db-init")
        .send()
        .await
        .unwrap();
    let init = init.task_definition().unwrap();
    assert_eq!(
        init.execution_role_arn(),
        Some(output("db_init_role_arn").as_str())
    );
    assert_eq!(init.task_role_arn(), None);
    let init_secrets: std::collections::BTreeMap<&str, &str> = init.container_definitions()[0]
        .secrets()
        .iter()
        .map(|s| (s.name(), s.value_from()))
        .collect();
    assert!(
        init_secrets["DB_PASSWORD"].contains(":secret:techctl/techchallenge-"),
        "{init_secrets:?}"
    );
    assert_eq!(
        init_secrets["DB_INIT_PASSWORD_ORDER_SERVICE"],
        format!("{}:db_password::", output("order_secret_arn"))
    );
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
    assert!(!said.contains("database set-up"), "made once: {said}");
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
        &h.proxy.url,
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

    // The payment and user services say, before anything is built, which
    // values only operators have are missing, and how to set each.
    let payment = deploy(
        &h.proxy.url,
        &["payment", "user", "--registry", &registry.url],
    );
    assert_eq!(payment.status.code(), Some(1), "{}", text(&payment));
    let said = text(&payment);
    assert!(said.contains("nothing was built"), "{said}");
    assert!(!said.contains("Building"), "{said}");
    for command in [
        "techctl secrets set payment mercadopago_access_token",
        "techctl secrets set payment mercadopago_pos_id",
        "techctl secrets set user admin_password",
    ] {
        assert!(said.contains(command), "{said}");
    }
}

/// `techctl secrets set` with the value on standard input.
fn set_secret(endpoint: &str, service: &str, name: &str, value: &str) -> Output {
    set_secret_with(endpoint, &["secrets", "set", service, name], value)
}

/// `techctl ARGS` with `value` on its standard input.
fn set_secret_with(endpoint: &str, args: &[&str], value: &str) -> Output {
    let mut command = techctl_at(endpoint);
    command.args(args).arg("--blueprint").arg(blueprint_path());
    crate::common::output_with_input(command, &format!("{value}\n"))
}

/// The secret `name` as JSON, read as the console would.
async fn read_secret(direct: &aws::Aws, name: &str) -> Value {
    crate::common::named_secret_json(direct, name)
        .await
        .unwrap_or_else(|| panic!("no secret {name}"))
}

/// Operators set the Mercado Pago credentials with `techctl secrets set`:
/// they land in the payment service's own secret, `list` names them without
/// their values, deploy hands them to the task by reference, `up` leaves
/// them, and no command ever prints them (nor any other secret value).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_operators_set_reach_their_service_alone_and_are_never_printed() {
    // And the database set-up task fails to start the first time, as on AWS
    // when its execution role was made a moment before.
    let h = Harness::start_with(testkit::Strictness {
        one_off_init_failures: 1,
        ..testkit::Strictness::new()
    })
    .await;
    let bp = blueprint::load(&blueprint_path()).unwrap();
    assert!(h.up(&bp).await.0.succeeded());
    let direct = h.direct().await;
    let operator: Vec<(&str, String)> = [
        "mercadopago_access_token",
        "mercadopago_webhook_secret",
        "mercadopago_collector_id",
        "mercadopago_pos_id",
    ]
    .iter()
    .map(|k| (*k, format!("{k}-value-{}", fastrand::u64(..))))
    .collect();
    let mut printed = String::new();
    for (n, (name, value)) in operator.iter().enumerate() {
        // In text and in JSON.
        let mut args = vec!["secrets", "set", "payment", name];
        if n % 2 == 1 {
            args.extend(["--output", "json"]);
        }
        let out = set_secret_with(&h.proxy.url, &args, value);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        printed.push_str(&text(&out));
    }
    // A value is never taken from the command line, where shell history
    // keeps it.
    let argued = set_secret_with(
        &h.proxy.url,
        &["secrets", "set", "payment", "mercadopago_pos_id", "VALUE"],
        "",
    );
    assert_eq!(argued.status.code(), Some(2), "{}", text(&argued));
    assert!(
        text(&argued).contains("unexpected argument"),
        "{}",
        text(&argued)
    );
    // What cannot be set is refused, naming what can.
    let typo = set_secret(&h.proxy.url, "payment", "mercadopago_token", "x");
    assert_eq!(typo.status.code(), Some(1));
    assert!(
        text(&typo).contains("it reads: mercadopago_access_token"),
        "{}",
        text(&typo)
    );
    let managed = set_secret(&h.proxy.url, "order", "db_password", "x");
    assert!(
        text(&managed).contains("made by `techctl up`"),
        "{}",
        text(&managed)
    );
    let short = set_secret(&h.proxy.url, "user", "admin_password", "too-short");
    assert_eq!(short.status.code(), Some(1));
    assert!(
        text(&short).contains("12 characters at least"),
        "{}",
        text(&short)
    );
    let none = set_secret(&h.proxy.url, "payment", "mercadopago_pos_id", "");
    assert!(
        text(&none).contains("no value for mercadopago_pos_id"),
        "{}",
        text(&none)
    );

    let read = |name: &'static str| read_secret(&direct, name);
    let payment = read("techctl/techchallenge/service/payment").await;
    for (k, v) in &operator {
        assert_eq!(
            payment[*k].as_str(),
            Some(v.as_str()),
            "{k} in the payment secret"
        );
    }
    // Every value that must never be printed: the operators', the
    // passwords `up` made, a line of the signing key's PEM.
    let mut hidden: Vec<String> = operator.iter().map(|(_, v)| v.clone()).collect();
    for service in ["user", "product", "order", "payment", "production"] {
        let own = read_secret(&direct, &format!("techctl/techchallenge/service/{service}")).await;
        hidden.push(own["db_password"].as_str().unwrap().to_string());
    }
    let stack = read("techctl/techchallenge").await;
    hidden.push(stack["db_password"].as_str().unwrap().to_string());
    let ring = read("techctl/techchallenge/signing-keys").await;
    hidden.extend(
        ring["jwt_private_key"]
            .as_str()
            .unwrap()
            .lines()
            .skip(1)
            .take(3)
            .map(str::to_string),
    );

    let url = h.proxy.url.clone();
    let run = |printed: &mut String, args: &[&str], code: i32| {
        let out = techctl_at(&url)
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", text(&out));
        printed.push_str(&text(&out));
        text(&out)
    };
    let listed = run(&mut printed, &["secrets", "list", "payment"], 0);
    for (name, _) in &operator {
        assert!(listed.contains(name), "{listed}");
    }
    assert!(listed.contains("techctl secrets set"), "{listed}");
    let json = run(&mut printed, &["secrets", "list", "--output", "json"], 0);
    assert!(json.contains("\"set_at\""), "{json}");
    // The user service lacks its first admin's password, and says how to set it.
    assert!(
        json.contains("techctl secrets set user admin_password")
            || json.contains("\"missing\":true"),
        "{json}"
    );
    let plan = run(&mut printed, &["plan", "--detailed-exitcode"], 0);
    assert!(plan.contains("No changes"), "{plan}");
    run(
        &mut printed,
        &["plan", "--detailed-exitcode", "--output", "json"],
        0,
    );
    run(&mut printed, &["up", "--yes", "--no-deploy"], 0);
    run(
        &mut printed,
        &["up", "--yes", "--no-deploy", "--output", "json"],
        0,
    );
    run(&mut printed, &["status"], 0);
    run(&mut printed, &["status", "--output", "json"], 0);
    run(&mut printed, &["verify"], 0);
    run(&mut printed, &["verify", "--output", "json"], 0);

    let after = read("techctl/techchallenge/service/payment").await;
    for (k, v) in &operator {
        assert_eq!(after[*k].as_str(), Some(v.as_str()), "{k} kept by up");
    }
    assert_eq!(after["db_password"], payment["db_password"]);

    // With its credentials in place the payment service deploys, and its
    // task takes each by reference from the payment secret.
    let registry = tokio::task::spawn_blocking(LocalRegistry::start)
        .await
        .unwrap();
    let deployed = deploy(
        &h.proxy.url,
        &["payment", "--registry", &registry.url, "--no-wait"],
    );
    assert_eq!(deployed.status.code(), Some(0), "{}", text(&deployed));
    printed.push_str(&text(&deployed));
    assert_eq!(
        h.proxy.bodies("RunTask").len(),
        2,
        "a set-up task ECS could not start is run again"
    );
    let td = direct
        .ecs
        .describe_task_definition()
        .task_definition("techchallenge-payment")
        .send()
        .await
        .unwrap();
    let payment_arn = crate::common::secret_json(&direct, "techchallenge")
        .await
        .unwrap()["payment_secret_arn"]
        .as_str()
        .unwrap()
        .to_string();
    let refs: std::collections::BTreeMap<String, String> =
        td.task_definition().unwrap().container_definitions()[0]
            .secrets()
            .iter()
            .map(|s| (s.name().to_string(), s.value_from().to_string()))
            .collect();
    assert_eq!(
        refs["MERCADOPAGO_ACCESS_TOKEN"],
        format!("{payment_arn}:mercadopago_access_token::")
    );
    assert!(
        refs.values().all(|r| r.starts_with(&payment_arn)),
        "{refs:?}"
    );
    // A service added later gets its database role from a set-up of its
    // own; one whose database is ready gets none again.
    let order = deploy(
        &h.proxy.url,
        &["order", "--registry", &registry.url, "--no-wait"],
    );
    assert_eq!(order.status.code(), Some(0), "{}", text(&order));
    printed.push_str(&text(&order));
    assert!(
        text(&order).contains("database set-up: a role and a database for order"),
        "{}",
        text(&order)
    );
    let ran = h.proxy.bodies("RunTask");
    assert_eq!(ran.len(), 3, "{ran:?}");
    assert_eq!(
        ran[2]["overrides"]["containerOverrides"][0]["command"],
        serde_json::json!(["/usr/local/bin/order-service", "db-init"])
    );
    let again = deploy(
        &h.proxy.url,
        &[
            "payment",
            "--registry",
            &registry.url,
            "--no-wait",
            "--output",
            "json",
        ],
    );
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    printed.push_str(&text(&again));
    assert_eq!(h.proxy.bodies("RunTask").len(), 3, "no set-up again");
    // `up` after the deploys still leaves the operators' values.
    run(&mut printed, &["up", "--yes", "--no-deploy"], 0);
    let kept = read("techctl/techchallenge/service/payment").await;
    for (k, v) in &operator {
        assert_eq!(kept[*k].as_str(), Some(v.as_str()), "{k} kept by up");
    }

    // Unset takes a value out again.
    let unset = run(
        &mut printed,
        &["secrets", "unset", "payment", "mercadopago_pos_id"],
        0,
    );
    assert!(unset.contains("Removed mercadopago_pos_id"), "{unset}");
    run(
        &mut printed,
        &[
            "secrets",
            "unset",
            "payment",
            "mercadopago_collector_id",
            "--output",
            "json",
        ],
        0,
    );
    assert!(
        read("techctl/techchallenge/service/payment")
            .await
            .get("mercadopago_pos_id")
            .is_none()
    );

    for value in &hidden {
        assert!(
            !printed.contains(value.as_str()),
            "a secret value was printed: {value}"
        );
    }
}
