//! Limits that fail fast and politely: token buckets per client and per
//! identity (429 with `Retry-After`), the client's address as the trusted
//! proxies in front say it, and a fixed pool for work that costs memory
//! (password hashing: beyond the pool, 503 at once, never a queue that
//! grows).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::ConnectInfo;
use axum::http::request::Parts;

use crate::error::ApiError;

/// So many requests a minute per key, with bursts of `burst`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_minute: u32,
    pub burst: u32,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets by key (a client's address, an e-mail, a CPF).
pub struct RateLimit {
    what: &'static str,
    rate: Rate,
    buckets: Mutex<HashMap<String, Bucket>>,
}

/// Keys remembered at most; beyond, buckets that have refilled go (they
/// would start full anyway), so a flood of new keys cannot grow memory.
const MAX_KEYS: usize = 100_000;

impl RateLimit {
    /// `what` names the limit in the answer ("logins from this address").
    pub fn new(what: &'static str, rate: Rate) -> RateLimit {
        RateLimit {
            what,
            rate,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request's token for `key`, or says when to come back.
    pub fn take(&self, key: &str) -> Result<(), ApiError> {
        self.take_at(key, Instant::now())
    }

    /// Whether `key` has a token left, taking none: for limits that count
    /// only failures (a wrong password), checked before the costly work.
    pub fn check(&self, key: &str) -> Result<(), ApiError> {
        let now = Instant::now();
        let per_second = f64::from(self.rate.per_minute) / 60.0;
        let buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        match buckets.get(key) {
            Some(b) if self.rate.per_minute > 0 => {
                let tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * per_second)
                    .min(f64::from(self.rate.burst.max(1)));
                if tokens >= 1.0 {
                    Ok(())
                } else {
                    Err(self.refusal((1.0 - tokens) / per_second))
                }
            }
            _ => Ok(()),
        }
    }

    /// Takes a token for `key` whatever is left (a failure that happened).
    pub fn charge(&self, key: &str) {
        let _ = self.take_at(key, Instant::now());
    }

    fn take_at(&self, key: &str, now: Instant) -> Result<(), ApiError> {
        if self.rate.per_minute == 0 {
            return Ok(());
        }
        let per_second = f64::from(self.rate.per_minute) / 60.0;
        let burst = f64::from(self.rate.burst.max(1));
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_KEYS && !buckets.contains_key(key) {
            buckets.retain(|_, b| {
                b.tokens + now.duration_since(b.at).as_secs_f64() * per_second < burst
            });
            if buckets.len() >= MAX_KEYS {
                // Every remembered key is busy: the newcomer waits its turn.
                return Err(self.refusal(1.0 / per_second));
            }
        }
        let bucket = buckets.entry(key.to_string()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        bucket.tokens =
            (bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * per_second).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(self.refusal((1.0 - bucket.tokens) / per_second))
        }
    }

    fn refusal(&self, seconds: f64) -> ApiError {
        let retry_after = seconds.ceil().max(1.0) as u64;
        ApiError::TooManyRequests {
            detail: format!(
                "too many {}: at most {} a minute; try again in {retry_after} s",
                self.what, self.rate.per_minute
            ),
            retry_after,
        }
    }
}

/// Where proxies that may speak for the client sit (the gateway's
/// addresses): only their `x-forwarded-for` is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(pub Vec<ipnet::IpNet>);

impl TrustedProxies {
    /// `TRUSTED_PROXIES`: CIDRs separated by commas (on AWS the VPC's, where
    /// the load balancer and the VPC link sit; `127.0.0.1/32` behind
    /// `techctl dev`'s gateway). Empty: no header is believed.
    pub fn parse(text: &str) -> Result<TrustedProxies, String> {
        text.split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| {
                p.parse::<ipnet::IpNet>()
                    .or_else(|_| p.parse::<IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| format!("{p:?} is not an address or a CIDR"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(TrustedProxies)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client: the peer, unless the peer is a trusted proxy, then the
    /// rightmost address of `x-forwarded-for` that is not one (entries to
    /// its left could be anything the client wrote).
    pub fn client(&self, peer: Option<IpAddr>, forwarded_for: Option<&str>) -> Option<IpAddr> {
        let peer = peer?;
        if !self.trusts(peer) {
            return Some(peer);
        }
        let mut client = peer;
        for hop in forwarded_for
            .into_iter()
            .flat_map(|h| h.rsplit(','))
            .map(str::trim)
        {
            match hop.parse::<IpAddr>() {
                Ok(ip) if self.trusts(ip) => client = ip,
                Ok(ip) => return Some(ip),
                Err(_) => break,
            }
        }
        Some(client)
    }
}

/// The caller's address, as `trusted` proxies say it ("unknown" when the
/// server gave no peer address, as in tests that call a router directly).
pub fn client_of(parts: &Parts, trusted: &TrustedProxies) -> String {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let forwarded = parts
        .headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok());
    trusted
        .client(peer, forwarded)
        .map_or_else(|| "unknown".to_string(), |ip| ip.to_string())
}

/// A fixed set of threads for work that takes much memory for a moment
/// (an Argon2 hash: 19 MiB each). At most `threads` run at once and at most
/// `waiting` more wait their turn (holding no memory yet); a job that finds
/// all that taken is refused at once (503). Memory stays bounded by the
/// pool's size whatever the load, and the allocator keeps no more arenas
/// than the pool has threads.
pub struct BoundedPool {
    jobs: std::sync::mpsc::SyncSender<Box<dyn FnOnce() + Send>>,
    /// One per thread and waiting place: a job holds one from admission to
    /// its end.
    permits: std::sync::Arc<tokio::sync::Semaphore>,
    what: &'static str,
}

impl BoundedPool {
    pub fn new(what: &'static str, threads: usize, waiting: usize) -> BoundedPool {
        let threads = threads.max(1);
        let admitted = threads + waiting;
        // Never more jobs admitted than the channel holds: it never blocks.
        let (jobs, queue) = std::sync::mpsc::sync_channel::<Box<dyn FnOnce() + Send>>(admitted);
        let queue = std::sync::Arc::new(Mutex::new(queue));
        for n in 0..threads {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("{what}-{n}"))
                .spawn(move || {
                    loop {
                        let job = match queue.lock() {
                            Ok(q) => q.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a {what} thread");
            }
        }
        BoundedPool {
            jobs,
            permits: std::sync::Arc::new(tokio::sync::Semaphore::new(admitted)),
            what,
        }
    }

    /// Runs `work` on a thread of the pool, or refuses at once when every
    /// thread has a job.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            return Err(ApiError::Busy {
                detail: format!("every {} thread is busy; try again in a moment", self.what),
                retry_after: 1,
            });
        };
        let (done, answer) = tokio::sync::oneshot::channel();
        let job: Box<dyn FnOnce() + Send> = Box::new(move || {
            let _ = done.send(work());
            drop(permit);
        });
        self.jobs.send(job).map_err(|_| {
            ApiError::Internal(anyhow::anyhow!("the {} threads stopped", self.what))
        })?;
        answer
            .await
            .map_err(|_| ApiError::Internal(anyhow::anyhow!("a {} thread stopped", self.what)))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate_and_says_when() {
        let limit = RateLimit::new(
            "logins",
            Rate {
                per_minute: 6,
                burst: 3,
            },
        );
        let start = Instant::now();
        for _ in 0..3 {
            limit.take_at("a", start).unwrap();
        }
        match limit.take_at("a", start).unwrap_err() {
            ApiError::TooManyRequests {
                retry_after,
                detail,
            } => {
                assert_eq!(retry_after, 10, "one token every 10 s");
                assert!(detail.contains("at most 6 a minute"), "{detail}");
            }
            other => panic!("{other:?}"),
        }
        // Another key has its own bucket; ten seconds refill one token.
        limit.take_at("b", start).unwrap();
        limit.take_at("a", start + Duration::from_secs(10)).unwrap();
        assert!(limit.take_at("a", start + Duration::from_secs(11)).is_err());
    }

    #[test]
    fn only_a_trusted_proxy_speaks_for_the_client() {
        let trusted = TrustedProxies::parse("10.0.0.0/16, 127.0.0.1").unwrap();
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        // A client talking straight to the service cannot pick its address.
        assert_eq!(
            trusted.client(ip("203.0.113.9"), Some("1.2.3.4")),
            ip("203.0.113.9")
        );
        // Behind the gateway: the rightmost address the proxies did not add.
        assert_eq!(
            trusted.client(ip("10.0.1.5"), Some("6.6.6.6, 198.51.100.7, 10.0.2.8")),
            ip("198.51.100.7")
        );
        assert_eq!(trusted.client(ip("127.0.0.1"), None), ip("127.0.0.1"));
        assert!(TrustedProxies::parse("not-an-ip").is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_pool_refuses_at_once() {
        let pool = std::sync::Arc::new(BoundedPool::new("hash", 1, 0));
        let gate = std::sync::Arc::new(std::sync::Barrier::new(2));
        let held = {
            let (pool, gate) = (pool.clone(), gate.clone());
            tokio::spawn(async move { pool.run(move || gate.wait()).await })
        };
        // Let the first job reach its thread.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let refused = pool.run(|| 1).await.unwrap_err();
        assert!(
            matches!(refused, ApiError::Busy { retry_after: 1, .. }),
            "{refused:?}"
        );
        gate.wait();
        held.await.unwrap().unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(pool.run(|| 2).await.unwrap(), 2);
    }
}
