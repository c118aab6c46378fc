//! The engine's [`Provider`] for AWS: each resource operation routed to
//! the module of its AWS area, the context those modules work in, and the
//! retry that waits out AWS holding on to what is being deleted.

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant};

use engine::apply::{CallCount, Provider};
use engine::plan::resource::Output;
use engine::plan::{Kind, Observed, Resource};

use crate::{
    Aws, AwsError, Step, alarms, alb, backoff, boundary, database, ecs, gateway, messaging,
    network, registry, secrets,
};

/// What an AWS operation on one resource sees: the clients, and the engine's
/// record of the resources known so far (physical ids, ARNs).
pub struct Ctx<'a> {
    pub aws: &'a Aws,
    known: &'a engine::apply::Ctx,
}

impl<'a> Ctx<'a> {
    pub fn new(aws: &'a Aws, known: &'a engine::apply::Ctx) -> Self {
        Self { aws, known }
    }
}

impl std::ops::Deref for Ctx<'_> {
    type Target = engine::apply::Ctx;

    fn deref(&self) -> &Self::Target {
        self.known
    }
}

/// The engine's provider for AWS.
pub struct AwsProvider {
    aws: Aws,
}

impl AwsProvider {
    pub fn new(aws: Aws) -> Self {
        Self { aws }
    }
}

impl Provider for AwsProvider {
    type Error = AwsError;

    async fn observe(&self, stack: &str) -> Result<Vec<Observed>, AwsError> {
        observe(&self.aws, stack).await
    }

    async fn create(
        &self,
        ctx: &engine::apply::Ctx,
        step: &Step,
        resource: &Resource,
    ) -> Result<String, AwsError> {
        create(&Ctx::new(&self.aws, ctx), step, resource).await
    }

    async fn update(
        &self,
        ctx: &engine::apply::Ctx,
        step: &Step,
        resource: &Resource,
        physical: &str,
    ) -> Result<(), AwsError> {
        update(&Ctx::new(&self.aws, ctx), step, resource, physical).await
    }

    async fn delete(
        &self,
        ctx: &engine::apply::Ctx,
        step: &Step,
        observed: &Observed,
    ) -> Result<(), AwsError> {
        delete(&Ctx::new(&self.aws, ctx), step, observed).await
    }

    fn calls(&self) -> CallCount {
        let calls = self.aws.calls.snapshot();
        CallCount {
            all: calls.len(),
            mutating: calls.iter().filter(|c| c.is_mutating()).count(),
        }
    }
}

/// Retrying while AWS still holds on to what is being deleted.
pub trait RetryInUse {
    /// Retries `op` while AWS says the resource is still in use (EC2's
    /// DependencyViolation and its kin elsewhere): something that is being
    /// deleted still holds on to it. "Already gone" counts as done.
    fn retry_dependency<F, Fut>(
        &self,
        what: &str,
        deadline: Duration,
        op: F,
    ) -> impl Future<Output = Result<(), AwsError>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<(), AwsError>>;
}

impl RetryInUse for Step {
    async fn retry_dependency<F, Fut>(
        &self,
        what: &str,
        deadline: Duration,
        mut op: F,
    ) -> Result<(), AwsError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<(), AwsError>>,
    {
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            match op().await {
                Err(e) if e.is_in_use() && started.elapsed() < deadline => {
                    self.waiting(what, started.elapsed());
                    tokio::time::sleep(backoff(
                        attempt,
                        Duration::from_secs(1),
                        Duration::from_secs(15),
                    ))
                    .await;
                    attempt += 1;
                }
                Err(e) if e.is_not_found() => return Ok(()),
                other => return other,
            }
        }
    }
}

/// Which area of AWS a kind belongs to, for routing the engine's calls.
/// Each area's future is boxed where it is called: the SDK's futures are
/// large, and inlined into one they overflow a worker thread's stack.
fn area(kind: Kind) -> Area {
    match kind {
        Kind::Vpc
        | Kind::Subnet
        | Kind::InternetGateway
        | Kind::ElasticIp
        | Kind::NatGateway
        | Kind::RouteTable
        | Kind::RouteTableAssociation
        | Kind::SecurityGroup
        | Kind::SecurityGroupRules => Area::Network,
        Kind::LoadBalancer | Kind::TargetGroup | Kind::Listener | Kind::ListenerRule => Area::Alb,
        Kind::VpcLink | Kind::HttpApi | Kind::Integration | Kind::ApiRoute | Kind::ApiStage => {
            Area::Gateway
        }
        Kind::Cluster | Kind::Role | Kind::LogGroup => Area::Ecs,
        Kind::ManagedPolicy => Area::Boundary,
        Kind::DbSubnetGroup | Kind::DbInstance => Area::Database,
        Kind::Repository => Area::Registry,
        Kind::Topic | Kind::Queue | Kind::Subscription => Area::Messaging,
        Kind::Alarm => Area::Alarms,
        Kind::StackSecret | Kind::StackOutputs | Kind::Secret => Area::Secrets,
    }
}

enum Area {
    Network,
    Alb,
    Gateway,
    Ecs,
    Boundary,
    Database,
    Registry,
    Messaging,
    Alarms,
    Secrets,
}

/// Creates `resource` and returns its physical id.
pub async fn create(ctx: &Ctx<'_>, step: &Step, resource: &Resource) -> Result<String, AwsError> {
    match area(resource.kind()) {
        Area::Network => Box::pin(network::create(ctx, step, resource)).await,
        Area::Alb => Box::pin(alb::create(ctx, step, resource)).await,
        Area::Gateway => Box::pin(gateway::create(ctx, step, resource)).await,
        Area::Ecs => Box::pin(ecs::create(ctx, step, resource)).await,
        Area::Boundary => Box::pin(boundary::create(ctx, step, resource)).await,
        Area::Database => Box::pin(database::create(ctx, step, resource)).await,
        Area::Registry => Box::pin(registry::create(ctx, step, resource)).await,
        Area::Messaging => Box::pin(messaging::create(ctx, step, resource)).await,
        Area::Alarms => Box::pin(alarms::create(ctx, step, resource)).await,
        Area::Secrets => Box::pin(secrets::converge(ctx, step, resource)).await,
    }
}

/// Brings an existing resource's updatable fields and tags in line.
pub async fn update(
    ctx: &Ctx<'_>,
    step: &Step,
    resource: &Resource,
    physical: &str,
) -> Result<(), AwsError> {
    match area(resource.kind()) {
        Area::Network => Box::pin(network::update(ctx, step, resource, physical)).await,
        Area::Alb => Box::pin(alb::update(ctx, step, resource, physical)).await,
        Area::Gateway => Box::pin(gateway::update(ctx, step, resource, physical)).await,
        Area::Ecs => Box::pin(ecs::update(ctx, step, resource, physical)).await,
        Area::Boundary => Box::pin(boundary::update(ctx, step, resource, physical)).await,
        Area::Database => Box::pin(database::update(ctx, step, resource, physical)).await,
        Area::Registry => Box::pin(registry::update(ctx, step, resource, physical)).await,
        Area::Messaging => Box::pin(messaging::update(ctx, step, resource, physical)).await,
        Area::Alarms => Box::pin(alarms::update(ctx, step, resource, physical)).await,
        Area::Secrets => Box::pin(secrets::converge(ctx, step, resource))
            .await
            .map(|_| ()),
    }
}

/// Deletes one observed resource; "already gone" counts as done.
pub async fn delete(ctx: &Ctx<'_>, step: &Step, observed: &Observed) -> Result<(), AwsError> {
    match area(observed.spec.kind()) {
        Area::Network => Box::pin(network::delete(ctx, step, observed)).await,
        Area::Alb => Box::pin(alb::delete(ctx, step, observed)).await,
        Area::Gateway => Box::pin(gateway::delete(ctx, step, observed)).await,
        Area::Ecs => Box::pin(ecs::delete(ctx, step, observed)).await,
        Area::Boundary => Box::pin(boundary::delete(ctx, step, observed)).await,
        Area::Database => Box::pin(database::delete(ctx, step, observed)).await,
        Area::Registry => Box::pin(registry::delete(ctx, step, observed)).await,
        Area::Messaging => Box::pin(messaging::delete(ctx, step, observed)).await,
        Area::Alarms => Box::pin(alarms::delete(ctx, step, observed)).await,
        Area::Secrets => Box::pin(secrets::delete(ctx, observed)).await,
    }
}

/// Everything in AWS tagged with the stack, with the physical ids and ARNs
/// that resources hold of each other turned into logical references.
pub async fn observe(aws: &Aws, stack: &str) -> Result<Vec<Observed>, AwsError> {
    // Boxed: the SDK's futures are large, and nine side by side would
    // overflow a worker thread's stack.
    let (network, alb, gateway, ecs, boundary, database, registry, messaging, alarms, secrets) = tokio::try_join!(
        Box::pin(network::observe(aws, stack)),
        Box::pin(alb::observe(aws, stack)),
        Box::pin(gateway::observe(aws, stack)),
        Box::pin(ecs::observe(aws, stack)),
        Box::pin(boundary::observe(aws, stack)),
        Box::pin(database::observe(aws, stack)),
        Box::pin(registry::observe(aws, stack)),
        Box::pin(messaging::observe(aws, stack)),
        Box::pin(alarms::observe(aws, stack)),
        Box::pin(secrets::observe(aws, stack)),
    )?;
    let mut all: Vec<Observed> = [
        network, alb, gateway, ecs, boundary, database, registry, messaging, alarms, secrets,
    ]
    .into_iter()
    .flatten()
    .collect();
    relink(&mut all);
    Ok(all)
}

/// Physical ids (and the attributes some references use instead, such as a
/// queue's ARN) → the resources they stand for.
fn relink(all: &mut [Observed]) {
    let mut known: HashMap<String, Output> = HashMap::new();
    for o in all.iter() {
        for (name, value) in &o.attributes {
            known.insert(value.clone(), Output::attr(o.id.clone(), name));
        }
    }
    // A physical id wins over an attribute with the same text (a topic's
    // ARN is both).
    for o in all.iter() {
        known.insert(o.physical_id.clone(), Output::Id(o.id.clone()));
    }
    let lookup = |s: &str| known.get(s).cloned();
    for o in all.iter_mut() {
        o.spec.relink(&lookup);
    }
}
