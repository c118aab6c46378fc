//! Shared set-up of the engine tests: a moto server per test, a recording
//! fault proxy in front of it, and helpers that run the engine in process
//! and read AWS state back through the SDK.
#![allow(dead_code)] // each test file uses its own share of these helpers

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aws_sdk_ec2::types::Filter;
use techctl::apply::{self, Ctx, Event, Options, Report, Reporter};
use techctl::aws::{self, Aws, AwsSettings};
use techctl::blueprint::{self, Blueprint};
use techctl::plan::Plan;
use techctl::stack;
use testkit::{FaultProxy, Moto};

pub const REGION: &str = "us-east-1";

pub fn blueprint_path() -> PathBuf {
    testkit::workspace_root().join("blueprints/techchallenge.toml")
}

pub fn blueprint_source() -> String {
    std::fs::read_to_string(blueprint_path()).expect("read the techchallenge blueprint")
}

/// The shipped blueprint with text replaced, parsed.
pub fn blueprint_with(replacements: &[(&str, &str)]) -> Blueprint {
    let mut text = blueprint_source();
    for (from, to) in replacements {
        assert!(
            text.contains(from),
            "the blueprint no longer contains {from:?}"
        );
        text = text.replacen(from, to, 1);
    }
    blueprint::parse(Path::new("test.toml"), &text).expect("test blueprint is valid")
}

/// Discards engine events; tests read AWS, not the printer.
pub struct Quiet;
impl Reporter for Quiet {
    fn report(&self, _event: Event) {}
}

pub struct Harness {
    pub moto: Moto,
    pub proxy: FaultProxy,
}

impl Harness {
    pub async fn start() -> Harness {
        let moto = tokio::task::spawn_blocking(Moto::start)
            .await
            .expect("start moto");
        let proxy = FaultProxy::start(&moto.url).await;
        Harness { moto, proxy }
    }

    /// Clients that go through the proxy, with a call log of their own.
    pub async fn aws(&self) -> Aws {
        connect(&self.proxy.url).await
    }

    /// Clients that talk to moto directly: for checks and for "by hand" edits.
    pub async fn direct(&self) -> Aws {
        connect(&self.moto.url).await
    }

    pub async fn plan(&self, bp: &Blueprint) -> Plan {
        stack::plan(&self.aws().await, bp).await.expect("plan")
    }

    /// Plans and applies with fresh clients; returns the report and the clients.
    pub async fn up(&self, bp: &Blueprint) -> (Report, Aws) {
        self.up_with(self.aws().await, bp).await
    }

    /// Clients through the proxy that give up after two attempts: for runs
    /// that are meant to fail, so they fail fast.
    pub async fn impatient(&self) -> Aws {
        connect_with(&self.proxy.url, Some(2)).await
    }

    pub async fn up_with(&self, aws: Aws, bp: &Blueprint) -> (Report, Aws) {
        let plan = stack::plan(&aws, bp).await.expect("plan before up");
        let ctx = Arc::new(Ctx::new(aws.clone(), bp.stack_name(), Options::default()));
        let report = apply::apply(ctx, &plan, Arc::new(Quiet)).await;
        (report, aws)
    }

    pub async fn down(&self, bp: &Blueprint, force_delete_secrets: bool) -> (Report, Aws) {
        self.down_with(self.aws().await, bp, force_delete_secrets)
            .await
    }

    pub async fn down_with(
        &self,
        aws: Aws,
        bp: &Blueprint,
        force_delete_secrets: bool,
    ) -> (Report, Aws) {
        let observed = stack::doomed(
            stack::observe(&aws, bp.stack_name())
                .await
                .expect("observe before down"),
            force_delete_secrets,
        );
        let options = Options {
            force_delete_secrets,
            ..Options::default()
        };
        let ctx = Arc::new(Ctx::new(aws.clone(), bp.stack_name(), options));
        let report = apply::destroy_all(ctx, &observed, Arc::new(Quiet)).await;
        (report, aws)
    }
}

pub async fn connect(url: &str) -> Aws {
    connect_with(url, None).await
}

pub async fn connect_with(url: &str, max_attempts: Option<u32>) -> Aws {
    let settings = AwsSettings {
        region: Some(REGION.into()),
        profile: None,
        endpoint_url: Some(url.to_string()),
        emulator_credentials: true,
        max_attempts,
    };
    aws::connect(&settings, REGION)
        .await
        .expect("connect to moto")
}

/// The techctl binary, pointed at `endpoint` through the standard AWS
/// configuration chain, run from the workspace root.
pub fn techctl_at(endpoint: &str) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_techctl"));
    command
        .current_dir(testkit::workspace_root())
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", REGION)
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_MAX_ATTEMPTS");
    command
}

pub fn stack_filter(stack: &str) -> Filter {
    Filter::builder()
        .name("tag:techctl:stack")
        .values(stack)
        .build()
}

/// How many resources of each EC2 type carry the stack tag, read straight
/// from AWS (NAT gateways that are deleted do not count).
pub async fn count_tagged(aws: &Aws, stack: &str) -> BTreeMap<&'static str, usize> {
    let ec2 = &aws.ec2;
    let f = || stack_filter(stack);
    let nats = ec2
        .describe_nat_gateways()
        .filter(f())
        .send()
        .await
        .unwrap();
    BTreeMap::from([
        (
            "vpc",
            ec2.describe_vpcs()
                .filters(f())
                .send()
                .await
                .unwrap()
                .vpcs()
                .len(),
        ),
        (
            "subnet",
            ec2.describe_subnets()
                .filters(f())
                .send()
                .await
                .unwrap()
                .subnets()
                .len(),
        ),
        (
            "internet-gateway",
            ec2.describe_internet_gateways()
                .filters(f())
                .send()
                .await
                .unwrap()
                .internet_gateways()
                .len(),
        ),
        (
            "elastic-ip",
            ec2.describe_addresses()
                .filters(f())
                .send()
                .await
                .unwrap()
                .addresses()
                .len(),
        ),
        (
            "nat-gateway",
            nats.nat_gateways()
                .iter()
                .filter(|n| n.state().map(|s| s.as_str()) != Some("deleted"))
                .count(),
        ),
        (
            "route-table",
            ec2.describe_route_tables()
                .filters(f())
                .send()
                .await
                .unwrap()
                .route_tables()
                .len(),
        ),
        (
            "security-group",
            ec2.describe_security_groups()
                .filters(f())
                .send()
                .await
                .unwrap()
                .security_groups()
                .len(),
        ),
    ])
}

/// Asserts that no resource of any EC2 type carries the stack tag.
pub async fn assert_nothing_left(aws: &Aws, stack: &str) {
    for (kind, count) in count_tagged(aws, stack).await {
        assert_eq!(count, 0, "{count} {kind} left tagged with the stack");
    }
}

/// The stack secret's JSON, or None when it is missing or scheduled for deletion.
pub async fn secret_json(aws: &Aws, stack: &str) -> Option<serde_json::Value> {
    let out = aws
        .secrets
        .get_secret_value()
        .secret_id(format!("techctl/{stack}"))
        .send()
        .await
        .ok()?;
    serde_json::from_str(out.secret_string()?).ok()
}

pub fn assert_done(report: &Report) {
    let problems: Vec<String> = report
        .results
        .iter()
        .filter(|r| r.outcome != apply::Outcome::Done)
        .map(|r| format!("{} {:?}", r.id, r.outcome))
        .collect();
    assert!(problems.is_empty(), "apply did not finish: {problems:#?}");
}
