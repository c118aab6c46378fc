//! An in-memory cloud behind the engine's `Provider` trait. It records every
//! call in order (when it started and when it finished), how many ran at
//! once, and can be told to fail or to be slow for chosen resources.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use engine::apply::{CallCount, Ctx, Event, Provider, Reporter, Step};
use engine::plan::expand::{TAG_STACK, tags};
use engine::plan::{LogicalId, Observed, Resource};

/// One thing the provider was asked to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    Create(String),
    Update(String),
    Delete(String),
}

/// When a call began and ended, in the order of the provider's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mark {
    Start(Call),
    End(Call),
}

#[derive(Default)]
pub struct Fake {
    stack: String,
    /// What exists, by physical id.
    held: Mutex<BTreeMap<String, Observed>>,
    next_id: AtomicUsize,
    log: Mutex<Vec<Mark>>,
    running: AtomicUsize,
    most_at_once: AtomicUsize,
    failing: Mutex<HashSet<String>>,
    slow: Mutex<HashMap<String, Duration>>,
}

impl Fake {
    pub fn new(stack: &str) -> Arc<Fake> {
        Arc::new(Fake {
            stack: stack.to_string(),
            ..Fake::default()
        })
    }

    /// Every operation on `id` fails from now on.
    pub fn fail(&self, id: &str) {
        self.failing.lock().unwrap().insert(id.to_string());
    }

    pub fn heal(&self, id: &str) {
        self.failing.lock().unwrap().remove(id);
    }

    /// Every operation on `id` takes `delay`, as a NAT gateway or a
    /// database does.
    pub fn slow(&self, id: &str, delay: Duration) {
        self.slow.lock().unwrap().insert(id.to_string(), delay);
    }

    /// What the fake holds now.
    pub fn held(&self) -> Vec<Observed> {
        self.held.lock().unwrap().values().cloned().collect()
    }

    pub fn log(&self) -> Vec<Mark> {
        self.log.lock().unwrap().clone()
    }

    /// The calls in the order they started.
    pub fn calls(&self) -> Vec<Call> {
        self.log()
            .into_iter()
            .filter_map(|m| match m {
                Mark::Start(c) => Some(c),
                Mark::End(_) => None,
            })
            .collect()
    }

    pub fn most_at_once(&self) -> usize {
        self.most_at_once.load(Ordering::SeqCst)
    }

    /// Where in the log `mark` first is.
    pub fn position(&self, mark: &Mark) -> usize {
        self.position_from(0, mark)
    }

    /// Where in the log `mark` first is at or after `from` (the log's
    /// length before a run, to look at that run only).
    pub fn position_from(&self, from: usize, mark: &Mark) -> usize {
        let log = self.log();
        log.iter()
            .skip(from)
            .position(|m| m == mark)
            .map(|at| at + from)
            .unwrap_or_else(|| panic!("{mark:?} is not in the log after {from}: {log:#?}"))
    }

    async fn call<T>(
        &self,
        call: Call,
        id: &LogicalId,
        done: impl FnOnce() -> T,
    ) -> Result<T, String> {
        let running = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_at_once.fetch_max(running, Ordering::SeqCst);
        self.log.lock().unwrap().push(Mark::Start(call.clone()));
        // Counted down even when the walk is dropped halfway (an interrupt).
        let _guard = Running(&self.running);
        let delay = self.slow.lock().unwrap().get(id.as_str()).copied();
        tokio::time::sleep(delay.unwrap_or(Duration::from_millis(1))).await;
        let failing = self.failing.lock().unwrap().contains(id.as_str());
        let result = if failing {
            Err(format!("{id} refused by the fake"))
        } else {
            Ok(done())
        };
        self.log.lock().unwrap().push(Mark::End(call));
        result
    }
}

struct Running<'a>(&'a AtomicUsize);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Provider for Fake {
    type Error = String;

    async fn observe(&self, stack: &str) -> Result<Vec<Observed>, String> {
        Ok(self
            .held()
            .into_iter()
            .filter(|o| o.tags.get(TAG_STACK).map(String::as_str) == Some(stack))
            .collect())
    }

    async fn create(&self, _: &Ctx, _: &Step, resource: &Resource) -> Result<String, String> {
        let call = Call::Create(resource.id.to_string());
        self.call(call, &resource.id, || {
            let physical = format!(
                "{}-{}",
                resource.kind().label().replace(' ', "-"),
                self.next_id.fetch_add(1, Ordering::SeqCst)
            );
            let observed = Observed {
                id: resource.id.clone(),
                physical_id: physical.clone(),
                spec: resource.spec.clone(),
                tags: tags(&self.stack, &resource.id),
                state: None,
                attributes: BTreeMap::new(),
            };
            self.held.lock().unwrap().insert(physical.clone(), observed);
            physical
        })
        .await
    }

    async fn update(
        &self,
        _: &Ctx,
        _: &Step,
        resource: &Resource,
        physical: &str,
    ) -> Result<(), String> {
        let call = Call::Update(resource.id.to_string());
        self.call(call, &resource.id, || {
            if let Some(held) = self.held.lock().unwrap().get_mut(physical) {
                held.spec = resource.spec.clone();
                held.tags = tags(&self.stack, &resource.id);
            }
        })
        .await
    }

    async fn delete(&self, _: &Ctx, _: &Step, observed: &Observed) -> Result<(), String> {
        let call = Call::Delete(observed.id.to_string());
        self.call(call, &observed.id, || {
            // Already gone counts as done.
            self.held.lock().unwrap().remove(&observed.physical_id);
        })
        .await
    }

    fn calls(&self) -> CallCount {
        let all = self.calls();
        CallCount {
            all: all.len(),
            mutating: all.len(),
        }
    }
}

/// Keeps every event the walk reports.
#[derive(Default)]
pub struct Events(pub Mutex<Vec<Event>>);

impl Reporter for Events {
    fn report(&self, event: Event) {
        self.0.lock().unwrap().push(event);
    }
}
