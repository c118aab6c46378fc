//! `up` and `down` on AWS's clock: the strict proxy plays back the times of
//! `cli/engine/aws-clock.toml` at 1/60 (a minute in a second), so every
//! slow resource passes through its real intermediate states and every
//! wait of techctl must really wait, and wait for the right thing.

use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use testkit::Strictness;

use crate::common::{Harness, said, techctl_at};

const SCALE: f64 = 1.0 / 60.0;

fn timed(endpoint: &str, args: &[&str]) -> Output {
    timed_at(SCALE, endpoint, args)
}

/// techctl on a clock `scale` times AWS's, as the proxy plays it.
fn timed_at(scale: f64, endpoint: &str, args: &[&str]) -> Output {
    techctl_at(endpoint)
        .env("TECHCTL_AWS_CLOCK_SCALE", scale.to_string())
        .args(["--output", "json", "--yes"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run techctl")
}

/// The closing summary line of a JSON run.
fn summary(out: &Output) -> Value {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|doc| doc.get("summary").is_some_and(|s| !s.is_null()))
        .unwrap_or_else(|| panic!("no summary in:\n{}", said(out)))
}

/// The wait of `id` whose description contains `what`: seconds and polls.
fn wait(summary: &Value, id: &str, what: &str) -> (f64, u64) {
    let waits = summary["summary"]["waits"].as_array().expect("waits");
    let found = waits
        .iter()
        .find(|w| w["id"] == id && w["what"].as_str().is_some_and(|w| w.contains(what)))
        .unwrap_or_else(|| panic!("no wait of {id} for {what:?} in {waits:#?}"));
    (
        found["seconds"].as_f64().unwrap(),
        found["polls"].as_u64().unwrap(),
    )
}

/// The shipped stack, made with `up` through the timed proxy.
async fn provisioned_on_the_clock() -> Harness {
    let h = Harness::start_with(Strictness::new().timed(SCALE)).await;
    let up = timed(&h.proxy.url, &["up", "--no-deploy"]);
    assert!(up.status.success(), "{}", said(&up));
    h
}

/// The shipped blueprint with `from` replaced by `to`, written into `dir`.
fn blueprint_file(dir: &std::path::Path, from: &str, to: &str) -> String {
    let path = dir.join("techchallenge.toml");
    std::fs::write(&path, crate::common::blueprint_source().replace(from, to)).unwrap();
    path.to_str().unwrap().to_string()
}

/// AWS's typical time for `state` of `resource`, on the test's clock.
fn scaled(resource: &str, state: &str) -> f64 {
    testkit::strict::typical(resource, state).as_secs_f64() * SCALE
}

/// Asserts that a wait of `seconds` lasted as long as a state that AWS
/// (the proxy) holds for `expected`. The proxy's clock starts when it sees
/// the create or delete request; the wait starts once techctl has the
/// answer and whatever came before the wait is done, which on a busy
/// machine is a few hundred milliseconds later. A wait that did not wait
/// lasts one poll: far below this bound.
fn lasted_as_long_as(seconds: f64, expected: f64, what: &str) {
    let slack = (expected * 0.05).max(0.4);
    assert!(
        seconds >= expected - slack,
        "the wait for {what} lasted {seconds:.2} s, AWS holds it {expected:.2} s"
    );
}

/// The seconds of every wait of `id`, added up.
fn waited_in_all(summary: &Value, id: &str) -> f64 {
    summary["summary"]["waits"]
        .as_array()
        .expect("waits")
        .iter()
        .filter(|w| w["id"] == id)
        .map(|w| w["seconds"].as_f64().unwrap())
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn up_and_down_wait_as_long_as_aws_takes_and_no_longer() {
    let h = Harness::start_with(Strictness::new().timed(SCALE)).await;

    let up = timed(&h.proxy.url, &["up", "--no-deploy"]);
    assert!(up.status.success(), "{}", said(&up));
    let up = summary(&up);
    // The database was `creating`, then `backing-up`: the wait lasted as
    // long and asked a handful of times, not every few seconds.
    let db_time = scaled("db-instance", "creating") + scaled("db-instance", "backing-up");
    let (seconds, polls) = wait(&up, "database/instance", "available");
    lasted_as_long_as(seconds, db_time, "the database");
    assert!(polls <= 5, "{polls} polls");
    let (seconds, _) = wait(&up, "network/nat-gateway/a", "available");
    lasted_as_long_as(seconds, scaled("nat-gateway", "pending"), "a NAT gateway");
    let (seconds, _) = wait(&up, "gateway/vpc-link", "available");
    lasted_as_long_as(seconds, scaled("vpc-link", "pending"), "the VPC link");
    let (seconds, _) = wait(&up, "load-balancing/load-balancer", "active");
    lasted_as_long_as(
        seconds,
        scaled("load-balancer", "provisioning"),
        "the load balancer",
    );
    // Its critical path is the database's, and the run is bound by it.
    let chain: Vec<&str> = up["critical_path"]["chain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap())
        .collect();
    assert_eq!(chain, ["database/instance"]);
    assert!(
        up["ratio_to_critical_path"].as_f64().unwrap() >= 1.0,
        "{up}"
    );

    let down = timed(&h.proxy.url, &["down", "--force-delete-secrets"]);
    assert!(down.status.success(), "{}", said(&down));
    let down = summary(&down);
    // The interfaces' time runs from DeleteLoadBalancer, through the wait
    // for the load balancer to go and then the wait for its interfaces.
    wait(
        &down,
        "load-balancing/load-balancer",
        "network interfaces to be released",
    );
    lasted_as_long_as(
        waited_in_all(&down, "load-balancing/load-balancer"),
        scaled("load-balancer", "interfaces-in-use"),
        "the load balancer's interfaces",
    );
    let (seconds, _) = wait(&down, "database/instance", "deleted");
    lasted_as_long_as(seconds, scaled("db-instance", "deleting"), "the database");
    let (seconds, _) = wait(&down, "network/nat-gateway/a", "deleted");
    lasted_as_long_as(seconds, scaled("nat-gateway", "deleting"), "a NAT gateway");
    // Nothing was deleted while something still held it: the proxy, which
    // refuses such deletes as AWS does, never had to.
    let refused = h.refused();
    assert!(
        !refused.iter().any(|r| r.contains("DependencyViolation")
            || r.contains("InvalidDBSubnetGroupStateFault")
            || r.contains("InUse")),
        "{refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_proxy_refuses_what_a_deleting_resource_still_holds() {
    let h = provisioned_on_the_clock().await;
    let aws = h.aws().await;
    let balancers = aws.elb.describe_load_balancers().send().await.unwrap();
    let balancer = &balancers.load_balancers()[0];
    let group = balancer.security_groups()[0].to_string();
    aws.elb
        .delete_load_balancer()
        .load_balancer_arn(balancer.load_balancer_arn().unwrap())
        .send()
        .await
        .unwrap();
    let refused = aws
        .ec2
        .delete_security_group()
        .group_id(&group)
        .send()
        .await
        .expect_err("its interfaces are still in the group");
    let refused = aws_sdk_ec2::error::ProvideErrorMetadata::code(&refused).map(str::to_string);
    assert_eq!(refused.as_deref(), Some("DependencyViolation"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_up_killed_during_the_database_wait_resumes_it_when_run_again() {
    let h = Harness::start_with(Strictness::new().timed(SCALE)).await;
    let mut first = techctl_at(&h.proxy.url)
        .env("TECHCTL_AWS_CLOCK_SCALE", SCALE.to_string())
        .args(["--output", "json", "--yes", "up", "--no-deploy"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start techctl");
    // Killed once the database is being waited for: described after it
    // was made.
    let started = Instant::now();
    let waiting = |ops: Vec<String>| {
        ops.iter()
            .position(|op| op == "CreateDBInstance")
            .is_some_and(|made| ops[made..].iter().any(|op| op == "DescribeDBInstances"))
    };
    while !waiting(h.proxy.operations()) {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no database wait"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    first.kill().expect("kill techctl");
    let _ = first.wait();
    let killed_at = Instant::now();

    let again = timed(&h.proxy.url, &["up", "--no-deploy"]);
    assert!(again.status.success(), "{}", said(&again));
    let again = summary(&again);
    // The second run found the instance still `creating` and waited for it.
    let (seconds, _) = wait(&again, "database/instance", "available");
    assert!(seconds > 0.5, "{seconds}");
    let db_time = scaled("db-instance", "creating") + scaled("db-instance", "backing-up");
    assert!(
        killed_at.elapsed().as_secs_f64() + 1.0 >= db_time - started.elapsed().as_secs_f64(),
        "finished before the database could be available"
    );
    let plan = timed(&h.proxy.url, &["plan", "--detailed-exitcode"]);
    assert!(plan.status.success(), "converged: {}", said(&plan));
}

#[tokio::test(flavor = "multi_thread")]
async fn nat_gateways_of_every_zone_are_polled_with_one_call_each_time() {
    // The second gateway's wait keeps the first's schedule when it begins
    // within a quarter of AWS's typical time of it: 30 s on AWS's clock,
    // 1.5 s at 1/20, more than a busy machine puts between the two
    // `CreateNatGateway` answers (at 1/60 it would be 0.5 s).
    const SCALE: f64 = 1.0 / 20.0;
    let h = Harness::start_with(Strictness::new().timed(SCALE)).await;
    let dir = tempfile::tempdir().unwrap();
    let blueprint = blueprint_file(dir.path(), "nat = \"single\"", "nat = \"per-az\"");
    let blueprint = blueprint.as_str();

    let up = timed_at(
        SCALE,
        &h.proxy.url,
        &["--blueprint", blueprint, "up", "--no-deploy"],
    );
    assert!(up.status.success(), "{}", said(&up));
    let up = summary(&up);
    let (_, polls_a) = wait(&up, "network/nat-gateway/a", "available");
    let (_, polls_b) = wait(&up, "network/nat-gateway/b", "available");
    // Both gateways waited through `pending`, and each poll of one was the
    // other's too: as many calls as one gateway's polls, not both's.
    let calls = h
        .proxy
        .requests()
        .iter()
        .filter(|(op, body)| op == "DescribeNatGateways" && body.contains("nat-gateway-id"))
        .count() as u64;
    assert!(
        calls < polls_a + polls_b,
        "{calls} calls for {polls_a} + {polls_b} polls"
    );
    assert!(
        calls <= polls_a.max(polls_b) + 1,
        "{calls} calls for {polls_a} + {polls_b} polls"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn deploy_watches_a_rollout_in_progress_to_its_end() {
    let h = provisioned_on_the_clock().await;
    let registry = tokio::task::spawn_blocking(testkit::registry::LocalRegistry::start)
        .await
        .unwrap();
    let started = Instant::now();
    let out = techctl_at(&h.proxy.url)
        .env("TECHCTL_AWS_CLOCK_SCALE", SCALE.to_string())
        .args(["deploy", "order", "--registry", &registry.url])
        .stdin(Stdio::null())
        .output()
        .expect("run techctl deploy");
    let text = said(&out);
    assert!(out.status.success(), "{text}");
    // ECS said the deployment was in progress with its tasks pending, and
    // the watch went on until it completed.
    assert!(text.contains("running 0, pending 2"), "{text}");
    assert!(text.contains("order runs arn:aws:ecs:"), "{text}");
    assert!(
        started.elapsed().as_secs_f64() >= scaled("ecs-service", "deployment"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_change_waits_while_the_instance_is_modifying() {
    let h = provisioned_on_the_clock().await;
    let dir = tempfile::tempdir().unwrap();
    let blueprint = blueprint_file(dir.path(), "db.t4g.micro", "db.t4g.small");

    let bigger = timed(
        &h.proxy.url,
        &["--blueprint", &blueprint, "up", "--no-deploy"],
    );
    assert!(bigger.status.success(), "{}", said(&bigger));
    let bigger = summary(&bigger);
    // Waited for the first look (available), then through `modifying`.
    let waits = bigger["summary"]["waits"].as_array().unwrap();
    let modifying: f64 = waits
        .iter()
        .filter(|w| w["id"] == "database/instance")
        .map(|w| w["seconds"].as_f64().unwrap())
        .fold(0.0, f64::max);
    lasted_as_long_as(
        modifying,
        scaled("db-instance", "modifying"),
        "the database's change",
    );
    let chain = &bigger["critical_path"]["chain"];
    assert_eq!(chain[0]["id"], "database/instance", "{chain}");
    assert_eq!(chain[0]["seconds"], 90, "{chain}");
}
