//! Carries a plan out: deletions first (replaced and orphaned resources, in
//! AWS's deletion order), then creations and updates in dependency order,
//! each phase a DAG walk with bounded parallelism.

pub mod dag;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::aws::{self, Aws, AwsError};
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

/// The handle a resource operation reports through.
#[derive(Clone)]
pub struct Step {
    pub id: LogicalId,
    pub kind: Kind,
    pub action: Action,
    reporter: Arc<dyn Reporter>,
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

    /// Polls `check` until it yields a value, saying what it waits for, and
    /// gives up with a clear error once `deadline` has passed.
    pub async fn wait_until<T, F, Fut>(
        &self,
        what: &str,
        deadline: Duration,
        interval: Duration,
        mut check: F,
    ) -> Result<T, AwsError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Option<T>, AwsError>>,
    {
        self.wait_for_state(what, deadline, interval, || {
            let polled = check();
            async move { polled.await.map(|v| v.ok_or(None)) }
        })
        .await
    }

    /// Like [`Step::wait_until`], with `check` answering `Err(state)` while
    /// the resource is not there yet, so the state is shown while waiting.
    pub async fn wait_for_state<T, F, Fut>(
        &self,
        what: &str,
        deadline: Duration,
        interval: Duration,
        mut check: F,
    ) -> Result<T, AwsError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Result<T, Option<String>>, AwsError>>,
    {
        let started = Instant::now();
        loop {
            let state = match check().await? {
                Ok(value) => return Ok(value),
                Err(state) => state,
            };
            let elapsed = started.elapsed();
            if elapsed >= deadline {
                let last = state
                    .map(|s| format!(" (last state: {s})"))
                    .unwrap_or_default();
                return Err(AwsError::new(
                    "wait",
                    format!(
                        "gave up after {}s waiting for {what}{last}",
                        deadline.as_secs()
                    ),
                ));
            }
            self.waiting_in(what, elapsed, state);
            tokio::time::sleep(interval).await;
        }
    }

    /// Retries `op` while AWS says the resource is still in use (EC2's
    /// DependencyViolation and its kin elsewhere): something that is being
    /// deleted still holds on to it.
    pub async fn retry_dependency<F, Fut>(
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
                    tokio::time::sleep(aws::backoff(
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

#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// How many resources are worked on at once (Terraform's default, 10).
    pub parallelism: usize,
    /// Delete the stack secret at once instead of scheduling its deletion.
    pub force_delete_secrets: bool,
    /// Delete the database with a final snapshot, keeping its backups.
    pub keep_data: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            parallelism: 10,
            force_delete_secrets: false,
            keep_data: false,
        }
    }
}

/// The shared state of one apply: the clients and the physical id of every
/// resource known so far.
pub struct Ctx {
    pub aws: Aws,
    pub stack: String,
    pub options: Options,
    ids: Mutex<HashMap<LogicalId, String>>,
    attributes: Mutex<HashMap<(LogicalId, String), String>>,
}

impl Ctx {
    pub fn new(aws: Aws, stack: &str, options: Options) -> Self {
        Self {
            aws,
            stack: stack.to_string(),
            options,
            ids: Mutex::new(HashMap::new()),
            attributes: Mutex::new(HashMap::new()),
        }
    }

    /// Records a value other resources refer to, such as an ARN.
    pub fn remember_attribute(&self, id: &LogicalId, name: &str, value: &str) {
        if let Ok(mut attributes) = self.attributes.lock() {
            attributes.insert((id.clone(), name.to_string()), value.to_string());
        }
    }

    /// A value a resource this one refers to gave when it was made.
    pub fn attribute(&self, id: &LogicalId, name: &str) -> Result<String, AwsError> {
        self.attributes
            .lock()
            .ok()
            .and_then(|a| a.get(&(id.clone(), name.to_string())).cloned())
            .ok_or_else(|| AwsError::new("resolve", format!("{id} has no {name} yet")))
    }

    /// The text an output stands for, now that what it names exists.
    pub fn output(&self, output: &Output) -> Result<serde_json::Value, AwsError> {
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
    pub fn output_text(&self, output: &Output) -> Result<String, AwsError> {
        match self.output(output)? {
            serde_json::Value::String(s) => Ok(s),
            other => Ok(other.to_string()),
        }
    }

    /// The physical id of a resource this one refers to.
    pub fn resolve(&self, id: &LogicalId) -> Result<String, AwsError> {
        self.ids
            .lock()
            .ok()
            .and_then(|ids| ids.get(id).cloned())
            .ok_or_else(|| AwsError::new("resolve", format!("{id} does not exist yet")))
    }

    /// The physical ids of several resources this one refers to.
    pub fn resolve_all<'a>(
        &self,
        ids: impl IntoIterator<Item = &'a LogicalId>,
    ) -> Result<Vec<String>, AwsError> {
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
    pub aws_calls: usize,
    pub mutating_calls: usize,
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
pub async fn apply(ctx: Arc<Ctx>, plan: &Plan, reporter: Arc<dyn Reporter>) -> Report {
    let started = Instant::now();
    let calls_before = ctx.aws.calls.snapshot().len();
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

    let doomed: Vec<(&Observed, Action)> = plan
        .changes
        .iter()
        .filter(|c| c.action.destroys())
        .filter_map(|c| Some((*by_physical.get(c.physical_id.as_deref()?)?, c.action)))
        .collect();
    let mut results = destroy(ctx.clone(), &doomed, reporter.clone()).await;

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
    let todo: Vec<&Resource> = plan
        .desired
        .iter()
        .filter(|r| {
            matches!(
                actions.get(&r.id),
                Some(Action::Create | Action::Update | Action::Replace)
            )
        })
        .collect();
    results.extend(
        build(
            ctx.clone(),
            &todo,
            &actions,
            &failed_to_go,
            reporter.clone(),
        )
        .await,
    );

    report_skips(&results, &reporter);
    finish(&ctx, results, calls_before, started)
}

/// Deletes every observed resource of the stack: the `down`.
pub async fn destroy_all(
    ctx: Arc<Ctx>,
    observed: &[Observed],
    reporter: Arc<dyn Reporter>,
) -> Report {
    let started = Instant::now();
    let calls_before = ctx.aws.calls.snapshot().len();
    let doomed: Vec<(&Observed, Action)> = observed.iter().map(|o| (o, Action::Delete)).collect();
    let results = destroy(ctx.clone(), &doomed, reporter.clone()).await;
    report_skips(&results, &reporter);
    finish(&ctx, results, calls_before, started)
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
    ctx: &Ctx,
    results: Vec<ResourceResult>,
    calls_before: usize,
    started: Instant,
) -> Report {
    let calls = ctx.aws.calls.snapshot();
    let new_calls = &calls[calls_before.min(calls.len())..];
    Report {
        results,
        aws_calls: new_calls.len(),
        mutating_calls: new_calls.iter().filter(|c| c.is_mutating()).count(),
        elapsed_seconds: started.elapsed().as_secs_f64(),
    }
}

/// Deletes in AWS's order (see [`Kind::deleted_after`]), as many at once as
/// allowed.
async fn destroy(
    ctx: Arc<Ctx>,
    doomed: &[(&Observed, Action)],
    reporter: Arc<dyn Reporter>,
) -> Vec<ResourceResult> {
    let items: HashMap<String, (Observed, Action)> = doomed
        .iter()
        .map(|(o, a)| (destroy_key(o), ((*o).clone(), *a)))
        .collect();
    let tasks: Vec<dag::Task<String>> = doomed
        .iter()
        .map(|(o, _)| dag::Task {
            key: destroy_key(o),
            deps: doomed
                .iter()
                .filter(|(other, _)| other.spec.kind().deleted_before(o.spec.kind()))
                .map(|(other, _)| destroy_key(other))
                .collect(),
        })
        .collect();
    let items = Arc::new(items);
    let run_items = items.clone();
    let outcomes = dag::walk(tasks, ctx.options.parallelism, move |key: String| {
        let ctx = ctx.clone();
        let items = run_items.clone();
        let reporter = reporter.clone();
        async move {
            let (observed, action) = &items[&key];
            let physical = observed.physical_id.clone();
            let step = Step {
                id: observed.id.clone(),
                kind: observed.spec.kind(),
                action: *action,
                reporter,
            };
            step.emit(Status::Started);
            let result = aws::delete(&ctx, &step, observed).await;
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

/// A doomed resource's key in the walk: physical ids are unique only
/// within a kind, and logical ids are shared by duplicates.
fn destroy_key(o: &Observed) -> String {
    format!("{} {}", o.id, o.physical_id)
}

/// Creates, updates and re-creates in dependency order.
async fn build(
    ctx: Arc<Ctx>,
    todo: &[&Resource],
    actions: &HashMap<&LogicalId, Action>,
    failed_to_go: &HashSet<LogicalId>,
    reporter: Arc<dyn Reporter>,
) -> Vec<ResourceResult> {
    let tasks = todo
        .iter()
        .map(|r| dag::Task {
            key: r.id.clone(),
            deps: r.deps().into_iter().cloned().collect(),
        })
        .collect();
    let items: Arc<HashMap<LogicalId, (Resource, Action)>> = Arc::new(
        todo.iter()
            .map(|r| (r.id.clone(), ((*r).clone(), actions[&r.id])))
            .collect(),
    );
    let failed_to_go = Arc::new(failed_to_go.clone());
    let run_items = items.clone();
    let run_ctx = ctx.clone();
    let outcomes = dag::walk(tasks, ctx.options.parallelism, move |id: LogicalId| {
        let ctx = run_ctx.clone();
        let items = run_items.clone();
        let reporter = reporter.clone();
        let failed_to_go = failed_to_go.clone();
        async move {
            let (resource, action) = &items[&id];
            let step = Step {
                id: id.clone(),
                kind: resource.kind(),
                action: *action,
                reporter,
            };
            if failed_to_go.contains(&id) {
                let error =
                    "the old one could not be deleted, so it was not re-created".to_string();
                step.emit(Status::Failed {
                    error: error.clone(),
                });
                return Err(error);
            }
            step.emit(Status::Started);
            let result = converge(&ctx, &step, resource, *action).await;
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

async fn converge(
    ctx: &Ctx,
    step: &Step,
    resource: &Resource,
    action: Action,
) -> Result<Option<String>, AwsError> {
    match (action, ctx.try_resolve(&resource.id)) {
        (Action::Update, Some(physical)) => aws::update(ctx, step, resource, &physical)
            .await
            .map(|()| Some(physical)),
        _ => aws::create(ctx, step, resource).await.map(Some),
    }
}

fn settle(step: &Step, result: Result<Option<String>, AwsError>) -> Result<(), String> {
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
        Step {
            id: LogicalId::new(&["network", "nat-gateway", "a"]),
            kind: Kind::NatGateway,
            action: Action::Create,
            reporter,
        }
    }

    #[tokio::test]
    async fn a_wait_says_what_it_waits_for_and_gives_up_at_its_deadline() {
        let recorder = Arc::new(Recorder::default());
        let result: Result<(), AwsError> = step(recorder.clone())
            .wait_until(
                "the NAT gateway to become available",
                Duration::from_millis(60),
                Duration::from_millis(10),
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
    async fn a_wait_returns_as_soon_as_the_check_passes() {
        let recorder = Arc::new(Recorder::default());
        let mut polls = 0;
        let value = step(recorder.clone())
            .wait_until(
                "it",
                Duration::from_secs(5),
                Duration::from_millis(1),
                || {
                    polls += 1;
                    let ready = polls == 3;
                    async move { Ok(ready.then_some(42)) }
                },
            )
            .await
            .unwrap();
        assert_eq!(value, 42);
        assert_eq!(recorder.0.lock().unwrap().len(), 2);
    }
}
