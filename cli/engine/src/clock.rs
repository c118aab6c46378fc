//! AWS's clock: how long its slow resources stay in each state (the table
//! in `aws-clock.toml`), and the pace a wait polls at because of it.
//!
//! The same table gives `plan` its critical path and is played back by
//! testkit's proxy, so the tests wait as AWS would make them wait.

use std::sync::OnceLock;
use std::time::Duration;

use serde::Deserialize;

use crate::plan::Kind;

/// The table's text, shared with the test proxy.
pub const TABLE: &str = include_str!("../aws-clock.toml");

/// Seconds AWS keeps a resource in each slow state.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct AwsClock {
    pub nat_gateway: NatGateway,
    pub load_balancer: LoadBalancer,
    pub vpc_link: VpcLink,
    pub db_instance: DbInstance,
    pub ecs_service: EcsService,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct NatGateway {
    pub pending: u64,
    pub deleting: u64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct LoadBalancer {
    pub provisioning: u64,
    pub interfaces_in_use: u64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct VpcLink {
    pub pending: u64,
    pub deleting: u64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct DbInstance {
    pub creating: u64,
    pub backing_up: u64,
    pub modifying: u64,
    pub deleting: u64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct EcsService {
    pub deployment: u64,
}

impl AwsClock {
    /// The table shipped with techctl.
    pub fn typical() -> &'static AwsClock {
        static CLOCK: OnceLock<AwsClock> = OnceLock::new();
        CLOCK.get_or_init(|| {
            toml::from_str(TABLE).unwrap_or_else(|e| panic!("aws-clock.toml is malformed: {e}"))
        })
    }

    /// How long making a resource of `kind` ready takes; zero for the
    /// kinds AWS makes ready within seconds.
    pub fn create(&self, kind: Kind) -> Duration {
        secs(match kind {
            Kind::NatGateway => self.nat_gateway.pending,
            Kind::LoadBalancer => self.load_balancer.provisioning,
            Kind::VpcLink => self.vpc_link.pending,
            Kind::DbInstance => self.db_instance.creating + self.db_instance.backing_up,
            _ => 0,
        })
    }

    /// How long an update of a resource of `kind` keeps it busy.
    pub fn update(&self, kind: Kind) -> Duration {
        secs(match kind {
            Kind::DbInstance => self.db_instance.modifying,
            _ => 0,
        })
    }

    /// How long deleting a resource of `kind` takes until it no longer
    /// holds what is deleted after it.
    pub fn delete(&self, kind: Kind) -> Duration {
        secs(match kind {
            Kind::NatGateway => self.nat_gateway.deleting,
            Kind::LoadBalancer => self.load_balancer.interfaces_in_use,
            Kind::VpcLink => self.vpc_link.deleting,
            Kind::DbInstance => self.db_instance.deleting,
            _ => 0,
        })
    }
}

fn secs(seconds: u64) -> Duration {
    Duration::from_secs(seconds)
}

/// When a wait polls. The first look is at once (an emulator, or a
/// resource adopted from an interrupted run, may be ready already); then
/// on the approach to the time AWS typically takes (at half, four fifths
/// and just past it, fewer for short waits: no more than two polls a
/// minute), and after that at a steady quarter of it (2 to 30 seconds). A
/// one-minute wait that ends on time costs two calls, a two-minute or a
/// nine-minute one four.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pace {
    /// How long AWS typically takes; zero when nobody knows.
    pub expected: Duration,
    /// When to give up.
    pub deadline: Duration,
    /// The steady interval once the expected time has passed.
    pub every: Duration,
    /// How many of the [`APPROACH`] polls it makes before `expected`.
    approach: usize,
}

/// Fractions of the expected time the polls after the immediate one land
/// at; a short wait uses only the last of them.
const APPROACH: [f64; 3] = [0.5, 0.8, 1.01];

impl Pace {
    /// A wait AWS typically ends after `expected`.
    pub fn expecting(expected: Duration, deadline: Duration) -> Pace {
        let every = (expected / 4).clamp(Duration::from_secs(2), Duration::from_secs(30));
        // Two polls a minute of the expected time, the immediate one included.
        let budget = (expected.as_secs_f64() / 30.0).floor().max(2.0) as usize;
        Pace {
            expected,
            deadline,
            every,
            approach: (budget - 1).min(APPROACH.len()),
        }
    }

    /// A wait of no known length, polled every `every` (a name AWS holds
    /// for a while, a dependency let go of).
    pub fn steady(every: Duration, deadline: Duration) -> Pace {
        Pace {
            expected: Duration::ZERO,
            deadline,
            every,
            approach: 0,
        }
    }

    /// The same pace on a clock `scale` times AWS's (an emulator that plays
    /// AWS's timings back faster); 1 changes nothing.
    pub fn scaled(self, scale: f64) -> Pace {
        if scale == 1.0 || !scale.is_finite() || scale <= 0.0 {
            return self;
        }
        let scale_one = |d: Duration| d.mul_f64(scale);
        Pace {
            expected: scale_one(self.expected),
            deadline: scale_one(self.deadline),
            every: scale_one(self.every).max(Duration::from_millis(20)),
            approach: self.approach,
        }
    }

    /// How long to sleep after poll number `polls` (1 for the first),
    /// `elapsed` into the wait.
    pub fn pause(&self, polls: u32, elapsed: Duration) -> Duration {
        let approach = &APPROACH[APPROACH.len() - self.approach..];
        if let Some(fraction) = approach.get(polls as usize - 1) {
            let target = self.expected.mul_f64(*fraction);
            if target > elapsed {
                return target - elapsed;
            }
        }
        self.every
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_reads_and_the_database_is_the_slowest_to_make() {
        let clock = AwsClock::typical();
        assert_eq!(clock.create(Kind::DbInstance), secs(540));
        assert!(Kind::ALL.iter().all(|k| clock.create(*k) <= secs(540)));
        assert_eq!(clock.delete(Kind::LoadBalancer), secs(90));
        assert_eq!(clock.create(Kind::Subnet), Duration::ZERO);
    }

    /// The times of every poll of a wait that ends at `ready`.
    fn polls(pace: Pace, ready: Duration) -> Vec<Duration> {
        let mut at = Duration::ZERO;
        let mut seen = vec![at];
        while at < ready {
            at += pace.pause(seen.len() as u32, at);
            seen.push(at);
        }
        seen
    }

    #[test]
    fn a_wait_that_ends_on_time_is_seen_within_a_percent_at_two_polls_a_minute() {
        for (expected, calls) in [(60, 2), (90, 3), (120, 4), (180, 4), (540, 4)] {
            let pace = Pace::expecting(secs(expected), secs(3600));
            let seen = polls(pace, secs(expected));
            assert_eq!(seen.len(), calls, "{expected}: {seen:?}");
            let last = seen.last().unwrap().as_secs_f64();
            assert!(
                last <= expected as f64 * 1.01 + 0.001,
                "{expected}: {seen:?}"
            );
            assert!(calls as f64 / (last / 60.0) <= 2.0, "{expected}: {seen:?}");
        }
    }

    #[test]
    fn a_late_resource_is_polled_at_most_twice_a_minute_once_slow() {
        let pace = Pace::expecting(secs(540), secs(3600));
        let seen = polls(pace, secs(1200));
        let minutes = 1200.0 / 60.0;
        assert!(seen.len() as f64 / minutes <= 2.0, "{seen:?}");
        // A short wait keeps its steady polls closer together.
        assert_eq!(Pace::expecting(secs(60), secs(900)).every, secs(15));
    }

    #[test]
    fn a_scaled_pace_is_the_same_schedule_faster() {
        let pace = Pace::expecting(secs(540), secs(3600)).scaled(1.0 / 60.0);
        assert_eq!(pace.expected, secs(9));
        assert_eq!(pace.deadline, secs(60));
        let seen = polls(pace, secs(9));
        assert_eq!(seen.len(), 4, "{seen:?}");
        assert_eq!(
            Pace::expecting(secs(540), secs(3600)).scaled(1.0).every,
            secs(30)
        );
    }
}
