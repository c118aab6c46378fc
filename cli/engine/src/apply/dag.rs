//! Runs tasks in dependency order with a cap on how many run at once. A
//! failed task skips everything that depends on it, directly or not, while
//! independent branches carry on.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt::Display;
use std::future::Future;
use std::hash::Hash;

use serde::Serialize;
use tokio::task::JoinSet;

pub struct Task<K> {
    pub key: K,
    /// Keys that must finish first; keys that are not tasks are taken as done.
    pub deps: Vec<K>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", content = "detail", rename_all = "kebab-case")]
pub enum Outcome {
    Done,
    Failed(String),
    /// Not run because the named task failed or was skipped.
    Skipped(String),
}

/// Runs every task once its dependencies are done; returns each task's
/// outcome in the order they finished.
pub async fn walk<K, F, Fut>(tasks: Vec<Task<K>>, limit: usize, run: F) -> Vec<(K, Outcome)>
where
    K: Clone + Eq + Hash + Display + Send + 'static,
    F: Fn(K) -> Fut,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let keys: HashSet<K> = tasks.iter().map(|t| t.key.clone()).collect();
    let mut waiting_on: HashMap<K, usize> = HashMap::new();
    let mut dependants: HashMap<K, Vec<K>> = HashMap::new();
    for task in &tasks {
        let deps: HashSet<&K> = task
            .deps
            .iter()
            .filter(|d| keys.contains(*d) && **d != task.key)
            .collect();
        waiting_on.insert(task.key.clone(), deps.len());
        for dep in deps {
            dependants
                .entry(dep.clone())
                .or_default()
                .push(task.key.clone());
        }
    }
    let mut ready: VecDeque<K> = tasks
        .iter()
        .filter(|t| waiting_on[&t.key] == 0)
        .map(|t| t.key.clone())
        .collect();
    let mut results: Vec<(K, Outcome)> = Vec::new();
    let mut settled: HashSet<K> = HashSet::new();
    let mut running = JoinSet::new();
    let limit = limit.max(1);

    loop {
        while running.len() < limit {
            let Some(key) = ready.pop_front() else { break };
            let fut = run(key.clone());
            running.spawn(async move { (key, fut.await) });
        }
        let Some(joined) = running.join_next().await else {
            break;
        };
        let (key, result) = match joined {
            Ok(done) => done,
            Err(panic) => {
                // A panicking task is a bug; the walk still reports the rest.
                std::panic::resume_unwind(panic.into_panic());
            }
        };
        settled.insert(key.clone());
        match result {
            Ok(()) => {
                for next in dependants.get(&key).into_iter().flatten() {
                    if let Some(n) = waiting_on.get_mut(next) {
                        *n -= 1;
                        if *n == 0 && !settled.contains(next) {
                            ready.push_back(next.clone());
                        }
                    }
                }
                results.push((key, Outcome::Done));
            }
            Err(error) => {
                results.push((key.clone(), Outcome::Failed(error)));
                skip_dependants(&key, &dependants, &mut settled, &mut results);
            }
        }
    }
    // Anything left never became ready: its dependencies form a cycle.
    for task in tasks {
        if !settled.contains(&task.key) {
            results.push((task.key, Outcome::Failed("dependency cycle".into())));
        }
    }
    results
}

fn skip_dependants<K: Clone + Eq + Hash + Display>(
    failed: &K,
    dependants: &HashMap<K, Vec<K>>,
    settled: &mut HashSet<K>,
    results: &mut Vec<(K, Outcome)>,
) {
    let mut stack = vec![failed.clone()];
    while let Some(key) = stack.pop() {
        for next in dependants.get(&key).into_iter().flatten() {
            if settled.insert(next.clone()) {
                results.push((next.clone(), Outcome::Skipped(failed.to_string())));
                stack.push(next.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    fn task(key: &'static str, deps: &[&'static str]) -> Task<&'static str> {
        Task {
            key,
            deps: deps.to_vec(),
        }
    }

    #[tokio::test]
    async fn runs_in_dependency_order_and_skips_after_failure() {
        let order = Arc::new(Mutex::new(Vec::new()));
        let tasks = vec![
            task("vpc", &[]),
            task("subnet", &["vpc"]),
            task("nat", &["subnet"]),
            task("route", &["nat"]),
            task("secret", &[]),
        ];
        let log = order.clone();
        let results = walk(tasks, 4, move |k| {
            let log = log.clone();
            async move {
                log.lock().unwrap().push(k);
                if k == "subnet" {
                    Err("boom".to_string())
                } else {
                    Ok(())
                }
            }
        })
        .await;
        let outcome = |k| results.iter().find(|(key, _)| *key == k).unwrap().1.clone();
        assert_eq!(outcome("vpc"), Outcome::Done);
        assert_eq!(outcome("secret"), Outcome::Done);
        assert_eq!(outcome("subnet"), Outcome::Failed("boom".into()));
        assert_eq!(outcome("nat"), Outcome::Skipped("subnet".into()));
        assert_eq!(outcome("route"), Outcome::Skipped("subnet".into()));
        let ran = order.lock().unwrap().clone();
        assert!(ran.iter().position(|k| *k == "vpc") < ran.iter().position(|k| *k == "subnet"));
        assert!(!ran.contains(&"nat"));
    }

    #[tokio::test]
    async fn never_runs_more_than_the_limit_at_once() {
        let live = Arc::new(Mutex::new((0usize, 0usize)));
        let tasks: Vec<_> = ["a", "b", "c", "d", "e", "f", "g"]
            .iter()
            .map(|k| task(k, &[]))
            .collect();
        let gauge = live.clone();
        let results = walk(tasks, 3, move |_| {
            let gauge = gauge.clone();
            async move {
                {
                    let mut g = gauge.lock().unwrap();
                    g.0 += 1;
                    g.1 = g.1.max(g.0);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
                gauge.lock().unwrap().0 -= 1;
                Ok(())
            }
        })
        .await;
        assert_eq!(results.len(), 7);
        assert_eq!(live.lock().unwrap().1, 3);
    }

    #[tokio::test]
    async fn reports_a_cycle_instead_of_hanging() {
        let tasks = vec![task("a", &["b"]), task("b", &["a"]), task("c", &[])];
        let results = walk(tasks, 2, |_| async { Ok(()) }).await;
        let failed: Vec<_> = results
            .iter()
            .filter(|(_, o)| matches!(o, Outcome::Failed(_)))
            .collect();
        assert_eq!(failed.len(), 2);
    }
}
