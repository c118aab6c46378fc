//! `up` and `down` under faults injected between techctl and moto:
//! throttling, lost answers, dropped connections and a killed process.
//! Each run must converge on a re-run without duplicates.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::common::*;
use testkit::proxy::{Fault, Seen};

fn full_stack() -> BTreeMap<&'static str, usize> {
    BTreeMap::from([
        ("vpc", 1),
        ("subnet", 4),
        ("internet-gateway", 1),
        ("elastic-ip", 1),
        ("nat-gateway", 1),
        ("route-table", 3),
        ("security-group", 4),
    ])
}

fn is_mutating(op: &str) -> bool {
    !(op.starts_with("Describe") || op.starts_with("Get") || op.starts_with("List"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_and_server_errors_do_not_fail_up() {
    let h = Harness::start().await;
    // Every operation's first request, and every third after, is
    // throttled; every seventh answers 500. Counted per operation: counted
    // over all requests, a create retried in lock-step with its lookup
    // could land on a fault every time. Even per operation, callers racing
    // for the same operation can keep one of them on the faults, so a
    // call's fifth attempt always passes: a real throttle lets a patient
    // caller through, and the SDK makes eight.
    let sent = std::sync::Mutex::new(std::collections::HashMap::<String, usize>::new());
    let retried = Arc::new(AtomicUsize::new(0));
    let retries = retried.clone();
    h.proxy.set_policy(move |seen: &Seen| {
        if seen.attempt > 1 {
            retries.fetch_add(1, Ordering::Relaxed);
        }
        let mut sent = sent.lock().unwrap();
        let k = sent.entry(seen.operation.clone()).or_default();
        let fault = match *k {
            _ if seen.attempt > 4 => Fault::Pass,
            k if k % 3 == 0 => Fault::Throttle,
            k if k % 7 == 1 => Fault::ServerError,
            _ => Fault::Pass,
        };
        *k += 1;
        fault
    });
    let bp = blueprint_with(&[]);
    let (report, _) = h.up(&bp).await;
    assert_done(&report);
    assert!(
        h.proxy.faults() > 10,
        "only {} faults were injected",
        h.proxy.faults()
    );
    assert!(
        retried.load(Ordering::Relaxed) > 10,
        "the SDK's retries were not seen as such"
    );
    let aws = h.direct().await;
    assert_eq!(count_tagged(&aws, "techchallenge").await, full_stack());
    h.proxy.set_policy(|_: &Seen| Fault::Pass);
    assert!(!h.plan(&bp).await.has_changes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_whose_answer_is_lost_is_not_made_twice() {
    let h = Harness::start().await;
    // Every create reaches moto, but the first answer of each kind is lost.
    let seen_once = Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
    let first = seen_once.clone();
    h.proxy.set_policy(move |seen: &Seen| {
        let creates = [
            "CreateVpc",
            "CreateSubnet",
            "CreateInternetGateway",
            "AllocateAddress",
            "CreateRouteTable",
            "CreateSecurityGroup",
            "CreateNatGateway",
        ];
        if creates.contains(&seen.operation.as_str())
            && first.lock().unwrap().insert(seen.operation.clone())
        {
            Fault::ForwardThenFail
        } else {
            Fault::Pass
        }
    });
    let bp = blueprint_with(&[]);
    let (report, _) = h.up(&bp).await;
    assert_done(&report);
    assert_eq!(
        seen_once.lock().unwrap().len(),
        7,
        "every create kind met a lost answer"
    );
    let aws = h.direct().await;
    assert_eq!(count_tagged(&aws, "techchallenge").await, full_stack());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_up_cut_off_midway_converges_on_rerun() {
    let h = Harness::start().await;
    // After 12 changing calls the network "goes away": every request fails.
    let mutating = Arc::new(AtomicUsize::new(0));
    let counter = mutating.clone();
    h.proxy.set_policy(move |seen: &Seen| {
        let cut = if is_mutating(&seen.operation) {
            counter.fetch_add(1, Ordering::SeqCst) >= 12
        } else {
            counter.load(Ordering::SeqCst) > 12
        };
        if cut { Fault::Drop } else { Fault::Pass }
    });
    let bp = blueprint_with(&[]);
    let (report, _) = h.up_with(h.impatient().await, &bp).await;
    assert!(
        !report.succeeded(),
        "the cut should have failed the first up"
    );
    assert!(
        report
            .results
            .iter()
            .any(|r| r.outcome == engine::apply::Outcome::Done)
    );

    h.proxy.set_policy(|_: &Seen| Fault::Pass);
    let (report, _) = h.up(&bp).await;
    assert_done(&report);
    let aws = h.direct().await;
    assert_eq!(count_tagged(&aws, "techchallenge").await, full_stack());
    assert!(!h.plan(&bp).await.has_changes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_up_converges_on_rerun_without_duplicates() {
    let h = Harness::start().await;
    let mut child = techctl_at(&h.proxy.url)
        .args(["up", "--yes", "--no-deploy"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start techctl up");
    // Kill it as soon as it has made a handful of changes.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let changes = h
            .proxy
            .operations()
            .iter()
            .filter(|o| is_mutating(o))
            .count();
        if changes >= 8 {
            child.kill().expect("kill techctl");
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "up finished before it could be killed"
        );
        assert!(Instant::now() < deadline, "up made no progress");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    child.wait().unwrap();
    let aws = h.direct().await;
    let partial = count_tagged(&aws, "techchallenge").await;
    assert!(
        partial.values().sum::<usize>() > 0,
        "nothing was created before the kill"
    );
    assert_ne!(
        partial,
        full_stack(),
        "the kill came too late to interrupt anything"
    );

    let bp = blueprint_with(&[]);
    assert_done(&h.up(&bp).await.0);
    assert_eq!(count_tagged(&aws, "techchallenge").await, full_stack());
    assert!(!h.plan(&bp).await.has_changes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_down_converges_on_rerun() {
    let h = Harness::start().await;
    let bp = blueprint_with(&[]);
    assert_done(&h.up(&bp).await.0);
    let deletes = Arc::new(AtomicUsize::new(0));
    let counter = deletes.clone();
    h.proxy.set_policy(move |seen: &Seen| {
        if is_mutating(&seen.operation) && counter.fetch_add(1, Ordering::SeqCst) >= 10 {
            Fault::Drop
        } else {
            Fault::Pass
        }
    });
    let (report, _) = h.down_with(h.impatient().await, &bp, true).await;
    assert!(!report.succeeded());
    h.proxy.set_policy(|_: &Seen| Fault::Pass);
    assert_done(&h.down(&bp, true).await.0);
    let aws = h.direct().await;
    assert_nothing_left(&aws, "techchallenge").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_waits_out_dependency_violations() {
    let h = Harness::start().await;
    let bp = blueprint_with(&[]);
    assert_done(&h.up(&bp).await.0);
    // AWS answers DependencyViolation while something it has not finished
    // deleting still holds on: the first two tries of each delete get it.
    let tries = Arc::new(std::sync::Mutex::new(BTreeMap::<String, usize>::new()));
    let seen_tries = tries.clone();
    h.proxy.set_policy(move |seen: &Seen| {
        if ["DeleteVpc", "DeleteSecurityGroup", "DeleteSubnet"].contains(&seen.operation.as_str()) {
            let mut tries = seen_tries.lock().unwrap();
            let n = tries.entry(seen.operation.clone()).or_default();
            *n += 1;
            if *n <= 2 {
                return Fault::Ec2Error("DependencyViolation");
            }
        }
        Fault::Pass
    });
    let (report, aws) = h.down(&bp, true).await;
    assert_done(&report);
    let ops: Vec<String> = aws.calls.operations();
    assert_eq!(
        ops.iter().filter(|o| *o == "DeleteVpc").count(),
        3,
        "{ops:?}"
    );
    assert_nothing_left(&h.direct().await, "techchallenge").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_resource_skips_its_dependants_and_the_rest_finishes() {
    let h = Harness::start().await;
    // The NAT gateway can never be created.
    h.proxy.set_policy(|seen: &Seen| {
        if seen.operation == "CreateNatGateway" {
            Fault::Ec2Error("NatGatewayLimitExceeded")
        } else {
            Fault::Pass
        }
    });
    let out = techctl_at(&h.proxy.url)
        .args(["up", "--yes", "--no-deploy"])
        .output()
        .expect("run techctl up");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        out.status.code(),
        Some(4),
        "a partial apply exits 4: {said}"
    );
    assert!(said.contains("Apply incomplete"), "{said}");
    assert!(
        said.contains(
            "network/nat-gateway/a (NAT gateway): CreateNatGateway failed: NatGatewayLimitExceeded"
        ),
        "{said}"
    );
    for skipped in [
        "network/route-table/private-a (after network/nat-gateway/a)",
        "secret/outputs (after network/nat-gateway/a)",
    ] {
        assert!(
            said.contains(skipped),
            "{skipped} not listed as skipped: {said}"
        );
    }
    // Independent branches finished: every security group and subnet exists.
    let aws = h.direct().await;
    let counts = count_tagged(&aws, "techchallenge").await;
    assert_eq!(counts["security-group"], 4);
    assert_eq!(counts["subnet"], 4);
    assert_eq!(counts["nat-gateway"], 0);
    assert_eq!(
        counts["route-table"], 1,
        "only the public table, which needs no NAT gateway"
    );
    // So did everything beyond the network that needs no NAT gateway.
    let platform = count_platform(&aws, "techchallenge").await;
    assert_eq!(platform["db-instance"], 1);
    assert_eq!(platform["load-balancer"], 1);
    assert_eq!(platform["sqs-queue"], 6);
}
