//! The stack lock: one `up`, `down`, `deploy` or `keys` at a time on a
//! stack, held in AWS itself so nobody runs a service for it.
//!
//! The lock is a Secrets Manager secret, `techctl-lock/<stack>`: creating
//! a secret is atomic and refused when the name exists, which is the
//! conditional write a lock needs, in a service every stack already uses
//! (S3 or DynamoDB would be one more to grant and pay for). Its value
//! names the holder: an id, who, on which host and process, running what,
//! since when. Releasing deletes it without a recovery window. A lock left
//! by a run on this host whose process is gone (killed, say) is taken
//! over, so an interrupted `up` is simply run again; one from another host
//! needs `techctl unlock`. The name lies outside
//! the stack's `techctl/<stack>/` secrets, so no plan ever sees it.

use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use crate::{Aws, AwsError};

/// How often a waiting run asks again.
const RETRY_EVERY: Duration = Duration::from_secs(2);
/// AWS keeps a deleted secret's name for a moment: a lock just released
/// cannot be taken again before that.
const NAME_HELD: Duration = Duration::from_secs(30);

/// Who holds the lock.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Holder {
    pub id: String,
    pub who: String,
    pub host: String,
    pub command: String,
    /// RFC 3339.
    pub since: String,
    /// The holding process, on `host`.
    #[serde(default)]
    pub pid: Option<u32>,
}

/// What a run waiting for the lock learns.
pub enum Waiting<'a> {
    /// Another run holds it.
    HeldBy(&'a Holder),
    /// It was held by a run of this host that is gone: taken over.
    TakenOver(&'a Holder),
}

/// This machine's name.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "an unknown host".into())
}

impl Holder {
    /// This process, running `command`.
    pub fn this_process(command: &str) -> Holder {
        let who = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_else(|_| "someone".into());
        let host = hostname();
        let id = std::fs::read_to_string("/proc/sys/kernel/random/uuid")
            .map(|u| u.trim().to_string())
            .unwrap_or_else(|_| {
                let nanos = SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_nanos();
                format!("{nanos:x}-{:x}", std::process::id())
            });
        Holder {
            id,
            who,
            host,
            command: command.to_string(),
            since: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            pid: Some(std::process::id()),
        }
    }

    /// Its run was on this host, and its process is gone.
    fn died_here(&self) -> bool {
        let Some(pid) = self.pid else {
            return false;
        };
        if self.host != hostname() || pid == std::process::id() {
            return false;
        }
        // A process of that number that is not techctl is another one.
        let command = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        !String::from_utf8_lossy(&command).contains("techctl")
    }

    /// `ana@build-7 running techctl deploy order since …`
    pub fn describe(&self) -> String {
        format!(
            "{}@{} running `{}` since {} (lock {})",
            self.who, self.host, self.command, self.since, self.id
        )
    }
}

/// The lock's secret name for `stack`.
pub fn name(stack: &str) -> String {
    engine::plan::expand::lock_secret_name(stack)
}

/// A lock this process holds; [`StackLock::release`] gives it back.
#[derive(Debug)]
pub struct StackLock {
    pub holder: Holder,
    name: String,
}

/// Why the lock was not taken.
#[derive(Debug)]
pub enum LockError {
    /// Another run holds it, still after the time allowed.
    Held(Holder),
    Aws(AwsError),
}

impl From<AwsError> for LockError {
    fn from(e: AwsError) -> Self {
        LockError::Aws(e)
    }
}

/// Takes `stack`'s lock for `holder`, waiting up to `patience` while
/// another run holds it; `told` learns once who that is, and of a dead
/// run's lock taken over.
pub async fn acquire(
    aws: &Aws,
    stack: &str,
    holder: Holder,
    patience: Duration,
    told: impl Fn(Waiting<'_>),
) -> Result<StackLock, LockError> {
    let name = name(stack);
    let value = serde_json::to_string(&holder).expect("a holder serializes");
    let started = Instant::now();
    let mut waited = false;
    let told_of = told;
    loop {
        let created = sdk!(
            "CreateSecret",
            aws.secrets
                .create_secret()
                .name(&name)
                .description(format!(
                    "techctl's lock of the stack {stack}: {}",
                    holder.describe()
                ))
                .secret_string(&value)
                // A retried create (its answer lost) is the same request,
                // not a second one that finds the lock "taken".
                .set_client_request_token(
                    (32..=64)
                        .contains(&holder.id.len())
                        .then(|| holder.id.clone())
                )
                .send()
        );
        match created {
            Ok(_) => return Ok(StackLock { holder, name }),
            Err(e) if e.code.as_deref() == Some("ResourceExistsException") => {
                let Some(other) = read(aws, &name).await? else {
                    // Released between the two calls: try again at once.
                    continue;
                };
                // Ours after all: made by a try whose answer was lost.
                if other.id == holder.id {
                    return Ok(StackLock { holder, name });
                }
                if other.died_here() {
                    told_of(Waiting::TakenOver(&other));
                    delete(aws, &name).await?;
                    continue;
                }
                if started.elapsed() >= patience {
                    return Err(LockError::Held(other));
                }
                if !waited {
                    told_of(Waiting::HeldBy(&other));
                    waited = true;
                }
            }
            // The name of a lock just released, still held by AWS.
            Err(e)
                if e.code.as_deref() == Some("InvalidRequestException")
                    && e.message.contains("scheduled for deletion")
                    && started.elapsed() < patience.max(NAME_HELD) => {}
            Err(e) => return Err(e.into()),
        }
        tokio::time::sleep(RETRY_EVERY).await;
    }
}

/// Who holds `stack`'s lock, if anyone.
pub async fn holder(aws: &Aws, stack: &str) -> Result<Option<Holder>, AwsError> {
    read(aws, &name(stack)).await
}

async fn read(aws: &Aws, name: &str) -> Result<Option<Holder>, AwsError> {
    let value = sdk!(
        "GetSecretValue",
        aws.secrets.get_secret_value().secret_id(name).send()
    );
    match value {
        Ok(v) => Ok(Some(
            v.secret_string()
                .and_then(|s| serde_json::from_str(s).ok())
                .unwrap_or_else(|| Holder {
                    id: "?".into(),
                    who: "an unknown holder".into(),
                    host: "?".into(),
                    command: "?".into(),
                    since: "?".into(),
                    pid: None,
                }),
        )),
        Err(e) if e.is_not_found() || e.message.contains("marked for deletion") => Ok(None),
        Err(e) => Err(e),
    }
}

impl StackLock {
    pub async fn release(self, aws: &Aws) -> Result<(), AwsError> {
        delete(aws, &self.name).await
    }
}

/// Breaks `stack`'s lock if `id` still names it (its holder died); answers
/// the holder it broke.
pub async fn break_lock(aws: &Aws, stack: &str, id: &str) -> Result<Option<Holder>, AwsError> {
    let name = name(stack);
    match read(aws, &name).await? {
        Some(holder) if holder.id == id => {
            delete(aws, &name).await?;
            Ok(Some(holder))
        }
        _ => Ok(None),
    }
}

async fn delete(aws: &Aws, name: &str) -> Result<(), AwsError> {
    let deleted = sdk!(
        "DeleteSecret",
        aws.secrets
            .delete_secret()
            .secret_id(name)
            .force_delete_without_recovery(true)
            .send()
    );
    match deleted {
        Err(e) if e.is_not_found() => Ok(()),
        other => other.map(|_| ()),
    }
}
