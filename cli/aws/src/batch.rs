//! Polls of one kind share their calls. Two NAT gateways (one per zone)
//! waited for at once are answered by one `DescribeNatGateways` naming
//! both, where AWS's API takes several ids: polls that land together make
//! one call, and every call names each id still being waited for, so a
//! poll that comes a little later reads the answer already fetched rather
//! than making its own. Waits that started a moment apart (a busy machine,
//! one gateway's address allocated later) share as well as those that
//! started together. Such waits also keep one schedule ([`Batch::origin`]),
//! so their polls on the approach to AWS's typical time land together too.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

use crate::AwsError;

/// How long a poll waits for others to join it: nothing next to AWS's
/// seconds, plenty for waits that started together.
const GATHER: Duration = Duration::from_millis(50);

/// How long an id stays in every call after its last poll: longer than
/// any wait's interval, so an id is named until its wait has ended.
const WATCHED: Duration = Duration::from_secs(120);

/// The answer of one shared call: each id's value (absent: not found).
type Answers<V> = Result<HashMap<String, V>, AwsError>;

/// One call in the making: the ids gathered so far and, once made, its
/// answer.
struct Round<V> {
    ids: Mutex<Vec<String>>,
    answer: OnceCell<Answers<V>>,
}

/// The last answer, for the polls that come soon after it.
struct Answered<V> {
    /// When the call was made: the answer is at least this fresh.
    at: Instant,
    asked: HashSet<String>,
    values: HashMap<String, V>,
}

struct State<V> {
    gathering: Option<Arc<Round<V>>>,
    /// Each id polled lately, with the time of its last poll.
    watched: HashMap<String, Instant>,
    /// Each wait begun lately, with the origin of its schedule.
    origins: HashMap<String, Instant>,
    last: Option<Answered<V>>,
}

/// Shares the calls of concurrent polls of one kind.
pub struct Batch<V> {
    state: Mutex<State<V>>,
}

impl<V> Default for Batch<V> {
    fn default() -> Self {
        Batch {
            state: Mutex::new(State {
                gathering: None,
                watched: HashMap::new(),
                origins: HashMap::new(),
                last: None,
            }),
        }
    }
}

impl<V> std::fmt::Debug for Batch<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Batch")
    }
}

impl<V: Clone> Batch<V> {
    /// Where the schedule of a wait for `id` that begins now starts: the
    /// origin of a wait begun no more than `within` ago, so that the two
    /// poll at the same moments, or now.
    pub fn origin(&self, id: &str, within: Duration) -> Instant {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        state
            .origins
            .retain(|_, origin| now.duration_since(*origin) < WATCHED);
        let origin = state
            .origins
            .values()
            .copied()
            .filter(|origin| now.duration_since(*origin) <= within)
            .min()
            .unwrap_or(now);
        state.origins.insert(id.to_string(), origin);
        origin
    }

    /// `id`'s value: from the last call if that named `id` and is no older
    /// than `fresh`, else from a call `fetch` makes for every id polled
    /// within the same moment or still being waited for. `None` when the
    /// answer does not list `id`.
    ///
    /// `fresh` is what the caller accepts as current, half its interval
    /// between polls being a good choice: the state it sees is never
    /// staler than that.
    pub async fn poll<F, Fut>(
        &self,
        id: &str,
        fresh: Duration,
        fetch: F,
    ) -> Result<Option<V>, AwsError>
    where
        F: FnOnce(Vec<String>) -> Fut,
        Fut: Future<Output = Answers<V>>,
    {
        let round = {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            state
                .watched
                .retain(|_, polled| now.duration_since(*polled) < WATCHED);
            state.watched.insert(id.to_string(), now);
            if let Some(last) = &state.last
                && now.duration_since(last.at) <= fresh
                && last.asked.contains(id)
            {
                return Ok(last.values.get(id).cloned());
            }
            let round = state
                .gathering
                .get_or_insert_with(|| {
                    Arc::new(Round {
                        ids: Mutex::new(Vec::new()),
                        answer: OnceCell::new(),
                    })
                })
                .clone();
            round
                .ids
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(id.to_string());
            round
        };
        tokio::time::sleep(GATHER).await;
        let answer = round
            .answer
            .get_or_init(|| async {
                // The round closes: later polls start the next one.
                let mut ids = {
                    let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
                    if state
                        .gathering
                        .as_ref()
                        .is_some_and(|g| Arc::ptr_eq(g, &round))
                    {
                        state.gathering = None;
                    }
                    let mut ids = round.ids.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    ids.extend(state.watched.keys().cloned());
                    ids
                };
                ids.sort();
                ids.dedup();
                let at = Instant::now();
                let answer = fetch(ids.clone()).await;
                if let Ok(values) = &answer {
                    let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
                    if state.last.as_ref().is_none_or(|last| last.at < at) {
                        state.last = Some(Answered {
                            at,
                            asked: ids.into_iter().collect(),
                            values: values.clone(),
                        });
                    }
                }
                answer
            })
            .await;
        match answer {
            Ok(values) => Ok(values.get(id).cloned()),
            Err(e) => Err(e.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn polls_that_land_together_share_one_call_and_later_ones_make_another() {
        let batch: Arc<Batch<String>> = Arc::default();
        let calls = Arc::new(AtomicUsize::new(0));
        let fetch = |calls: Arc<AtomicUsize>| {
            move |ids: Vec<String>| async move {
                calls.fetch_add(1, Ordering::SeqCst);
                Ok(ids
                    .into_iter()
                    .filter(|id| id != "gone")
                    .map(|id| (id.clone(), format!("{id}: available")))
                    .collect())
            }
        };
        let (a, b, gone) = tokio::join!(
            batch.poll("nat-a", Duration::ZERO, fetch(calls.clone())),
            batch.poll("nat-b", Duration::ZERO, fetch(calls.clone())),
            batch.poll("gone", Duration::ZERO, fetch(calls.clone())),
        );
        assert_eq!(a.unwrap().as_deref(), Some("nat-a: available"));
        assert_eq!(b.unwrap().as_deref(), Some("nat-b: available"));
        assert_eq!(gone.unwrap(), None);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        batch
            .poll("nat-a", Duration::ZERO, fetch(calls.clone()))
            .await
            .unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_wait_begun_soon_after_another_keeps_its_schedule_and_a_late_one_its_own() {
        let batch: Batch<String> = Batch::default();
        let within = Duration::from_millis(200);
        let a = batch.origin("nat-a", within);
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(batch.origin("nat-b", within), a);
        std::thread::sleep(within + Duration::from_millis(20));
        let c = batch.origin("nat-c", within);
        assert!(c > a + within, "{c:?} {a:?}");
    }

    #[tokio::test]
    async fn a_poll_a_moment_later_reads_the_answer_that_named_it() {
        let batch: Batch<String> = Batch::default();
        let asked: Arc<Mutex<Vec<Vec<String>>>> = Arc::default();
        let fetch = |asked: Arc<Mutex<Vec<Vec<String>>>>| {
            move |ids: Vec<String>| async move {
                asked.lock().unwrap().push(ids.clone());
                Ok(ids.into_iter().map(|id| (id, "pending".into())).collect())
            }
        };
        let minute = Duration::from_secs(60);
        batch
            .poll("nat-a", minute, fetch(asked.clone()))
            .await
            .unwrap();
        // `nat-b`'s wait started later: its first poll makes a call, which
        // names `nat-a` too, still being waited for.
        batch
            .poll("nat-b", minute, fetch(asked.clone()))
            .await
            .unwrap();
        // So `nat-a`'s next poll needs no call of its own...
        let a = batch.poll("nat-a", minute, fetch(asked.clone())).await;
        assert_eq!(a.unwrap().as_deref(), Some("pending"));
        // ...unless it wants an answer fresher than the last.
        batch
            .poll("nat-a", Duration::ZERO, fetch(asked.clone()))
            .await
            .unwrap();
        let asked = asked.lock().unwrap().clone();
        assert_eq!(
            asked,
            vec![
                vec!["nat-a".to_string()],
                vec!["nat-a".to_string(), "nat-b".to_string()],
                vec!["nat-a".to_string(), "nat-b".to_string()],
            ]
        );
    }
}
