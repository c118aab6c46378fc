//! The stack lock: a second run that would change the stack is refused at
//! once, naming who holds it, or waits with --lock-timeout; a lock whose
//! run died is broken with `techctl unlock` after a confirmation.

use std::time::{Duration, Instant};

use crate::common::*;

const LOCK: &str = "techctl-lock/techchallenge";

/// The lock as another run holds it: Ana's deploy on build-7.
async fn lock(aws: &aws::Aws, id: &str) {
    held_by(
        aws,
        serde_json::json!({
            "id": id, "who": "ana", "host": "build-7",
            "command": "techctl deploy order", "since": "2026-11-30T10:00:00Z"
        }),
    )
    .await;
}

async fn held_by(aws: &aws::Aws, holder: serde_json::Value) {
    aws.secrets
        .create_secret()
        .name(LOCK)
        .secret_string(holder.to_string())
        .send()
        .await
        .unwrap();
}

async fn unlocked(aws: &aws::Aws) {
    aws.secrets
        .delete_secret()
        .secret_id(LOCK)
        .force_delete_without_recovery(true)
        .send()
        .await
        .unwrap();
}

async fn is_locked(aws: &aws::Aws) -> bool {
    aws.secrets
        .get_secret_value()
        .secret_id(LOCK)
        .send()
        .await
        .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_stack_refuses_a_second_run_and_a_dead_run_s_lock_is_broken() {
    let h = Harness::start().await;
    let aws = h.direct().await;
    lock(&aws, "lock-1").await;

    let refused = techctl(&h.proxy.url, &["down", "--yes"]);
    let text = said(&refused);
    assert_eq!(refused.status.code(), Some(1), "{text}");
    assert!(
        text.contains(
            "locked by ana@build-7 running `techctl deploy order` since 2026-11-30T10:00:00Z"
        ),
        "{text}"
    );
    assert!(text.contains("`techctl unlock lock-1`"), "{text}");
    // Reading needs no lock.
    let plan = techctl(&h.proxy.url, &["plan"]);
    assert!(plan.status.success(), "{}", said(&plan));

    let wrong = techctl(&h.proxy.url, &["unlock", "lock-2"]);
    assert_eq!(wrong.status.code(), Some(1));
    assert!(
        said(&wrong).contains("locked under another id"),
        "{}",
        said(&wrong)
    );
    let unconfirmed = techctl(&h.proxy.url, &["unlock", "lock-1"]);
    assert_eq!(unconfirmed.status.code(), Some(1));
    assert!(
        said(&unconfirmed).contains("re-run with --yes"),
        "{}",
        said(&unconfirmed)
    );
    assert!(
        is_locked(&aws).await,
        "nothing was broken without a confirmation"
    );
    let broken = techctl(&h.proxy.url, &["unlock", "lock-1", "--yes"]);
    assert!(broken.status.success(), "{}", said(&broken));
    assert!(said(&broken).contains("Broke the lock of ana@build-7"));

    // Free again: the run takes the lock (AWS still holds the name of the
    // one just broken for a moment) and gives it back when done.
    let down = techctl(&h.proxy.url, &["down", "--yes"]);
    assert!(down.status.success(), "{}", said(&down));
    assert!(!is_locked(&aws).await, "released");

    // Waiting: the holder finishes while the second run waits for it.
    lock(&aws, "lock-3").await;
    let started = Instant::now();
    let waiting = techctl_at(&h.proxy.url)
        .args(["down", "--yes", "--lock-timeout", "60s"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    unlocked(&aws).await;
    let out = tokio::task::spawn_blocking(move || waiting.wait_with_output().unwrap())
        .await
        .unwrap();
    let text = said(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("locked by ana@build-7") && text.contains("waiting up to 1m"),
        "{text}"
    );
    assert!(started.elapsed() < Duration::from_secs(50));
    assert!(!is_locked(&aws).await);

    // A run of this host that was killed left its lock: the next run
    // takes it over, so an interrupted `up` is simply run again.
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let pid = gone.id();
    gone.wait().unwrap();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    held_by(
        &aws,
        serde_json::json!({
            "id": "lock-4", "who": "ana", "host": host.trim(), "pid": pid,
            "command": "techctl up", "since": "2026-11-30T10:00:00Z"
        }),
    )
    .await;
    let down = techctl(&h.proxy.url, &["down", "--yes"]);
    let text = said(&down);
    assert!(down.status.success(), "{text}");
    assert!(text.contains("taking over the lock of ana@"), "{text}");
    assert!(!is_locked(&aws).await);
}
