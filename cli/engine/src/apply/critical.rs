//! The critical path of a walk: the chain of dependent resources whose
//! waits add up to the most time on AWS's clock. However wide the walk
//! runs, it cannot finish sooner; a walk that honours only real
//! dependencies and polls well finishes close to it.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Duration;

use serde::Serialize;

use super::{build_tasks, dag, destroy_key, destroy_tasks, doomed, to_build};
use crate::clock::AwsClock;
use crate::plan::{Action, Kind, LogicalId, Observed, Plan, Resource};

/// One resource on the path and the time AWS typically takes with it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Link {
    pub id: LogicalId,
    pub kind: Kind,
    pub action: Action,
    pub seconds: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CriticalPath {
    /// The slow resources on the path, first to last (those AWS makes
    /// ready within seconds are left out).
    pub chain: Vec<Link>,
    pub seconds: u64,
    /// The resources the walk works on, for scale.
    pub resources: usize,
}

impl CriticalPath {
    pub fn duration(&self) -> Duration {
        Duration::from_secs(self.seconds)
    }

    fn then(mut self, next: CriticalPath) -> CriticalPath {
        self.chain.extend(next.chain);
        self.seconds += next.seconds;
        self.resources += next.resources;
        self
    }
}

/// The critical path of carrying out `plan`: its deletions, then its
/// creations and updates, as [`super::apply`] walks them.
pub fn of_plan(plan: &Plan, clock: &AwsClock) -> CriticalPath {
    of_deletion(&doomed(plan), clock).then(of_building(&to_build(plan), clock))
}

/// The critical path of deleting everything observed: the `down`.
pub fn of_down(observed: &[Observed], clock: &AwsClock) -> CriticalPath {
    let doomed: Vec<(&Observed, Action)> = observed.iter().map(|o| (o, Action::Delete)).collect();
    of_deletion(&doomed, clock)
}

fn of_deletion(doomed: &[(&Observed, Action)], clock: &AwsClock) -> CriticalPath {
    let observed: Vec<&Observed> = doomed.iter().map(|(o, _)| *o).collect();
    let links: HashMap<String, Link> = doomed
        .iter()
        .map(|(o, action)| {
            let kind = o.spec.kind();
            let link = Link {
                id: o.id.clone(),
                kind,
                action: *action,
                seconds: clock.delete(kind).as_secs(),
            };
            (destroy_key(o), link)
        })
        .collect();
    longest(&destroy_tasks(&observed), &links)
}

fn of_building(todo: &[(&Resource, Action)], clock: &AwsClock) -> CriticalPath {
    let resources: Vec<&Resource> = todo.iter().map(|(r, _)| *r).collect();
    let links: HashMap<LogicalId, Link> = todo
        .iter()
        .map(|(r, action)| {
            let kind = r.kind();
            let time = match action {
                Action::Update => clock.update(kind),
                _ => clock.create(kind),
            };
            let link = Link {
                id: r.id.clone(),
                kind,
                action: *action,
                seconds: time.as_secs(),
            };
            (r.id.clone(), link)
        })
        .collect();
    longest(&build_tasks(&resources), &links)
}

/// The heaviest chain through `tasks` (acyclic; dependencies that are not
/// tasks count as done).
fn longest<K: Clone + Eq + Hash>(tasks: &[dag::Task<K>], links: &HashMap<K, Link>) -> CriticalPath {
    let deps: HashMap<&K, &Vec<K>> = tasks.iter().map(|t| (&t.key, &t.deps)).collect();
    let mut memo: HashMap<K, (u64, Vec<K>)> = HashMap::new();
    let mut best: (u64, Vec<K>) = (0, Vec::new());
    for task in tasks {
        let found = heaviest(&task.key, &deps, links, &mut memo, &mut Vec::new());
        if found.0 > best.0 {
            best = found;
        }
    }
    let chain: Vec<Link> = best
        .1
        .iter()
        .filter_map(|k| links.get(k))
        .filter(|l| l.seconds > 0)
        .cloned()
        .collect();
    CriticalPath {
        chain,
        seconds: best.0,
        resources: tasks.len(),
    }
}

fn heaviest<K: Clone + Eq + Hash>(
    key: &K,
    deps: &HashMap<&K, &Vec<K>>,
    links: &HashMap<K, Link>,
    memo: &mut HashMap<K, (u64, Vec<K>)>,
    visiting: &mut Vec<K>,
) -> (u64, Vec<K>) {
    if let Some(found) = memo.get(key) {
        return found.clone();
    }
    // A cycle is the walk's to report; here it only ends the chain.
    if visiting.contains(key) {
        return (0, Vec::new());
    }
    visiting.push(key.clone());
    let mut before: (u64, Vec<K>) = (0, Vec::new());
    for dep in deps.get(key).map(|d| d.as_slice()).unwrap_or_default() {
        if dep != key && deps.contains_key(dep) {
            let chain = heaviest(dep, deps, links, memo, visiting);
            if chain.0 > before.0 {
                before = chain;
            }
        }
    }
    visiting.pop();
    let own = links.get(key).map_or(0, |l| l.seconds);
    let (seconds, mut chain) = before;
    chain.push(key.clone());
    let found = (seconds + own, chain);
    memo.insert(key.clone(), found.clone());
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::expand;

    fn desired() -> Vec<Resource> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../blueprints/techchallenge.toml"
        );
        let bp = blueprint::load(std::path::Path::new(path)).unwrap();
        expand::desired(&bp)
    }

    #[test]
    fn up_from_nothing_waits_for_the_database_alone() {
        let desired = desired();
        let todo: Vec<(&Resource, Action)> = desired.iter().map(|r| (r, Action::Create)).collect();
        let path = of_building(&todo, AwsClock::typical());
        // The RDS instance (9 min) needs only fast resources before it; the
        // VPC link and the load balancer run beside it.
        assert_eq!(path.seconds, 540, "{path:?}");
        let ids: Vec<&LogicalId> = path.chain.iter().map(|l| &l.id).collect();
        assert_eq!(ids, [&expand::ids::db_instance()]);
        assert!(path.resources > 70, "{}", path.resources);
    }

    fn observed(desired: &[Resource]) -> Vec<Observed> {
        desired
            .iter()
            .map(|r| Observed {
                id: r.id.clone(),
                physical_id: format!("p-{}", r.id),
                spec: r.spec.clone(),
                tags: Default::default(),
                state: None,
                attributes: Default::default(),
            })
            .collect()
    }

    #[test]
    fn down_waits_for_what_holds_a_resource_and_nothing_else() {
        let observed = observed(&desired());
        let doomed: Vec<&Observed> = observed.iter().collect();
        let tasks = destroy_tasks(&doomed);
        let deps_of = |id: &str| -> Vec<String> {
            let task = tasks
                .iter()
                .find(|t| t.key.starts_with(&format!("{id} ")))
                .unwrap();
            task.deps
                .iter()
                .map(|d| d.split(' ').next().unwrap().to_string())
                .collect()
        };
        let private = deps_of("network/subnet/private-a");
        assert!(
            private.contains(&"database/instance".to_string()),
            "{private:?}"
        );
        assert!(
            private.contains(&"load-balancing/load-balancer".to_string()),
            "{private:?}"
        );
        let public = deps_of("network/subnet/public-a");
        assert!(
            public.contains(&"network/nat-gateway/a".to_string()),
            "{public:?}"
        );
        assert!(
            !public.contains(&"database/instance".to_string()),
            "{public:?}"
        );
        let link_group = deps_of("network/security-group/vpc-link");
        assert!(
            !link_group.contains(&"database/instance".to_string()),
            "{link_group:?}"
        );
        assert!(
            link_group.contains(&"gateway/vpc-link".to_string()),
            "{link_group:?}"
        );
        // The cluster's tasks hold every group; the secret outlives all.
        assert!(
            link_group.contains(&"ecs/cluster".to_string()),
            "{link_group:?}"
        );
        assert_eq!(deps_of("secret/stack").len(), observed.len() - 1);

        let path = of_down(&observed, AwsClock::typical());
        assert_eq!(path.seconds, 300, "{path:?}");
        assert_eq!(path.chain[0].id, expand::ids::db_instance());
    }
}
