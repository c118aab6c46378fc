//! Watching an ECS rollout to its end: each look at the service (its
//! deployments, the tasks that stopped, its events) is turned into lines
//! for the person watching and a verdict. A rollout succeeds when the new
//! task definition is the only deployment, completed, with every task
//! running; it fails when the deployment circuit breaker gives up (or has
//! already put the previous revision back), and when the deadline passes.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// One deployment of the service, as `DescribeServices` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    pub id: String,
    /// `PRIMARY` for the newest, `ACTIVE` for one being replaced.
    pub status: String,
    pub task_definition: String,
    pub desired: i32,
    pub running: i32,
    pub pending: i32,
    pub failed_tasks: i32,
    /// `IN_PROGRESS`, `COMPLETED` or `FAILED`.
    pub rollout_state: String,
    pub rollout_reason: String,
}

/// A task that stopped, with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoppedTask {
    pub arn: String,
    pub task_definition: String,
    pub reason: String,
}

/// One look at the service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub deployments: Vec<Deployment>,
    /// Newest first, as ECS lists them: (id, message).
    pub events: Vec<(String, String)>,
    pub stopped: Vec<StoppedTask>,
}

impl Snapshot {
    /// Whether `revision` is the only deployment, completed, with all its
    /// tasks running: nothing is left to watch.
    pub fn is_steady_on(&self, revision: &str) -> bool {
        matches!(self.deployments.as_slice(), [d]
            if d.task_definition == revision
                && d.status == "PRIMARY"
                && d.rollout_state == "COMPLETED"
                && d.running >= d.desired)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Watching,
    Succeeded,
    /// Why, in a sentence.
    Failed(String),
}

#[derive(Debug)]
pub struct Watcher {
    target: String,
    deadline: Instant,
    timeout: Duration,
    seen_events: BTreeSet<String>,
    seen_stopped: BTreeSet<String>,
    last_counts: Option<(i32, i32, i32, i32)>,
    /// Whether the new revision has shown up among the deployments yet: a
    /// look just after the update may not show it.
    seen: bool,
}

impl Watcher {
    /// Watches the rollout of `target` (a task definition ARN) for at most
    /// `timeout` from `now`. Events already there are not news.
    pub fn new(target: &str, timeout: Duration, now: Instant, before: &Snapshot) -> Watcher {
        Watcher {
            target: target.to_string(),
            deadline: now + timeout,
            timeout,
            seen_events: before.events.iter().map(|(id, _)| id.clone()).collect(),
            seen_stopped: before.stopped.iter().map(|t| t.arn.clone()).collect(),
            last_counts: None,
            seen: false,
        }
    }

    /// What is new since the last look, and where the rollout stands.
    pub fn observe(&mut self, snapshot: &Snapshot, now: Instant) -> (Vec<String>, Verdict) {
        let mut lines = Vec::new();
        // ECS lists events newest first; tell them in the order they came.
        for (id, message) in snapshot.events.iter().rev() {
            if self.seen_events.insert(id.clone()) {
                lines.push(format!("event: {message}"));
            }
        }
        for task in &snapshot.stopped {
            if task.task_definition == self.target && self.seen_stopped.insert(task.arn.clone()) {
                lines.push(format!(
                    "task {} stopped: {}",
                    short(&task.arn),
                    task.reason
                ));
            }
        }
        let ours = snapshot
            .deployments
            .iter()
            .find(|d| d.task_definition == self.target);
        if let Some(d) = ours {
            let counts = (d.desired, d.running, d.pending, d.failed_tasks);
            if self.last_counts != Some(counts) {
                self.last_counts = Some(counts);
                lines.push(format!(
                    "desired {}, running {}, pending {}{}",
                    d.desired,
                    d.running,
                    d.pending,
                    if d.failed_tasks > 0 {
                        format!(", {} failed", d.failed_tasks)
                    } else {
                        String::new()
                    }
                ));
            }
        }
        self.seen |= ours.is_some();
        let verdict = self.verdict(snapshot, ours, now);
        (lines, verdict)
    }

    fn verdict(&self, snapshot: &Snapshot, ours: Option<&Deployment>, now: Instant) -> Verdict {
        match ours {
            Some(d) if d.rollout_state == "FAILED" => {
                return Verdict::Failed(format!(
                    "the deployment circuit breaker stopped the rollout: {}",
                    reason_or(&d.rollout_reason, d.failed_tasks)
                ));
            }
            Some(d)
                if d.status == "PRIMARY"
                    && d.rollout_state == "COMPLETED"
                    && d.running >= d.desired
                    && snapshot.deployments.len() == 1 =>
            {
                return Verdict::Succeeded;
            }
            None if self.seen && !snapshot.deployments.is_empty() => {
                return Verdict::Failed(
                    "the new task definition is no longer deployed: the circuit breaker rolled the service back".into(),
                );
            }
            _ => {}
        }
        if now >= self.deadline {
            let state = ours.map_or("it never showed among the deployments".to_string(), |d| {
                format!(
                    "{} running of {} desired, {} pending, {} failed",
                    d.running, d.desired, d.pending, d.failed_tasks
                )
            });
            return Verdict::Failed(format!(
                "the rollout did not finish within {}s ({state})",
                self.timeout.as_secs()
            ));
        }
        Verdict::Watching
    }
}

fn reason_or(reason: &str, failed: i32) -> String {
    if reason.is_empty() {
        format!("{failed} tasks failed to start")
    } else {
        reason.to_string()
    }
}

/// The task id at the end of its ARN.
fn short(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEW: &str = "arn:aws:ecs:us-east-1:123:task-definition/techchallenge-order:8";
    const OLD: &str = "arn:aws:ecs:us-east-1:123:task-definition/techchallenge-order:7";

    fn deployment(td: &str, status: &str, counts: (i32, i32, i32), state: &str) -> Deployment {
        Deployment {
            id: format!("ecs-svc/{status}"),
            status: status.into(),
            task_definition: td.into(),
            desired: counts.0,
            running: counts.1,
            pending: counts.2,
            failed_tasks: 0,
            rollout_state: state.into(),
            rollout_reason: String::new(),
        }
    }

    fn snapshot(deployments: Vec<Deployment>, events: &[(&str, &str)]) -> Snapshot {
        Snapshot {
            deployments,
            events: events
                .iter()
                .map(|(id, m)| (id.to_string(), m.to_string()))
                .collect(),
            stopped: Vec::new(),
        }
    }

    #[test]
    fn a_service_left_mid_rollout_is_not_steady() {
        // A first deploy that stopped after CreateService (say, Auto
        // Scaling refused it): the revision is there but still rolling out.
        let rolling = snapshot(
            vec![deployment(NEW, "PRIMARY", (2, 0, 2), "IN_PROGRESS")],
            &[],
        );
        assert!(!rolling.is_steady_on(NEW));
        let replacing = snapshot(
            vec![
                deployment(NEW, "PRIMARY", (2, 2, 0), "COMPLETED"),
                deployment(OLD, "ACTIVE", (2, 2, 0), "COMPLETED"),
            ],
            &[],
        );
        assert!(!replacing.is_steady_on(NEW));
        let done = snapshot(
            vec![deployment(NEW, "PRIMARY", (2, 2, 0), "COMPLETED")],
            &[],
        );
        assert!(done.is_steady_on(NEW));
        assert!(!done.is_steady_on(OLD));
    }

    #[test]
    fn a_rollout_that_completes_succeeds_and_tells_its_progress() {
        let t0 = Instant::now();
        let before = snapshot(
            vec![deployment(OLD, "PRIMARY", (2, 2, 0), "COMPLETED")],
            &[("e0", "(service order) has reached a steady state.")],
        );
        let mut watcher = Watcher::new(NEW, Duration::from_secs(600), t0, &before);
        let starting = snapshot(
            vec![
                deployment(NEW, "PRIMARY", (2, 0, 2), "IN_PROGRESS"),
                deployment(OLD, "ACTIVE", (2, 2, 0), "COMPLETED"),
            ],
            &[
                (
                    "e1",
                    "(service order) has started 2 tasks: (task a) (task b).",
                ),
                ("e0", "(service order) has reached a steady state."),
            ],
        );
        let (lines, verdict) = watcher.observe(&starting, t0 + Duration::from_secs(5));
        assert_eq!(verdict, Verdict::Watching);
        assert_eq!(
            lines,
            [
                "event: (service order) has started 2 tasks: (task a) (task b).",
                "desired 2, running 0, pending 2"
            ]
        );
        let (lines, verdict) = watcher.observe(&starting, t0 + Duration::from_secs(10));
        assert!(lines.is_empty(), "nothing new: {lines:?}");
        assert_eq!(verdict, Verdict::Watching);
        let done = snapshot(
            vec![deployment(NEW, "PRIMARY", (2, 2, 0), "COMPLETED")],
            &[("e2", "(service order) has reached a steady state.")],
        );
        let (lines, verdict) = watcher.observe(&done, t0 + Duration::from_secs(60));
        assert_eq!(verdict, Verdict::Succeeded);
        assert_eq!(
            lines,
            [
                "event: (service order) has reached a steady state.",
                "desired 2, running 2, pending 0"
            ]
        );
    }

    #[test]
    fn the_circuit_breaker_fails_the_rollout_with_the_tasks_reasons() {
        let t0 = Instant::now();
        let before = snapshot(
            vec![deployment(OLD, "PRIMARY", (2, 2, 0), "COMPLETED")],
            &[],
        );
        let mut watcher = Watcher::new(NEW, Duration::from_secs(600), t0, &before);
        let mut failing = deployment(NEW, "PRIMARY", (2, 0, 0), "FAILED");
        failing.failed_tasks = 3;
        failing.rollout_reason = "ECS deployment circuit breaker: tasks failed to start.".into();
        let mut look = snapshot(
            vec![failing, deployment(OLD, "ACTIVE", (2, 2, 0), "COMPLETED")],
            &[],
        );
        look.stopped.push(StoppedTask {
            arn: "arn:aws:ecs:us-east-1:123:task/techchallenge/abc123".into(),
            task_definition: NEW.into(),
            reason: "Essential container in task exited (exit code 2: DATABASE_URL is not set)"
                .into(),
        });
        let (lines, verdict) = watcher.observe(&look, t0 + Duration::from_secs(90));
        assert!(
            lines.contains(&"task abc123 stopped: Essential container in task exited (exit code 2: DATABASE_URL is not set)".to_string()),
            "{lines:?}"
        );
        assert_eq!(
            verdict,
            Verdict::Failed(
                "the deployment circuit breaker stopped the rollout: ECS deployment circuit breaker: tasks failed to start.".into()
            )
        );

        // Seen rolling out, then gone: the breaker put the old revision back.
        let mut late = Watcher::new(NEW, Duration::from_secs(600), t0, &before);
        let rolling = snapshot(
            vec![
                deployment(NEW, "PRIMARY", (2, 0, 2), "IN_PROGRESS"),
                deployment(OLD, "ACTIVE", (2, 2, 0), "COMPLETED"),
            ],
            &[],
        );
        let rolled_back = snapshot(
            vec![deployment(OLD, "PRIMARY", (2, 2, 0), "COMPLETED")],
            &[],
        );
        assert_eq!(late.observe(&rolling, t0).1, Verdict::Watching);
        let (_, verdict) = late.observe(&rolled_back, t0 + Duration::from_secs(30));
        assert!(matches!(verdict, Verdict::Failed(why) if why.contains("rolled the service back")));

        // Never seen at all (a look too early): wait, up to the deadline.
        let mut early = Watcher::new(NEW, Duration::from_secs(60), t0, &before);
        assert_eq!(early.observe(&rolled_back, t0).1, Verdict::Watching);
        let (_, verdict) = early.observe(&rolled_back, t0 + Duration::from_secs(60));
        assert_eq!(
            verdict,
            Verdict::Failed(
                "the rollout did not finish within 60s (it never showed among the deployments)"
                    .into()
            )
        );
    }

    #[test]
    fn a_stuck_rollout_fails_at_its_deadline_with_the_counts() {
        let t0 = Instant::now();
        let before = snapshot(
            vec![deployment(OLD, "PRIMARY", (1, 1, 0), "COMPLETED")],
            &[],
        );
        let mut watcher = Watcher::new(NEW, Duration::from_secs(300), t0, &before);
        let stuck = snapshot(
            vec![
                deployment(NEW, "PRIMARY", (1, 0, 1), "IN_PROGRESS"),
                deployment(OLD, "ACTIVE", (1, 1, 0), "COMPLETED"),
            ],
            &[],
        );
        let (_, verdict) = watcher.observe(&stuck, t0 + Duration::from_secs(299));
        assert_eq!(verdict, Verdict::Watching);
        let (_, verdict) = watcher.observe(&stuck, t0 + Duration::from_secs(300));
        assert_eq!(
            verdict,
            Verdict::Failed(
                "the rollout did not finish within 300s (0 running of 1 desired, 1 pending, 0 failed)".into()
            )
        );
    }
}
