//! Error policy.
//!
//! - Library code returns concrete errors: `BlueprintError` for a bad file,
//!   `AwsError` for a failed call, `RegionMismatch` for a confused setup,
//!   `BuildError`, `DevError`, and in this crate `DeployError` and
//!   `StoreError`; their causes are kept, not flattened into text.
//! - Commands turn them into a [`CliError`], which decides the exit code and
//!   prints one paragraph that says what is wrong and how to fix it; never a
//!   backtrace.
//! - Exit codes: 0 done; 1 the user's to fix (blueprint, flags, credentials,
//!   a refused confirmation); 2 `plan --detailed-exitcode` found changes;
//!   3 AWS failed before anything was changed; 4 an apply finished partly;
//!   5 a rollout failed (the service was put back on its previous revision).

use std::process::ExitCode;

use aws::AwsError;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    User(String),
    /// The user's to fix, as another crate's error says it; kept whole, so
    /// its cause is not lost.
    #[error(transparent)]
    Yours(Box<dyn std::error::Error + Send + Sync>),
    #[error("{0}")]
    Aws(AwsError),
    #[error("{0}")]
    Partial(String),
    #[error("{0}")]
    Deploy(String),
}

impl CliError {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            CliError::User(_) | CliError::Yours(_) => ExitCode::from(1),
            CliError::Aws(_) => ExitCode::from(3),
            CliError::Partial(_) => ExitCode::from(4),
            CliError::Deploy(_) => ExitCode::from(5),
        }
    }
}

impl From<AwsError> for CliError {
    fn from(e: AwsError) -> Self {
        if e.code.as_deref() == Some(aws::YOURS_TO_FIX) {
            CliError::User(e.message)
        } else if e.code.as_deref() == Some(aws::secrets::UNUSABLE_VALUE) {
            // Edited by hand into something unusable: the user's to repair.
            CliError::User(e.message)
        } else if e.is_credentials_problem() {
            CliError::User(format!(
                "AWS refused the credentials: {e}\n  configure them with `aws configure`, AWS_PROFILE or --profile, \
                 or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            ))
        } else {
            CliError::Aws(e)
        }
    }
}

impl CliError {
    /// `e` is the user's to fix (a bad blueprint, a missing binary).
    pub fn yours(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        CliError::Yours(Box::new(e))
    }
}

impl From<image::build::BuildError> for CliError {
    fn from(e: image::build::BuildError) -> Self {
        CliError::yours(e)
    }
}

impl From<crate::deploy::DeployError> for CliError {
    fn from(e: crate::deploy::DeployError) -> Self {
        use crate::deploy::DeployError;
        match e {
            DeployError::Yours(message) => CliError::User(message),
            DeployError::YoursBecause(e) => CliError::Yours(e),
            DeployError::Aws(e) => CliError::from(e),
            DeployError::RolledBack(message) => CliError::Deploy(message),
        }
    }
}

impl From<crate::keystore::StoreError> for CliError {
    fn from(e: crate::keystore::StoreError) -> Self {
        match e {
            crate::keystore::StoreError::Yours(message) => CliError::User(message),
            crate::keystore::StoreError::Aws(e) => CliError::from(e),
        }
    }
}

impl From<dev::DevError> for CliError {
    fn from(e: dev::DevError) -> Self {
        CliError::yours(e)
    }
}

/// Exit code of `plan --detailed-exitcode` when something would change.
pub const EXIT_CHANGES: u8 = 2;
