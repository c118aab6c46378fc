//! Keeps the services running: each one a child process with its output
//! in its log, started again with a growing pause when it exits, and
//! stopped with SIGTERM (then SIGKILL) when the system stops.
//!
//! The children run in their own process group, so a Ctrl-C on the
//! terminal reaches techctl alone and the shutdown happens in order.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::console::Sink;

/// The first pause before a restart; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A process that ran this long counts as healthy: its next crash starts
/// the pauses afresh.
const STABLE_AFTER: Duration = Duration::from_secs(30);
/// How long a service has to finish its requests after SIGTERM.
const GRACE: Duration = Duration::from_secs(10);

/// What to run for one service.
#[derive(Debug, Clone)]
pub struct Program {
    pub name: String,
    pub binary: PathBuf,
    pub env: Vec<(String, String)>,
}

/// What the supervisor knows of a service right now.
#[derive(Debug, Clone, Default)]
pub struct Status {
    pub pid: Option<u32>,
    pub restarts: u32,
}

pub type Statuses = Arc<Mutex<BTreeMap<String, Status>>>;

#[derive(Debug)]
pub struct Supervisor {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    pub statuses: Statuses,
}

impl Supervisor {
    /// Starts every program; `changed` is called whenever a process
    /// starts or exits.
    pub fn start(
        programs: Vec<(Program, Arc<Sink>)>,
        changed: Arc<dyn Fn(&Statuses) + Send + Sync>,
    ) -> Supervisor {
        let (stop, _) = watch::channel(false);
        let statuses: Statuses = Arc::default();
        let tasks = programs
            .into_iter()
            .map(|(program, sink)| {
                let watch = Watch {
                    stop: stop.subscribe(),
                    statuses: statuses.clone(),
                    changed: changed.clone(),
                };
                tokio::spawn(supervise(program, sink, watch))
            })
            .collect();
        Supervisor {
            stop,
            tasks,
            statuses,
        }
    }

    /// Stops every service and waits until each has exited.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

struct Watch {
    stop: watch::Receiver<bool>,
    statuses: Statuses,
    changed: Arc<dyn Fn(&Statuses) + Send + Sync>,
}

impl Watch {
    fn update(&self, name: &str, f: impl FnOnce(&mut Status)) {
        {
            let mut statuses = self.statuses.lock().unwrap_or_else(|p| p.into_inner());
            f(statuses.entry(name.to_string()).or_default());
        }
        (self.changed)(&self.statuses);
    }

    fn stopping(&self) -> bool {
        *self.stop.borrow()
    }
}

/// The pause before restart number `attempt` (0-based) of a process that
/// keeps failing.
pub fn backoff(attempt: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(2u32.saturating_pow(attempt))
        .min(MAX_BACKOFF)
}

async fn supervise(program: Program, sink: Arc<Sink>, mut watch: Watch) {
    let mut failures = 0u32;
    while !watch.stopping() {
        let started = Instant::now();
        let mut child = match spawn(&program, &sink) {
            Ok(child) => child,
            Err(e) => {
                sink.line(&format!("cannot start {}: {e}", program.binary.display()));
                failures += 1;
                if !pause(&mut watch, backoff(failures - 1)).await {
                    break;
                }
                continue;
            }
        };
        watch.update(&program.name, |s| s.pid = child.id());
        let exited = tokio::select! {
            status = child.wait() => Some(status),
            _ = watch.stop.wait_for(|stop| *stop) => None,
        };
        let Some(status) = exited else {
            terminate(&mut child, &sink).await;
            watch.update(&program.name, |s| s.pid = None);
            break;
        };
        watch.update(&program.name, |s| s.pid = None);
        if watch.stopping() {
            break;
        }
        if started.elapsed() >= STABLE_AFTER {
            failures = 0;
        }
        let wait = backoff(failures);
        failures += 1;
        let how = match status {
            Ok(status) => describe(status),
            Err(e) => format!("was lost ({e})"),
        };
        sink.line(&format!(
            "{} {how}; restarting in {}",
            program.name,
            humantime::format_duration(wait)
        ));
        watch.update(&program.name, |s| s.restarts += 1);
        if !pause(&mut watch, wait).await {
            break;
        }
    }
}

/// Sleeps, unless the system stops first (then answers false).
async fn pause(watch: &mut Watch, wait: Duration) -> bool {
    let slept = tokio::select! {
        _ = tokio::time::sleep(wait) => true,
        _ = watch.stop.wait_for(|stop| *stop) => false,
    };
    slept && !watch.stopping()
}

fn spawn(program: &Program, sink: &Arc<Sink>) -> std::io::Result<Child> {
    let mut child = Command::new(&program.binary)
        .envs(program.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()?;
    if let Some(out) = child.stdout.take() {
        tokio::spawn(pump(out, sink.clone()));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(pump(err, sink.clone()));
    }
    Ok(child)
}

async fn pump(stream: impl AsyncRead + Unpin, sink: Arc<Sink>) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        sink.line(&line);
    }
}

/// SIGTERM, then SIGKILL if the service has not exited within [`GRACE`].
async fn terminate(child: &mut Child, sink: &Sink) {
    if let Some(pid) = child.id() {
        signal(pid, rustix::process::Signal::TERM);
    }
    match tokio::time::timeout(GRACE, child.wait()).await {
        Ok(_) => {}
        Err(_) => {
            sink.line(&format!(
                "did not stop within {}s of SIGTERM; killing it",
                GRACE.as_secs()
            ));
            let _ = child.kill().await;
        }
    }
}

/// Sends `signal` to `pid`; a process already gone is no error.
pub fn signal(pid: u32, signal: rustix::process::Signal) {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw);
    if let Some(pid) = pid {
        let _ = rustix::process::kill_process(pid, signal);
    }
}

/// Whether a process with this pid exists.
pub fn alive(pid: u32) -> bool {
    i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .is_some_and(|pid| rustix::process::test_kill_process(pid).is_ok())
}

fn describe(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        _ => "exited".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_pause_longer_each_time_up_to_a_limit() {
        let pauses: Vec<u128> = (0..10).map(|n| backoff(n).as_millis()).collect();
        assert_eq!(
            pauses,
            [250, 500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
        );
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }

    #[tokio::test]
    async fn a_crashing_program_is_restarted_and_stopped_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let console = crate::console::Console::new(
            dir.path().to_path_buf(),
            5,
            std::sync::Arc::new(crate::console::Plain),
        );
        // Prints, then exits with an error: a service that crashes.
        let script = dir.path().join("crash.sh");
        std::fs::write(&script, "#!/bin/sh\necho started $$\nexit 3\n").unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let program = Program {
            name: "crash".into(),
            binary: script,
            env: vec![],
        };
        let supervisor = Supervisor::start(
            vec![(program, console.sink("crash"))],
            Arc::new(|_: &Statuses| {}),
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let restarts = supervisor
                .statuses
                .lock()
                .unwrap()
                .get("crash")
                .map_or(0, |s| s.restarts);
            if restarts >= 2 {
                break;
            }
            assert!(Instant::now() < deadline, "never restarted twice");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        supervisor.stop().await;
        let log = std::fs::read_to_string(dir.path().join("crash.log")).unwrap();
        assert!(log.matches("started").count() >= 2, "{log}");
        assert!(
            log.contains("crash exited with status 3; restarting in 250ms"),
            "{log}"
        );
        assert!(log.contains("restarting in 500ms"), "{log}");
    }
}
