//! The apply walk's rules, each asserted on the sequence of provider calls.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use engine::apply::{self, Ctx, Options, Outcome, Report, Status};
use engine::plan::{self, Action, LogicalId, Plan, Resource, Spec};

use crate::fake::{Call, Events, Fake, Mark};

const STACK: &str = "shop";

fn id(path: &str) -> LogicalId {
    LogicalId::new(&path.split('/').collect::<Vec<_>>())
}

fn subnet(name: &str, cidr: &str) -> Resource {
    Resource::new(
        id(&format!("network/subnet/{name}")),
        Spec::Subnet {
            vpc: id("network/vpc"),
            cidr: cidr.into(),
            availability_zone: format!("us-east-1{name}"),
        },
    )
}

/// A small network: a VPC, two subnets, an internet gateway, a NAT gateway
/// behind an Elastic IP, a route table through it and its association, a
/// security group, and a topic that needs nothing.
fn network() -> Vec<Resource> {
    let mut nat = Resource::new(
        id("network/nat-gateway/a"),
        Spec::NatGateway {
            subnet: id("network/subnet/a"),
            elastic_ip: id("network/eip/a"),
        },
    );
    nat.after.push(id("network/internet-gateway"));
    vec![
        Resource::new(
            id("network/vpc"),
            Spec::Vpc {
                cidr: "10.0.0.0/16".into(),
                dns_support: true,
                dns_hostnames: true,
            },
        ),
        subnet("a", "10.0.0.0/24"),
        subnet("b", "10.0.1.0/24"),
        Resource::new(
            id("network/internet-gateway"),
            Spec::InternetGateway {
                vpc: id("network/vpc"),
            },
        ),
        Resource::new(id("network/eip/a"), Spec::ElasticIp {}),
        nat,
        Resource::new(
            id("network/route-table/private"),
            Spec::RouteTable {
                vpc: id("network/vpc"),
                routes: BTreeMap::from([("0.0.0.0/0".into(), id("network/nat-gateway/a"))]),
            },
        ),
        Resource::new(
            id("network/route-table/private/b"),
            Spec::RouteTableAssociation {
                route_table: id("network/route-table/private"),
                subnet: id("network/subnet/b"),
            },
        ),
        Resource::new(
            id("network/sg/services"),
            Spec::SecurityGroup {
                vpc: id("network/vpc"),
                group_name: "shop-services".into(),
                description: "the services".into(),
            },
        ),
        Resource::new(
            id("messaging/topic/events"),
            Spec::Topic {
                name: "shop-events".into(),
            },
        ),
    ]
}

async fn plan_for(fake: &Fake, desired: Vec<Resource>) -> Plan {
    plan::observe_and_compute(fake, STACK, "us-east-1", desired)
        .await
        .expect("the fake observes")
}

async fn apply_with(fake: &Arc<Fake>, plan: &Plan, parallelism: usize) -> (Report, Arc<Events>) {
    let events = Arc::new(Events::default());
    let options = Options {
        parallelism,
        ..Options::default()
    };
    let ctx = Arc::new(Ctx::new(STACK, options));
    let report = apply::apply(fake.clone(), ctx, plan, events.clone()).await;
    (report, events)
}

async fn up(fake: &Arc<Fake>, desired: Vec<Resource>) -> Report {
    let plan = plan_for(fake, desired).await;
    apply_with(fake, &plan, 10).await.0
}

fn outcome(report: &Report, path: &str) -> Outcome {
    report
        .results
        .iter()
        .find(|r| r.id == id(path))
        .unwrap_or_else(|| panic!("{path} is not in the report"))
        .outcome
        .clone()
}

fn create(path: &str) -> Call {
    Call::Create(id(path).to_string())
}

fn delete(path: &str) -> Call {
    Call::Delete(id(path).to_string())
}

async fn in_sync(fake: &Fake, desired: Vec<Resource>) -> bool {
    plan_for(fake, desired)
        .await
        .changes
        .iter()
        .all(|c| c.action == Action::NoOp)
}

#[tokio::test]
async fn each_resource_is_created_only_after_everything_it_needs() {
    let fake = Fake::new(STACK);
    let report = up(&fake, network()).await;
    assert!(report.succeeded(), "{report:#?}");
    assert_eq!(report.aws_calls, network().len());
    for resource in network() {
        let started = fake.position(&Mark::Start(Call::Create(resource.id.to_string())));
        for dep in resource.deps() {
            let ready = fake.position(&Mark::End(Call::Create(dep.to_string())));
            assert!(
                ready < started,
                "{} started before {dep} was ready: {:#?}",
                resource.id,
                fake.log()
            );
        }
    }
    assert!(
        in_sync(&fake, network()).await,
        "a second plan changes nothing"
    );
    assert_eq!(
        up(&fake, network()).await.aws_calls,
        0,
        "nor does a second up"
    );
}

#[tokio::test]
async fn no_more_resources_are_worked_on_at_once_than_allowed() {
    let fake = Fake::new(STACK);
    let topics: Vec<Resource> = (0..9)
        .map(|n| {
            let path = format!("messaging/topic/t{n}");
            fake.slow(id(&path).as_str(), Duration::from_millis(30));
            Resource::new(
                id(&path),
                Spec::Topic {
                    name: format!("t{n}"),
                },
            )
        })
        .collect();
    let plan = plan_for(&fake, topics).await;
    let (report, _) = apply_with(&fake, &plan, 3).await;
    assert!(report.succeeded());
    assert_eq!(
        fake.most_at_once(),
        3,
        "nine independent topics, three at a time"
    );
}

#[tokio::test]
async fn a_failure_skips_what_depends_on_it_while_independent_branches_go_on() {
    let fake = Fake::new(STACK);
    fake.fail(id("network/eip/a").as_str());
    let plan = plan_for(&fake, network()).await;
    let (report, events) = apply_with(&fake, &plan, 10).await;

    assert!(matches!(
        outcome(&report, "network/eip/a"),
        Outcome::Failed(_)
    ));
    for skipped in [
        "network/nat-gateway/a",
        "network/route-table/private",
        "network/route-table/private/b",
    ] {
        assert!(
            matches!(outcome(&report, skipped), Outcome::Skipped(_)),
            "{skipped}: {:?}",
            outcome(&report, skipped)
        );
        assert!(
            !fake.calls().contains(&create(skipped)),
            "{skipped} was never tried"
        );
        assert!(
            events
                .0
                .lock()
                .unwrap()
                .iter()
                .any(|e| e.id == id(skipped) && matches!(e.status, Status::Skipped { .. })),
            "the printer hears that {skipped} was skipped"
        );
    }
    for done in [
        "network/vpc",
        "network/subnet/a",
        "network/subnet/b",
        "network/internet-gateway",
        "network/sg/services",
        "messaging/topic/events",
    ] {
        assert_eq!(outcome(&report, done), Outcome::Done, "{done}");
    }

    // Once the cause is gone, the next run makes only what is missing.
    fake.heal(id("network/eip/a").as_str());
    let before = fake.calls().len();
    let report = up(&fake, network()).await;
    assert!(report.succeeded(), "{report:#?}");
    assert_eq!(
        fake.calls()[before..].to_vec(),
        vec![
            create("network/eip/a"),
            create("network/nat-gateway/a"),
            create("network/route-table/private"),
            create("network/route-table/private/b"),
        ]
    );
}

#[tokio::test]
async fn a_replacement_deletes_the_old_resource_and_what_lives_in_it_before_creating_anew() {
    let fake = Fake::new(STACK);
    assert!(up(&fake, network()).await.succeeded());
    let mut changed = network();
    changed[2] = subnet("b", "10.0.2.0/24");
    let plan = plan_for(&fake, changed.clone()).await;
    let actions: HashMap<String, Action> = plan
        .changes
        .iter()
        .map(|c| (c.id.to_string(), c.action))
        .collect();
    assert_eq!(actions[id("network/subnet/b").as_str()], Action::Replace);
    assert_eq!(
        actions[id("network/route-table/private/b").as_str()],
        Action::Replace,
        "the association lives in the subnet, so it goes with it"
    );

    let before = fake.calls().len();
    let from = fake.log().len();
    let (report, _) = apply_with(&fake, &plan, 10).await;
    assert!(report.succeeded(), "{report:#?}");
    let calls = fake.calls()[before..].to_vec();
    assert_eq!(calls.len(), 4, "nothing else is touched: {calls:?}");
    let position = |mark: Mark| fake.position_from(from, &mark);
    let association = "network/route-table/private/b";
    assert!(
        position(Mark::End(delete(association)))
            < position(Mark::Start(delete("network/subnet/b")))
    );
    assert!(
        position(Mark::End(delete("network/subnet/b")))
            < position(Mark::Start(create("network/subnet/b")))
    );
    assert!(
        position(Mark::End(create("network/subnet/b")))
            < position(Mark::Start(create(association)))
    );
    assert!(in_sync(&fake, changed).await);
}

#[tokio::test]
async fn a_resource_whose_old_self_cannot_be_deleted_is_not_created_twice() {
    let fake = Fake::new(STACK);
    assert!(up(&fake, network()).await.succeeded());
    let mut changed = network();
    changed[2] = subnet("b", "10.0.2.0/24");
    fake.fail(id("network/subnet/b").as_str());
    let plan = plan_for(&fake, changed).await;
    let (report, _) = apply_with(&fake, &plan, 10).await;

    let failures: Vec<String> = report
        .results
        .iter()
        .filter(|r| r.id == id("network/subnet/b"))
        .filter_map(|r| match &r.outcome {
            Outcome::Failed(why) => Some(why.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(failures.len(), 2, "the delete and the create: {report:#?}");
    assert!(failures[0].contains("refused by the fake"), "{failures:?}");
    assert!(failures[1].contains("could not be deleted"), "{failures:?}");
    let creates = fake
        .calls()
        .into_iter()
        .filter(|c| *c == create("network/subnet/b"))
        .count();
    assert_eq!(creates, 1, "made by the first up, never again");
    let subnets = fake
        .held()
        .into_iter()
        .filter(|o| o.id == id("network/subnet/b"))
        .count();
    assert_eq!(subnets, 1, "the old subnet is still the only one");
}

#[tokio::test]
async fn an_interrupted_apply_is_resumed_by_the_next_one() {
    let fake = Fake::new(STACK);
    fake.slow(
        id("network/nat-gateway/a").as_str(),
        Duration::from_millis(400),
    );
    let plan = plan_for(&fake, network()).await;
    let interrupted =
        tokio::time::timeout(Duration::from_millis(150), apply_with(&fake, &plan, 10)).await;
    assert!(
        interrupted.is_err(),
        "the apply was cut off while the NAT gateway was pending"
    );
    assert!(fake.calls().contains(&create("network/nat-gateway/a")));
    let made_first = fake.held().len();
    assert!(
        made_first > 0 && made_first < network().len(),
        "{made_first} made before the cut"
    );

    let before = fake.calls().len();
    let report = up(&fake, network()).await;
    assert!(report.succeeded(), "{report:#?}");
    let resumed = fake.calls()[before..].to_vec();
    assert_eq!(
        resumed.len(),
        network().len() - made_first,
        "only what was missing: {resumed:?}"
    );
    assert!(resumed.contains(&create("network/nat-gateway/a")));
    for resource in network() {
        let held = fake.held().iter().filter(|o| o.id == resource.id).count();
        assert_eq!(held, 1, "one {} after the resumed run", resource.id);
    }
    assert!(in_sync(&fake, network()).await);
}

#[tokio::test]
async fn a_down_deletes_in_dependency_order_and_everything_goes() {
    let fake = Fake::new(STACK);
    assert!(up(&fake, network()).await.succeeded());
    let observed = fake.held();
    let events = Arc::new(Events::default());
    let ctx = Arc::new(Ctx::new(STACK, Options::default()));
    let report = apply::destroy_all(fake.clone(), ctx, &observed, events).await;
    assert!(report.succeeded(), "{report:#?}");
    assert!(fake.held().is_empty());
    for first in &observed {
        for then in &observed {
            if first.spec.kind().deleted_before(then.spec.kind()) {
                assert!(
                    fake.position(&Mark::End(Call::Delete(first.id.to_string())))
                        < fake.position(&Mark::Start(Call::Delete(then.id.to_string()))),
                    "{} must be gone before {} is deleted",
                    first.id,
                    then.id
                );
            }
        }
    }
    let last = fake.calls().last().cloned();
    assert_eq!(last, Some(delete("network/vpc")), "the VPC goes last");
}

#[tokio::test]
async fn a_resource_taken_out_of_the_blueprint_is_deleted_by_the_next_apply() {
    let fake = Fake::new(STACK);
    assert!(up(&fake, network()).await.succeeded());
    let without_topic: Vec<Resource> = network()
        .into_iter()
        .filter(|r| r.id != id("messaging/topic/events"))
        .collect();
    let before = fake.calls().len();
    let report = up(&fake, without_topic.clone()).await;
    assert!(report.succeeded());
    assert_eq!(
        fake.calls()[before..].to_vec(),
        vec![delete("messaging/topic/events")]
    );
    assert!(in_sync(&fake, without_topic).await);
}
