//! Carries a plan out: deletions first (replaced and orphaned resources,
//! each after what holds it), then creations and updates in dependency
//! order, each phase a DAG walk with bounded parallelism. The work on each
//! resource is the [`Provider`]'s; the order, the parallelism and what is
//! skipped after a failure are decided here.
//!
//! A replaced resource is deleted before its successor is made. Creating
//! the successor first would keep a service up during the swap, but no
//! kind of this stack allows it on AWS: each either has a name AWS holds
//! unique (security groups, target groups, the load balancer, the database,
//! roles, queues, topics, repositories, log groups, routes by route key) or
//! holds something exclusively (a NAT gateway its Elastic IP, a route-table
//! association its subnet), so the successor could not exist beside it.

pub mod critical;
pub mod dag;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::clock::Pace;
use crate::plan::resource::Output;
use crate::plan::{Action, Kind, LogicalId, Observed, Plan, Resource};
pub use dag::Outcome;

/// What happened to one resource, as the printer hears it.
#[derive(Clone, Debug, Serialize)]
pub struct Event {
    pub id: LogicalId,
    pub kind: Kind,
    pub action: Action,
    #[serde(flatten)]
    pub status: Status,
}

#[derive(Clone, Debug, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum Status {
    Started,
    /// A long wait, reported with what it waits for and for how long so far.
    Waiting {
        what: String,
        elapsed_seconds: u64,
        /// AWS's word for where the resource is, when it has one (`creating`,
        /// `backing-up`, `provisioning`).
        #[serde(skip_serializing_if = "Option::is_none")]
        state: Option<String>,
    },
    Done {
        physical_id: Option<String>,
    },
    Failed {
        error: String,
    },
    Skipped {
        because: String,
    },
}

pub trait Reporter: Send + Sync {
    fn report(&self, event: Event);
}

/// Does the work on one resource at a time, in the order the walk decides:
/// a cloud's API behind the engine's resources. "Already gone" is the
/// provider's to recognise: a delete of something that no longer exists
/// succeeds.
pub trait Provider: Send + Sync + 'static {
    type Error: std::fmt::Display + Send + 'static;

    /// Everything the cloud holds that is tagged with `stack`, with the
    /// references between resources turned into logical ids.
    fn observe(
        &self,
        stack: &str,
    ) -> impl Future<Output = Result<Vec<Observed>, Self::Error>> + Send;

    /// Makes `resource` (or adopts one left by an interrupted run) and
    /// returns its physical id once it is ready for what depends on it.
    fn create(
        &self,
        ctx: &Ctx,
        step: &Step,
        resource: &Resource,
    ) -> impl Future<Output = Result<String, Self::Error>> + Send;

    /// Brings the resource known as `physical` in line with `resource`.
    fn update(
        &self,
        ctx: &Ctx,
        step: &Step,
        resource: &Resource,
        physical: &str,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Deletes an observed resource and waits until it no longer holds on
    /// to what is deleted after it.
    fn delete(
        &self,
        ctx: &Ctx,
        step: &Step,
        observed: &Observed,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Calls made so far, and how many of them changed something: the
    /// report counts those of one apply.
    fn calls(&self) -> CallCount;
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallCount {
    pub all: usize,
    pub mutating: usize,
}

/// A resource refers to another that is not known yet.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct Unresolved(String);

/// A wait ran out of time.
#[derive(Debug, Clone, thiserror::Error)]
#[error("gave up after {seconds}s waiting for {what}{last}")]
pub struct GaveUp {
    pub what: String,
    pub seconds: u64,
    /// ` (last state: …)` when the resource said where it was.
    last: String,
}

/// One wait of an apply, once over: what it waited for, how long, and how
/// many times it asked.
#[derive(Clone, Debug, Serialize)]
pub struct Waited {
    pub id: LogicalId,
    pub what: String,
    pub seconds: f64,
    pub polls: u32,
}

/// The waits of one apply, as they end.
#[derive(Default)]
pub struct WaitLog(Mutex<Vec<Waited>>);

impl WaitLog {
    fn record(&self, waited: Waited) {
        if let Ok(mut log) = self.0.lock() {
            log.push(waited);
        }
    }

    pub fn all(&self) -> Vec<Waited> {
        self.0.lock().map(|log| log.clone()).unwrap_or_default()
    }
}

/// The handle a resource operation reports through.
#[derive(Clone)]
pub struct Step {
    pub id: LogicalId,
    pub kind: Kind,
    pub action: Action,
    reporter: Arc<dyn Reporter>,
    waits: Arc<WaitLog>,
}

impl Step {
    fn emit(&self, status: Status) {
        self.reporter.report(Event {
            id: self.id.clone(),
            kind: self.kind,
            action: self.action,
            status,
        });
    }

    /// A handle for running a provider's operation outside a walk (tests,
    /// one-off commands).
    pub fn new(id: LogicalId, kind: Kind, action: Action, reporter: Arc<dyn Reporter>) -> Self {
        Self {
            id,
            kind,
            action,
            reporter,
            waits: Arc::default(),
        }
    }

    pub fn waiting(&self, what: &str, elapsed: Duration) {
        self.waiting_in(what, elapsed, None);
    }

    fn waiting_in(&self, what: &str, elapsed: Duration, state: Option<String>) {
        self.emit(Status::Waiting {
            what: what.to_string(),
            elapsed_seconds: elapsed.as_secs(),
            state,
        });
    }

    /// Polls `check` at `pace` until it yields a value, saying what it
    /// waits for, and gives up with a clear error at the pace's deadline.
    pub async fn wait_until<T, E, F, Fut>(&self, what: &str, pace: Pace, check: F) -> Result<T, E>
    where
        E: From<GaveUp>,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Option<T>, E>>,
    {
        self.wait_until_from(Instant::now(), what, pace, check)
            .await
    }

    /// Like [`Step::wait_until`], on a schedule that began at `origin`
    /// rather than now: that of another wait of the same kind, so the two
    /// poll at the same moments and can share their calls. The deadline
    /// still counts from now.
    pub async fn wait_until_from<T, E, F, Fut>(
        &self,
        origin: Instant,
        what: &str,
        pace: Pace,
        mut check: F,
    ) -> Result<T, E>
    where
        E: From<GaveUp>,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Option<T>, E>>,
    {
        self.wait_from(origin, what, pace, || {
            let polled = check();
            async move { polled.await.map(|v| v.ok_or(None)) }
        })
        .await
    }

    /// Like [`Step::wait_until`], with `check` answering `Err(state)` while
    /// the resource is not there yet, so the state is shown while waiting.
    pub async fn wait_for_state<T, E, F, Fut>(
        &self,
        what: &str,
        pace: Pace,
        check: F,
    ) -> Result<T, E>
    where
        E: From<GaveUp>,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Result<T, Option<String>>, E>>,
    {
        self.wait_from(Instant::now(), what, pace, check).await
    }

    async fn wait_from<T, E, F, Fut>(
        &self,
        origin: Instant,
        what: &str,
        pace: Pace,
        mut check: F,
    ) -> Result<T, E>
    where
        E: From<GaveUp>,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Result<T, Option<String>>, E>>,
    {
        let started = Instant::now();
        let mut polls = 0;
        let record = |polls| {
            self.waits.record(Waited {
                id: self.id.clone(),
                what: what.to_string(),
                seconds: started.elapsed().as_secs_f64(),
                polls,
            })
        };
        loop {
            polls += 1;
            let state = match check().await {
                Ok(Ok(value)) => {
                    record(polls);
                    return Ok(value);
                }
                Ok(Err(state)) => state,
                Err(e) => {
                    record(polls);
                    return Err(e);
                }
            };
            let elapsed = started.elapsed();
            if elapsed >= pace.deadline {
                record(polls);
                let last = state
                    .map(|s| format!(" (last state: {s})"))
                    .unwrap_or_default();
                return Err(GaveUp {
                    what: what.to_string(),
                    seconds: pace.deadline.as_secs(),
                    last,
                }
                .into());
            }
            self.waiting_in(what, elapsed, state);
            let pause = pace.pause(polls, origin.elapsed());
            tokio::time::sleep(pause.min(pace.deadline.saturating_sub(elapsed))).await;
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// How many resources are worked on at once (Terraform's default, 10).
    pub parallelism: usize,
    /// Delete the stack secret at once instead of scheduling its deletion.
    pub force_delete_secrets: bool,
    /// Delete the database with a final snapshot, keeping its backups.
    pub keep_data: bool,
    /// How fast the cloud's clock runs against AWS's: 1 for AWS itself,
    /// less for an emulator that plays AWS's timings back faster. Waits
    /// pace their polls and deadlines by it.
    pub clock_scale: f64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            parallelism: 10,
            force_delete_secrets: false,
            keep_data: false,
            clock_scale: 1.0,
        }
    }
}

/// The shared state of one apply: the physical id of every resource known
/// so far, and the values resources made give to others (an ARN).
pub struct Ctx {
    pub stack: String,
    pub options: Options,
    ids: Mutex<HashMap<LogicalId, String>>,
    attributes: Mutex<HashMap<(LogicalId, String), String>>,
    waits: Arc<WaitLog>,
}

impl Ctx {
    pub fn new(stack: &str, options: Options) -> Self {
        Self {
            stack: stack.to_string(),
            options,
            ids: Mutex::new(HashMap::new()),
            attributes: Mutex::new(HashMap::new()),
            waits: Arc::default(),
        }
    }

    /// The pace of a wait AWS typically ends after `expected`, on this
    /// apply's clock.
    pub fn pace(&self, expected: Duration, deadline: Duration) -> Pace {
        Pace::expecting(expected, deadline).scaled(self.options.clock_scale)
    }

    /// The pace of a wait of no known length, polled every `every`.
    pub fn steady(&self, every: Duration, deadline: Duration) -> Pace {
        Pace::steady(every, deadline).scaled(self.options.clock_scale)
    }

    fn step(&self, id: LogicalId, kind: Kind, action: Action, reporter: Arc<dyn Reporter>) -> Step {
        Step {
            id,
            kind,
            action,
            reporter,
            waits: self.waits.clone(),
        }
    }

    /// Records a value other resources refer to, such as an ARN.
    pub fn remember_attribute(&self, id: &LogicalId, name: &str, value: &str) {
        if let Ok(mut attributes) = self.attributes.lock() {
            attributes.insert((id.clone(), name.to_string()), value.to_string());
        }
    }

    /// A value a resource this one refers to gave when it was made.
    pub fn attribute(&self, id: &LogicalId, name: &str) -> Result<String, Unresolved> {
        self.attributes
            .lock()
            .ok()
            .and_then(|a| a.get(&(id.clone(), name.to_string())).cloned())
            .ok_or_else(|| Unresolved(format!("{id} has no {name} yet")))
    }

    /// The text an output stands for, now that what it names exists.
    pub fn output(&self, output: &Output) -> Result<serde_json::Value, Unresolved> {
        Ok(match output {
            Output::Text(t) => serde_json::Value::String(t.clone()),
            Output::Id(id) => serde_json::Value::String(self.resolve(id)?),
            Output::Attr { of, attr } => serde_json::Value::String(self.attribute(of, attr)?),
            Output::List(items) => serde_json::Value::Array(
                items
                    .iter()
                    .map(|o| self.output(o))
                    .collect::<Result<_, _>>()?,
            ),
        })
    }

    /// The one string an output stands for (an ARN, an id).
    pub fn output_text(&self, output: &Output) -> Result<String, Unresolved> {
        match self.output(output)? {
            serde_json::Value::String(s) => Ok(s),
            other => Ok(other.to_string()),
        }
    }

    /// The physical id of a resource this one refers to.
    pub fn resolve(&self, id: &LogicalId) -> Result<String, Unresolved> {
        self.ids
            .lock()
            .ok()
            .and_then(|ids| ids.get(id).cloned())
            .ok_or_else(|| Unresolved(format!("{id} does not exist yet")))
    }

    /// The physical ids of several resources this one refers to.
    pub fn resolve_all<'a>(
        &self,
        ids: impl IntoIterator<Item = &'a LogicalId>,
    ) -> Result<Vec<String>, Unresolved> {
        ids.into_iter().map(|id| self.resolve(id)).collect()
    }

    pub fn try_resolve(&self, id: &LogicalId) -> Option<String> {
        self.ids.lock().ok().and_then(|ids| ids.get(id).cloned())
    }

    fn remember(&self, id: &LogicalId, physical: &str) {
        if let Ok(mut ids) = self.ids.lock() {
            ids.insert(id.clone(), physical.to_string());
        }
    }

    fn forget(&self, id: &LogicalId) {
        if let Ok(mut ids) = self.ids.lock() {
            ids.remove(id);
        }
    }

    pub fn tags(&self, id: &LogicalId) -> BTreeMap<String, String> {
        crate::plan::expand::tags(&self.stack, id)
    }
}

/// What became of one resource.
#[derive(Clone, Debug, Serialize)]
pub struct ResourceResult {
    pub id: LogicalId,
    pub kind: Kind,
    pub action: Action,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub physical_id: Option<String>,
    #[serde(flatten)]
    pub outcome: Outcome,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub results: Vec<ResourceResult>,
    /// Calls the provider made (the AWS API's, for the AWS provider).
    pub aws_calls: usize,
    pub mutating_calls: usize,
    /// Every wait, with its polls: the calls a wait made are among
    /// `aws_calls`.
    pub waits: Vec<Waited>,
    pub elapsed_seconds: f64,
}

impl Report {
    pub fn failed(&self) -> impl Iterator<Item = &ResourceResult> {
        self.results
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Failed(_)))
    }

    pub fn skipped(&self) -> impl Iterator<Item = &ResourceResult> {
        self.results
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Skipped(_)))
    }

    pub fn succeeded(&self) -> bool {
        self.results.iter().all(|r| r.outcome == Outcome::Done)
    }
}

/// Carries out `plan`: the `up` of the stack.
pub async fn apply<P: Provider>(
    provider: Arc<P>,
    ctx: Arc<Ctx>,
    plan: &Plan,
    reporter: Arc<dyn Reporter>,
) -> Report {
    let started = Instant::now();
    let calls_before = provider.calls();
    let by_physical: HashMap<&str, &Observed> = plan
        .observed
        .iter()
        .map(|o| (o.physical_id.as_str(), o))
        .collect();

    // Everything observed is known by its physical id to start with; the
    // primary of each logical id wins over duplicates that will be deleted.
    for change in &plan.changes {
        if change.action != Action::Delete
            && let Some(physical) = &change.physical_id
        {
            ctx.remember(&change.id, physical);
            if let Some(observed) = by_physical.get(physical.as_str()) {
                for (name, value) in &observed.attributes {
                    ctx.remember_attribute(&change.id, name, value);
                }
            }
        }
    }

    let doomed = doomed(plan);
    let mut results = destroy(provider.clone(), ctx.clone(), &doomed, reporter.clone()).await;

    let failed_to_go: HashSet<LogicalId> = results
        .iter()
        .filter(|r| r.outcome != Outcome::Done)
        .map(|r| r.id.clone())
        .collect();
    for r in results
        .iter()
        .filter(|r| r.outcome == Outcome::Done && r.action == Action::Replace)
    {
        ctx.forget(&r.id);
    }

    let actions: HashMap<&LogicalId, Action> =
        plan.changes.iter().map(|c| (&c.id, c.action)).collect();
    let todo: Vec<&Resource> = to_build(plan).into_iter().map(|(r, _)| r).collect();
    results.extend(
        build(
            provider.clone(),
            ctx.clone(),
            &todo,
            &actions,
            &failed_to_go,
            reporter.clone(),
        )
        .await,
    );

    report_skips(&results, &reporter);
    finish(&*provider, &ctx, results, calls_before, started)
}

/// Deletes every observed resource of the stack: the `down`.
pub async fn destroy_all<P: Provider>(
    provider: Arc<P>,
    ctx: Arc<Ctx>,
    observed: &[Observed],
    reporter: Arc<dyn Reporter>,
) -> Report {
    let started = Instant::now();
    let calls_before = provider.calls();
    let doomed: Vec<(&Observed, Action)> = observed.iter().map(|o| (o, Action::Delete)).collect();
    let results = destroy(provider.clone(), ctx.clone(), &doomed, reporter.clone()).await;
    report_skips(&results, &reporter);
    finish(&*provider, &ctx, results, calls_before, started)
}

/// The walk settles skipped resources without running them; the printer
/// still hears of each one.
fn report_skips(results: &[ResourceResult], reporter: &Arc<dyn Reporter>) {
    for r in results {
        if let Outcome::Skipped(because) = &r.outcome {
            reporter.report(Event {
                id: r.id.clone(),
                kind: r.kind,
                action: r.action,
                status: Status::Skipped {
                    because: because.clone(),
                },
            });
        }
    }
}

fn finish(
    provider: &impl Provider,
    ctx: &Ctx,
    results: Vec<ResourceResult>,
    before: CallCount,
    started: Instant,
) -> Report {
    let now = provider.calls();
    Report {
        results,
        aws_calls: now.all.saturating_sub(before.all),
        mutating_calls: now.mutating.saturating_sub(before.mutating),
        waits: ctx.waits.all(),
        elapsed_seconds: started.elapsed().as_secs_f64(),
    }
}

/// Deletes in AWS's order (see [`Kind::deleted_after`]), as many at once as
/// allowed.
async fn destroy<P: Provider>(
    provider: Arc<P>,
    ctx: Arc<Ctx>,
    doomed: &[(&Observed, Action)],
    reporter: Arc<dyn Reporter>,
) -> Vec<ResourceResult> {
    let items: HashMap<String, (Observed, Action)> = doomed
        .iter()
        .map(|(o, a)| (destroy_key(o), ((*o).clone(), *a)))
        .collect();
    let observed: Vec<&Observed> = doomed.iter().map(|(o, _)| *o).collect();
    let tasks = destroy_tasks(&observed);
    let items = Arc::new(items);
    let run_items = items.clone();
    let outcomes = dag::walk(tasks, ctx.options.parallelism, move |key: String| {
        let provider = provider.clone();
        let ctx = ctx.clone();
        let items = run_items.clone();
        let reporter = reporter.clone();
        async move {
            let (observed, action) = &items[&key];
            let physical = observed.physical_id.clone();
            let step = ctx.step(observed.id.clone(), observed.spec.kind(), *action, reporter);
            step.emit(Status::Started);
            let result = provider.delete(&ctx, &step, observed).await;
            settle(&step, result.map(|()| Some(physical)))
        }
    })
    .await;
    outcomes
        .into_iter()
        .map(|(key, outcome)| {
            let (observed, action) = &items[&key];
            ResourceResult {
                id: observed.id.clone(),
                kind: observed.spec.kind(),
                action: *action,
                physical_id: Some(observed.physical_id.clone()),
                outcome,
            }
        })
        .collect()
}

/// What `plan` deletes (replaced resources included), as observed.
pub(crate) fn doomed(plan: &Plan) -> Vec<(&Observed, Action)> {
    let by_physical: HashMap<&str, &Observed> = plan
        .observed
        .iter()
        .map(|o| (o.physical_id.as_str(), o))
        .collect();
    plan.changes
        .iter()
        .filter(|c| c.action.destroys())
        .filter_map(|c| Some((*by_physical.get(c.physical_id.as_deref()?)?, c.action)))
        .collect()
}

/// What `plan` creates, updates or re-creates.
pub(crate) fn to_build(plan: &Plan) -> Vec<(&Resource, Action)> {
    let actions: HashMap<&LogicalId, Action> =
        plan.changes.iter().map(|c| (&c.id, c.action)).collect();
    plan.desired
        .iter()
        .filter_map(|r| match actions.get(&r.id) {
            Some(a @ (Action::Create | Action::Update | Action::Replace)) => Some((r, *a)),
            _ => None,
        })
        .collect()
}

/// The deletion walk: each resource after the doomed ones that hold on to
/// it — of a kind AWS needs gone first ([`Kind::deleted_before`]) and
/// referring to it, directly or through others (the DB instance holds its
/// subnets through its subnet group) — and no others: a public subnet
/// does not wait for the database.
pub(crate) fn destroy_tasks(doomed: &[&Observed]) -> Vec<dag::Task<String>> {
    let mut refs: HashMap<&LogicalId, Vec<&LogicalId>> = HashMap::new();
    for o in doomed {
        let spec = &o.spec;
        refs.entry(&o.id)
            .or_default()
            .extend(spec.fixed_refs().into_iter().chain(spec.mutable_refs()));
    }
    doomed
        .iter()
        .map(|o| dag::Task {
            key: destroy_key(o),
            deps: doomed
                .iter()
                .filter(|other| {
                    let (holder, held) = (other.spec.kind(), o.spec.kind());
                    holder.deleted_before(held)
                        && (holds_unseen(holder, held) || reaches(&refs, &other.id, &o.id))
                })
                .map(|other| destroy_key(other))
                .collect(),
        })
        .collect()
}

/// Whether a resource of kind `holder` keeps one of kind `held` in use in
/// a way no reference shows: the cluster's tasks use the roles, log
/// groups, target groups, subnets and security groups; public addresses
/// (the NAT gateway's) keep the internet gateway attached; a listener's
/// default action may name a target group; the API keeps its VPC link's
/// integrations; and the stack secret outlives everything.
fn holds_unseen(holder: Kind, held: Kind) -> bool {
    holder == Kind::Cluster
        || held == Kind::StackSecret
        || matches!(
            (holder, held),
            (Kind::ElasticIp | Kind::NatGateway, Kind::InternetGateway)
                | (Kind::Listener, Kind::TargetGroup)
                | (Kind::HttpApi, Kind::VpcLink)
        )
}

/// Whether `from` refers to `to`, directly or through what it refers to.
fn reaches(refs: &HashMap<&LogicalId, Vec<&LogicalId>>, from: &LogicalId, to: &LogicalId) -> bool {
    let mut seen: HashSet<&LogicalId> = HashSet::new();
    let mut stack: Vec<&LogicalId> = refs.get(from).cloned().unwrap_or_default();
    while let Some(id) = stack.pop() {
        if id == to {
            return true;
        }
        if seen.insert(id) {
            stack.extend(refs.get(id).into_iter().flatten());
        }
    }
    false
}

/// The creation walk: each resource after what it refers to.
pub(crate) fn build_tasks(todo: &[&Resource]) -> Vec<dag::Task<LogicalId>> {
    todo.iter()
        .map(|r| dag::Task {
            key: r.id.clone(),
            deps: r.deps().into_iter().cloned().collect(),
        })
        .collect()
}

/// A doomed resource's key in the walk: physical ids are unique only
/// within a kind, and logical ids are shared by duplicates.
pub(crate) fn destroy_key(o: &Observed) -> String {
    format!("{} {}", o.id, o.physical_id)
}

/// Creates, updates and re-creates in dependency order.
async fn build<P: Provider>(
    provider: Arc<P>,
    ctx: Arc<Ctx>,
    todo: &[&Resource],
    actions: &HashMap<&LogicalId, Action>,
    failed_to_go: &HashSet<LogicalId>,
    reporter: Arc<dyn Reporter>,
) -> Vec<ResourceResult> {
    let tasks = build_tasks(todo);
    let items: Arc<HashMap<LogicalId, (Resource, Action)>> = Arc::new(
        todo.iter()
            .map(|r| (r.id.clone(), ((*r).clone(), actions[&r.id])))
            .collect(),
    );
    let failed_to_go = Arc::new(failed_to_go.clone());
    let run_items = items.clone();
    let run_ctx = ctx.clone();
    let outcomes = dag::walk(tasks, ctx.options.parallelism, move |id: LogicalId| {
        let provider = provider.clone();
        let ctx = run_ctx.clone();
        let items = run_items.clone();
        let reporter = reporter.clone();
        let failed_to_go = failed_to_go.clone();
        async move {
            let (resource, action) = &items[&id];
            let step = ctx.step(id.clone(), resource.kind(), *action, reporter);
            if failed_to_go.contains(&id) {
                let error =
                    "the old one could not be deleted, so it was not re-created".to_string();
                step.emit(Status::Failed {
                    error: error.clone(),
                });
                return Err(error);
            }
            step.emit(Status::Started);
            let result = converge(&*provider, &ctx, &step, resource, *action).await;
            if let Ok(Some(physical)) = &result {
                ctx.remember(&id, physical);
            }
            settle(&step, result)
        }
    })
    .await;
    outcomes
        .into_iter()
        .map(|(id, outcome)| {
            let (resource, action) = &items[&id];
            ResourceResult {
                physical_id: ctx.try_resolve(&id),
                id,
                kind: resource.kind(),
                action: *action,
                outcome,
            }
        })
        .collect()
}

async fn converge<P: Provider>(
    provider: &P,
    ctx: &Ctx,
    step: &Step,
    resource: &Resource,
    action: Action,
) -> Result<Option<String>, P::Error> {
    match (action, ctx.try_resolve(&resource.id)) {
        (Action::Update, Some(physical)) => provider
            .update(ctx, step, resource, &physical)
            .await
            .map(|()| Some(physical)),
        _ => provider.create(ctx, step, resource).await.map(Some),
    }
}

fn settle<E: std::fmt::Display>(
    step: &Step,
    result: Result<Option<String>, E>,
) -> Result<(), String> {
    match result {
        Ok(physical_id) => {
            step.emit(Status::Done { physical_id });
            Ok(())
        }
        Err(e) => {
            let error = e.to_string();
            step.emit(Status::Failed {
                error: error.clone(),
            });
            Err(error)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<Event>>);
    impl Reporter for Recorder {
        fn report(&self, event: Event) {
            self.0.lock().unwrap().push(event);
        }
    }

    fn step(reporter: Arc<Recorder>) -> Step {
        Step::new(
            LogicalId::new(&["network", "nat-gateway", "a"]),
            Kind::NatGateway,
            Action::Create,
            reporter,
        )
    }

    #[tokio::test]
    async fn a_wait_says_what_it_waits_for_and_gives_up_at_its_deadline() {
        let recorder = Arc::new(Recorder::default());
        let result: Result<(), GaveUp> = step(recorder.clone())
            .wait_until(
                "the NAT gateway to become available",
                Pace::steady(Duration::from_millis(10), Duration::from_millis(60)),
                || async { Ok(None) },
            )
            .await;
        let error = result.unwrap_err().to_string();
        assert!(
            error.contains("gave up after 0s waiting for the NAT gateway to become available"),
            "{error}"
        );
        let events = recorder.0.lock().unwrap();
        assert!(events.len() >= 3, "each poll reports progress");
        assert!(events.iter().all(|e| matches!(&e.status, Status::Waiting { what, .. } if what == "the NAT gateway to become available")));
    }

    #[tokio::test]
    async fn a_wait_from_an_earlier_origin_polls_on_that_schedule() {
        // A two-minute wait at 1/100: its approach polls land 0.6, 0.96 and
        // 1.21 s after the origin, here half a second before the wait.
        let pace = Pace::expecting(Duration::from_secs(120), Duration::from_secs(3600))
            .scaled(1.0 / 100.0);
        let origin = Instant::now() - Duration::from_millis(500);
        let polled = Mutex::new(Vec::new());
        step(Arc::default())
            .wait_until_from(origin, "it", pace, || {
                let mut polled = polled.lock().unwrap();
                polled.push(origin.elapsed().as_secs_f64());
                let ready = polled.len() == 3;
                async move { Ok::<_, GaveUp>(ready.then_some(())) }
            })
            .await
            .unwrap();
        let polled = polled.into_inner().unwrap();
        assert!(polled[0] < 0.6, "{polled:?}");
        assert!((0.6..0.85).contains(&polled[1]), "{polled:?}");
        assert!((0.96..1.2).contains(&polled[2]), "{polled:?}");
    }

    #[tokio::test]
    async fn a_wait_returns_as_soon_as_the_check_passes() {
        let recorder = Arc::new(Recorder::default());
        let mut polls = 0;
        let value = step(recorder.clone())
            .wait_until(
                "it",
                Pace::steady(Duration::from_millis(1), Duration::from_secs(5)),
                || {
                    polls += 1;
                    let ready = polls == 3;
                    async move { Ok::<_, GaveUp>(ready.then_some(42)) }
                },
            )
            .await
            .unwrap();
        assert_eq!(value, 42);
        assert_eq!(recorder.0.lock().unwrap().len(), 2);
    }
}
