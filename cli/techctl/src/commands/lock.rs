//! The stack lock around the commands that change a stack (see
//! `aws::lock`), and `techctl unlock`.

use std::process::ExitCode;

use super::{Settings, confirm, prepare};
use crate::error::CliError;
use crate::printer::Printer;
use aws::Aws;
use aws::lock::{Holder, LockError, StackLock, Waiting};

/// The lock this run holds, with the clients that release it.
pub struct Held {
    aws: Aws,
    lock: StackLock,
}

/// Takes the stack's lock for this run, waiting as `--lock-timeout` says.
pub async fn take(settings: &Settings, printer: &Printer) -> Result<Held, CliError> {
    // What the run would refuse without asking AWS is refused before the
    // lock is asked for.
    settings.clock_scale()?;
    let (blueprint, aws) = prepare(settings).await?;
    let stack = blueprint.stack_name().to_string();
    let command = std::iter::once("techctl".to_string())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ");
    let waiting = |news: Waiting<'_>| match news {
        Waiting::HeldBy(other) => printer.warn(&format!(
            "the stack {stack} is locked by {}; waiting up to {}",
            other.describe(),
            humantime::format_duration(settings.lock_timeout)
        )),
        Waiting::TakenOver(other) => printer.warn(&format!(
            "taking over the lock of {}: that run is no longer running on this host",
            other.describe()
        )),
    };
    match aws::lock::acquire(
        &aws,
        &stack,
        Holder::this_process(&command),
        settings.lock_timeout,
        waiting,
    )
    .await
    {
        Ok(lock) => Ok(Held { aws, lock }),
        Err(LockError::Held(other)) => Err(CliError::User(format!(
            "the stack {stack} is locked by {}\n  wait for that run to end (--lock-timeout 10m waits for it); \
             if it died, `techctl unlock {}` breaks the lock",
            other.describe(),
            other.id
        ))),
        Err(LockError::Aws(e)) => Err(e.into()),
    }
}

impl Held {
    /// Gives the lock back; a failure is told, with how to break it.
    pub async fn release(self, printer: &Printer) {
        let id = self.lock.holder.id.clone();
        if let Err(e) = self.lock.release(&self.aws).await {
            printer.warn(&format!(
                "could not release the stack lock ({e}); `techctl unlock {id}` does"
            ));
        }
    }
}

pub async fn unlock(
    settings: &Settings,
    printer: &Printer,
    id: &str,
) -> Result<ExitCode, CliError> {
    let (blueprint, aws) = prepare(settings).await?;
    let stack = blueprint.stack_name();
    let Some(holder) = aws::lock::holder(&aws, stack).await? else {
        printer.text(&format!("The stack {stack} is not locked; nothing to do."));
        return Ok(ExitCode::SUCCESS);
    };
    if holder.id != id {
        return Err(CliError::User(format!(
            "the stack {stack} is locked under another id: by {}\n  break that lock with `techctl unlock {}`, if its run died",
            holder.describe(),
            holder.id
        )));
    }
    confirm(
        settings,
        &format!(
            "Break the lock of {}? Only if that run died: two runs at once can leave the stack half changed.",
            holder.describe()
        ),
        stack,
        "to break it",
    )?;
    match aws::lock::break_lock(&aws, stack, id).await? {
        Some(broken) => {
            printer.json(&serde_json::json!({"stack": stack, "broken": broken}));
            printer.text(&format!("Broke the lock of {}.", broken.describe()));
            Ok(ExitCode::SUCCESS)
        }
        None => Err(CliError::User(format!(
            "the lock of the stack {stack} changed hands meanwhile; `techctl unlock` again with the id it names now"
        ))),
    }
}
