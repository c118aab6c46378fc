//! How many database connections each task may hold.
//!
//! Every service keeps its data on the one RDS instance, and each task
//! opens a pool of up to `DB_POOL_SIZE` connections (service-kit's default
//! is 10). RDS for PostgreSQL refuses connections past `max_connections`,
//! which by default is `LEAST({DBInstanceClassMemory/9531392}, 5000)`
//! (Amazon RDS User Guide, "Quotas and constraints", maximum number of
//! database connections; AWS Prescriptive Guidance, "Tuning PostgreSQL
//! parameters", `max_connections`). Ten per task at the blueprint's maxima is far more
//! than a small class takes, and during a rollout ECS runs the new tasks
//! beside the old ones. So the pools are sized from the instance class: what
//! the class accepts, less what RDS and operators need, shared over every
//! task that can run at once.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Deserialize;

use super::Blueprint;

/// Connections RDS keeps for itself: `superuser_reserved_connections` (3)
/// and the `rdsadmin` session that monitors the instance.
pub const RDS_RESERVED: u32 = 3 + 1;
/// Connections kept for people: a `psql` session, a migration run by hand.
pub const OPERATORS_RESERVED: u32 = 10;
/// `deploy` rolls a service out with a maximum of 200 %: the new tasks
/// start beside the old ones, so a service can run twice its `max`.
pub const ROLLOUT_FACTOR: u32 = 2;
/// The fewest connections a task works with, so that a request and the
/// event relay never wait on each other's only connection.
pub const MIN_POOL_SIZE: u32 = 2;
/// service-kit's default; a task needs no more.
pub const MAX_POOL_SIZE: u32 = 10;

/// Bytes of instance memory per connection in RDS's default formula.
const BYTES_PER_CONNECTION: u64 = 9_531_392;
/// RDS's default `max_connections` never exceeds this.
const MAX_CONNECTIONS_CAP: u64 = 5000;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

const TABLE: &str = include_str!("db_classes.toml");

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Table {
    memory_gib: BTreeMap<String, u32>,
}

fn memory_table() -> &'static BTreeMap<String, u32> {
    static MEMORY: OnceLock<BTreeMap<String, u32>> = OnceLock::new();
    // The table is part of the binary and checked by a test.
    MEMORY.get_or_init(|| {
        toml::from_str::<Table>(TABLE)
            .unwrap_or_else(|e| panic!("bad DB instance class table: {e}"))
            .memory_gib
    })
}

/// `DBInstanceClassMemory`: the class's memory less what the operating
/// system and RDS's own processes keep, which AWS says makes it "always
/// somewhat lower than the memory figures shown in the instance class
/// tables" (RDS User Guide, "Specifying DB parameters") without giving a
/// figure. 256 MiB and 2 % of the memory errs low: it gives 192, 413 and
/// 855 connections at 2, 4 and 8 GiB, where instances are reported to show
/// 198, 413 and 856, and 82 on the 1 GiB classes.
fn instance_class_memory(memory_gib: u32) -> u64 {
    let total = u64::from(memory_gib) * GIB;
    total.saturating_sub(256 * MIB + total / 50)
}

/// RDS for PostgreSQL's default `max_connections` on `instance_class`, or
/// `None` for a class the table does not know.
pub fn max_connections(instance_class: &str) -> Option<u32> {
    let memory = *memory_table().get(instance_class)?;
    let connections =
        (instance_class_memory(memory) / BYTES_PER_CONNECTION).min(MAX_CONNECTIONS_CAP);
    Some(connections as u32)
}

/// Every class the table knows, smallest first.
pub fn known_classes() -> Vec<&'static str> {
    let mut classes: Vec<(&'static str, u32)> = memory_table()
        .iter()
        .map(|(class, memory)| (class.as_str(), *memory))
        .collect();
    classes.sort_by_key(|(class, memory)| (*memory, *class));
    classes.into_iter().map(|(class, _)| class).collect()
}

/// The connections of one instance class, shared over the tasks that can
/// run at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionBudget {
    pub instance_class: String,
    /// The class's default `max_connections`.
    pub max_connections: u32,
    /// Kept for RDS and for operators.
    pub reserved: u32,
    /// Tasks that can run at once: every service at its `max`, rolling out.
    pub peak_tasks: u32,
}

impl ConnectionBudget {
    /// The budget of `instance_class` for `peak_tasks`; `None` for a class
    /// the table does not know.
    pub fn new(instance_class: &str, peak_tasks: u32) -> Option<ConnectionBudget> {
        Some(ConnectionBudget {
            instance_class: instance_class.to_string(),
            max_connections: max_connections(instance_class)?,
            reserved: RDS_RESERVED + OPERATORS_RESERVED,
            peak_tasks,
        })
    }

    /// What the tasks may hold between them.
    pub fn for_tasks(&self) -> u32 {
        self.max_connections.saturating_sub(self.reserved)
    }

    /// Each task's equal share.
    pub fn share(&self) -> u32 {
        self.for_tasks() / self.peak_tasks.max(1)
    }

    /// Whether every task gets at least [`MIN_POOL_SIZE`].
    pub fn fits(&self) -> bool {
        self.share() >= MIN_POOL_SIZE
    }

    /// `DB_POOL_SIZE`: the share, at most [`MAX_POOL_SIZE`].
    pub fn pool_size(&self) -> u32 {
        self.share().clamp(MIN_POOL_SIZE, MAX_POOL_SIZE)
    }

    /// The largest sum of the services' `max` that still fits.
    pub fn most_tasks(&self) -> u32 {
        self.for_tasks() / (ROLLOUT_FACTOR * MIN_POOL_SIZE)
    }
}

/// The smallest known class on which `peak_tasks` fit, of the same family
/// as `instance_class` (`db.t4g` for `db.t4g.micro`) when one is large
/// enough.
pub fn smallest_fitting_class(instance_class: &str, peak_tasks: u32) -> Option<ConnectionBudget> {
    let family = instance_class
        .rsplit_once('.')
        .map_or("", |(family, _)| family);
    let fitting: Vec<ConnectionBudget> = known_classes()
        .into_iter()
        .filter_map(|class| ConnectionBudget::new(class, peak_tasks))
        .filter(ConnectionBudget::fits)
        .collect();
    let same_family = fitting.iter().find(|b| {
        b.instance_class
            .rsplit_once('.')
            .is_some_and(|(f, _)| f == family)
    });
    same_family.or(fitting.first()).cloned()
}

impl Blueprint {
    /// Tasks that can run at once: every service at its `max`, with a
    /// rollout's new tasks beside the old ones.
    pub fn peak_tasks(&self) -> u32 {
        self.services()
            .map(|(_, s)| *s.max.get_ref())
            .fold(0u32, u32::saturating_add)
            .saturating_mul(ROLLOUT_FACTOR)
    }

    /// The database's connections shared over the peak tasks; `None` when
    /// the instance class is not in the table (validation refuses that).
    pub fn connection_budget(&self) -> Option<ConnectionBudget> {
        ConnectionBudget::new(self.database.instance_class.get_ref(), self.peak_tasks())
    }

    /// `DB_POOL_SIZE` for every service's tasks. Validation has made sure
    /// the class is known and the share is at least [`MIN_POOL_SIZE`].
    pub fn db_pool_size(&self) -> u32 {
        self.connection_budget()
            .map_or(MIN_POOL_SIZE, |budget| budget.pool_size())
    }
}
