//! Polls that land together share one call. Two NAT gateways (one per
//! zone) made at the same moment are waited for on the same schedule: one
//! `DescribeNatGateways` naming both answers both, where AWS's API takes
//! several ids.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::OnceCell;

use crate::AwsError;

/// How long a poll waits for others to join it: nothing next to AWS's
/// seconds, plenty for waits that started together.
const GATHER: Duration = Duration::from_millis(50);

/// The answer of one shared call: each id's value (absent: not found).
type Answers<V> = Result<HashMap<String, V>, AwsError>;

/// One call in the making: the ids gathered so far and, once made, its
/// answer.
struct Round<V> {
    ids: Mutex<Vec<String>>,
    answer: OnceCell<Answers<V>>,
}

/// Shares the calls of concurrent polls of one kind.
pub struct Batch<V> {
    gathering: Mutex<Option<Arc<Round<V>>>>,
}

impl<V> Default for Batch<V> {
    fn default() -> Self {
        Batch {
            gathering: Mutex::new(None),
        }
    }
}

impl<V> std::fmt::Debug for Batch<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Batch")
    }
}

impl<V: Clone> Batch<V> {
    /// `id`'s value from a call `fetch` makes for every id polled within
    /// the same moment; `None` when the answer does not list it.
    pub async fn poll<F, Fut>(&self, id: &str, fetch: F) -> Result<Option<V>, AwsError>
    where
        F: FnOnce(Vec<String>) -> Fut,
        Fut: Future<Output = Answers<V>>,
    {
        let round = {
            let mut gathering = self.gathering.lock().unwrap_or_else(|e| e.into_inner());
            let round = gathering
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
                {
                    let mut gathering = self.gathering.lock().unwrap_or_else(|e| e.into_inner());
                    if gathering.as_ref().is_some_and(|g| Arc::ptr_eq(g, &round)) {
                        *gathering = None;
                    }
                }
                let mut ids = round.ids.lock().unwrap_or_else(|e| e.into_inner()).clone();
                ids.sort();
                ids.dedup();
                fetch(ids).await
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
            batch.poll("nat-a", fetch(calls.clone())),
            batch.poll("nat-b", fetch(calls.clone())),
            batch.poll("gone", fetch(calls.clone())),
        );
        assert_eq!(a.unwrap().as_deref(), Some("nat-a: available"));
        assert_eq!(b.unwrap().as_deref(), Some("nat-b: available"));
        assert_eq!(gone.unwrap(), None);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        batch.poll("nat-a", fetch(calls.clone())).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }
}
