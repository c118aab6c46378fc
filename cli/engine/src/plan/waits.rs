//! The longest chain of dependent waits in the stack's graph: resources AWS
//! takes minutes to make ready, each needing the one before it. However
//! wide `up` runs, it cannot finish on real AWS sooner than this chain.

use std::collections::HashMap;

use serde::Serialize;

use super::{Kind, LogicalId, Resource};

/// Typical minutes AWS takes to make a resource of this kind ready; the
/// rest are ready within seconds.
pub fn typical_wait_minutes(kind: Kind) -> u32 {
    match kind {
        Kind::NatGateway => 2,
        Kind::LoadBalancer => 3,
        Kind::VpcLink => 3,
        Kind::DbInstance => 10,
        _ => 0,
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct WaitChain {
    /// The waiting resources on the chain, first to last.
    pub waits: Vec<LogicalId>,
    pub typical_minutes: u32,
    /// Every resource in the graph, for scale.
    pub resources: usize,
}

/// The chain of dependent waits with the most typical minutes.
pub fn longest(desired: &[Resource]) -> WaitChain {
    let by_id: HashMap<&LogicalId, &Resource> = desired.iter().map(|r| (&r.id, r)).collect();
    let mut memo: HashMap<&LogicalId, (u32, Vec<LogicalId>)> = HashMap::new();
    let mut best = (0, Vec::new());
    for r in desired {
        let found = heaviest(r, &by_id, &mut memo);
        if found.0 > best.0 || (found.0 == best.0 && found.1.len() > best.1.len()) {
            best = found;
        }
    }
    WaitChain {
        waits: best.1,
        typical_minutes: best.0,
        resources: desired.len(),
    }
}

/// The heaviest chain of waits ending at `r` (the graph is acyclic).
fn heaviest<'a>(
    r: &'a Resource,
    by_id: &HashMap<&'a LogicalId, &'a Resource>,
    memo: &mut HashMap<&'a LogicalId, (u32, Vec<LogicalId>)>,
) -> (u32, Vec<LogicalId>) {
    if let Some(found) = memo.get(&r.id) {
        return found.clone();
    }
    let mut before = (0, Vec::new());
    for dep in r.deps() {
        if let Some(d) = by_id.get(dep) {
            let chain = heaviest(d, by_id, memo);
            if chain.0 > before.0 || (chain.0 == before.0 && chain.1.len() > before.1.len()) {
                before = chain;
            }
        }
    }
    let own = typical_wait_minutes(r.kind());
    let (mut minutes, mut chain) = before;
    if own > 0 {
        minutes += own;
        chain.push(r.id.clone());
    }
    memo.insert(&r.id, (minutes, chain.clone()));
    (minutes, chain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::expand;

    #[test]
    fn the_database_waits_behind_nothing_slow_and_the_gateway_behind_the_balancer() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../blueprints/techchallenge.toml"
        );
        let bp = blueprint::load(std::path::Path::new(path)).unwrap();
        let chain = longest(&expand::desired(&bp));
        // The RDS instance (10 min) needs only fast resources before it;
        // the VPC link and the load balancer run side by side.
        assert_eq!(chain.typical_minutes, 10, "{chain:?}");
        assert_eq!(chain.waits, vec![expand::ids::db_instance()]);
        assert!(chain.resources > 70, "{}", chain.resources);
    }
}
