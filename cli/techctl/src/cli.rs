//! The command line, and nothing else: clap definitions that `commands`
//! resolves into typed settings.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::printer::OutputFormat;

#[derive(Debug, Parser)]
#[command(
    name = "techctl",
    version,
    about = "Provision, deploy and run the ordering system on AWS, straight through the AWS SDK",
    long_about = None,
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// The stack description to work from
    #[arg(
        long,
        global = true,
        default_value = "blueprints/techchallenge.toml",
        value_name = "PATH"
    )]
    pub blueprint: PathBuf,
    /// The blueprint's environment to work on (its [env.NAME] values over
    /// the base ones): a stack of its own, named STACK-NAME
    #[arg(long = "env", global = true, env = "TECHCTL_ENV", value_name = "NAME")]
    pub environment: Option<String>,
    /// AWS region (default: AWS_REGION or the profile's, else the blueprint's)
    #[arg(long, global = true)]
    pub region: Option<String>,
    /// AWS profile from ~/.aws/config
    #[arg(long, global = true)]
    pub profile: Option<String>,
    /// Output for people (text) or for scripts (json)
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// Answer yes to every confirmation
    #[arg(long, short = 'y', global = true)]
    pub yes: bool,
    /// How long `up`, `down`, `deploy` and `keys` wait for a stack another
    /// run has locked (0: fail at once, naming who holds it)
    #[arg(long, global = true, default_value = "0s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub lock_timeout: std::time::Duration,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show what `up` would change, without changing anything
    #[command(
        after_help = "Examples:\n  techctl plan\n  techctl plan --detailed-exitcode   # in CI: 0 nothing to do, 2 changes, 1 error\n  techctl plan --output json | jq .counts"
    )]
    Plan {
        /// Exit 0 when nothing would change and 2 when something would
        #[arg(long)]
        detailed_exitcode: bool,
    },
    /// Create or converge the stack described by the blueprint, then
    /// deploy every service
    #[command(
        after_help = "Examples:\n  techctl up\n  techctl up --no-deploy             # the stack only; deploy later\n  techctl up --yes --parallelism 4"
    )]
    Up {
        /// How many resources to work on at once
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=64))]
        parallelism: u16,
        /// Provision only: leave the services as they are
        #[arg(long)]
        no_deploy: bool,
        #[command(flatten)]
        deploy: DeployArgs,
    },
    /// Build, push and roll out services on ECS Fargate
    #[command(
        after_help = "Examples:\n  techctl deploy order\n  techctl deploy --all --dry-run\n  techctl deploy payment --image REPOSITORY@sha256:DIGEST"
    )]
    Deploy {
        /// The services to deploy (blueprint names)
        #[arg(
            value_name = "SERVICE",
            required_unless_present = "all",
            conflicts_with = "all"
        )]
        services: Vec<String>,
        /// Every service of the blueprint
        #[arg(long)]
        all: bool,
        /// Deploy this prebuilt image (REPOSITORY@sha256:…) instead of building
        #[arg(long, value_name = "REF", conflicts_with = "all")]
        image: Option<String>,
        /// Show the task definition changes and what would be pushed; change nothing
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        deploy: DeployArgs,
    },
    /// Delete everything the stack owns, including what the blueprint no longer lists
    #[command(
        after_help = "Examples:\n  techctl down\n  techctl down --keep-data --yes     # with a final snapshot of the database\n  techctl down --force-delete-secrets"
    )]
    Down {
        /// Delete the stack secret at once instead of scheduling its deletion
        #[arg(long)]
        force_delete_secrets: bool,
        /// Keep the database's data: delete the instance with a final
        /// snapshot and keep its automated backups
        #[arg(long, conflicts_with = "force_delete_secrets")]
        keep_data: bool,
        /// How many resources to work on at once
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=64))]
        parallelism: u16,
    },
    /// What exists, whether it matches the blueprint, and the stack outputs
    #[command(
        after_help = "Examples:\n  techctl status\n  techctl status --output json | jq .outputs"
    )]
    Status,
    /// Check from what AWS holds that every flow the system needs is open
    /// (security groups, routes, IAM) and that nothing else is
    #[command(after_help = "Examples:\n  techctl verify\n  techctl verify --output json")]
    Verify,
    /// Run the whole system on this machine: PostgreSQL, the services, a
    /// gateway and a Mercado Pago sandbox; no AWS account needed
    #[command(
        after_help = "Examples:\n  techctl dev\n  techctl dev --base-port 20000       # every port moved together\n  techctl dev pay ORDER_ID --approve  # pay in the local Mercado Pago sandbox"
    )]
    Dev(DevArgs),
    /// Rotate, list and retire the keys that sign the services' tokens,
    /// with no restart and no failed request
    #[command(subcommand)]
    #[command(
        after_help = "Examples:\n  techctl keys list\n  techctl keys rotate --retire-old\n  techctl keys rotate --local         # the key file of techctl dev"
    )]
    Keys(KeysAction),
    /// Set, list and unset what operators supply to a service (the Mercado
    /// Pago credentials, the first admin's password); values are read from
    /// standard input and never shown
    #[command(subcommand)]
    #[command(
        after_help = "Examples:\n  techctl secrets list\n  techctl secrets set payment mercadopago_access_token < token.txt\n  techctl secrets unset payment mercadopago_webhook_secret"
    )]
    Secrets(SecretsAction),
    /// The events services set aside (dead letters): list them with why,
    /// show one, and send them back once the cause is fixed
    #[command(subcommand)]
    #[command(
        after_help = "Examples:\n  techctl events list\n  techctl events show payment MESSAGE_ID\n  techctl events redrive payment --all  # once the cause is fixed\n  techctl events list --local           # the bus of techctl dev"
    )]
    Events(EventsAction),
    /// A service's logs, oldest first, JSON lines rendered readably with
    /// their request id: from CloudWatch Logs, or with --local from
    /// `techctl dev`
    #[command(
        after_help = "Examples:\n  techctl logs order --since 30m\n  techctl logs payment --follow --filter webhook\n  techctl logs product --local --follow\n  techctl logs order --aws             # AWS's, where techctl dev also runs"
    )]
    Logs {
        /// The service (blueprint name)
        service: String,
        /// How far back: 30s, 10m, 2h, 1d
        #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
        since: std::time::Duration,
        /// Keep printing what comes, until Ctrl-C
        #[arg(long, short = 'f')]
        follow: bool,
        /// Only the lines holding this text, as written
        #[arg(long, value_name = "TEXT")]
        filter: Option<String>,
        /// The logs of `techctl dev` in this folder (.techctl/logs/); the
        /// default while it runs here
        #[arg(long)]
        local: bool,
        /// CloudWatch Logs even while `techctl dev` runs in this folder
        #[arg(long, conflicts_with = "local")]
        aws: bool,
    },
    /// Break the stack's lock, left by a run that died (confirm, or --yes)
    #[command(after_help = "Examples:\n  techctl unlock 3f2a9c1e-0b7d-4c55-9a07-1c2b3d4e5f60")]
    Unlock {
        /// The lock's id, as the refused run named it
        lock_id: String,
    },
    /// Print the completion script of a shell
    #[command(
        after_help = "Examples:\n  techctl completions bash > ~/.local/share/bash-completion/completions/techctl\n  techctl completions zsh > ~/.zfunc/_techctl\n  techctl completions fish > ~/.config/fish/completions/techctl.fish"
    )]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), or write one per command into a folder
    #[command(
        after_help = "Examples:\n  techctl man | man -l -\n  techctl man --dir /usr/local/share/man/man1"
    )]
    Man {
        /// Write techctl.1 and a page per command (techctl-plan.1, ...) here
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum EventsAction {
    /// The dead letters of every consuming service, or of one: the event,
    /// its order, how long ago and why
    List {
        /// Only this service
        service: Option<String>,
        #[command(flatten)]
        place: EventsArgs,
    },
    /// One dead letter whole: the event as it was sent, and why it was set
    /// aside
    Show {
        service: String,
        /// Its id, as `list` shows it
        id: String,
        #[command(flatten)]
        place: EventsArgs,
    },
    /// Send dead letters back to the service's queue once their cause is
    /// fixed (a consumer upgraded to read their version, say); the service
    /// applies each once, whatever happened before
    Redrive {
        service: String,
        /// The ids to send back, as `list` shows them
        #[arg(
            value_name = "ID",
            required_unless_present = "all",
            conflicts_with = "all"
        )]
        ids: Vec<String>,
        /// Every dead letter of the service
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        place: EventsArgs,
    },
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// The events of `techctl dev` running in this folder instead of the
    /// stack's queues
    #[arg(long)]
    pub local: bool,
}

#[derive(Debug, Subcommand)]
pub enum SecretsAction {
    /// Set NAME of SERVICE to the value read from standard input (a prompt
    /// that does not echo on a terminal); never from an argument, which
    /// would land in the shell's history
    Set {
        /// The service (blueprint name)
        service: String,
        /// The value's name, such as mercadopago_access_token
        name: String,
        #[command(flatten)]
        store: SecretStoreArgs,
    },
    /// The names each service's secret holds and when they were set;
    /// never their values
    List {
        /// Only this service
        service: Option<String>,
        #[command(flatten)]
        store: SecretStoreArgs,
    },
    /// Remove NAME from SERVICE's secret
    Unset {
        service: String,
        name: String,
        #[command(flatten)]
        store: SecretStoreArgs,
    },
}

#[derive(Debug, Args)]
pub struct SecretStoreArgs {
    /// Work on what `techctl dev` in this folder hands its services
    /// (.techctl/secrets.json) instead of the stack's secrets
    #[arg(long)]
    pub local: bool,
}

#[derive(Debug, Subcommand)]
pub enum KeysAction {
    /// Make a new signing key; the keys before it stay published, so every
    /// token they signed keeps working
    Rotate {
        /// Also retire the keys whose tokens have all expired
        #[arg(long)]
        retire_old: bool,
        #[command(flatten)]
        store: KeyStoreArgs,
    },
    /// Take out of the JWK set the keys whose tokens have all expired (or
    /// the one given): services refuse their tokens from then on
    Retire {
        /// Retire this key now, even if tokens it signed may still be alive
        // A kid is a base64url thumbprint, which may begin with `-`.
        #[arg(long, value_name = "KID", allow_hyphen_values = true)]
        kid: Option<String>,
        #[command(flatten)]
        store: KeyStoreArgs,
    },
    /// Every key: its kid, when it was made, its role, and until when
    /// tokens it signed can be alive
    List {
        #[command(flatten)]
        store: KeyStoreArgs,
    },
}

#[derive(Debug, Args)]
pub struct KeyStoreArgs {
    /// Work on the key file of `techctl dev` in this folder
    /// (.techctl/keys.json) instead of the stack secret
    #[arg(long)]
    pub local: bool,
}

/// How services are deployed, by `deploy` and at the end of `up`.
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// Push images to this registry (URL or host:port) instead of the
    /// stack's ECR repositories
    #[arg(long, value_name = "URL")]
    pub registry: Option<String>,
    /// Do not watch the rollout: return once ECS has the new revision
    #[arg(long)]
    pub no_wait: bool,
    /// How long a rollout may take before it is rolled back
    #[arg(long, default_value = "15m", value_parser = humantime::parse_duration)]
    pub timeout: std::time::Duration,
    /// The repository holding the services' source
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub source: PathBuf,
    /// Use the services' binaries as they are built, and build nothing: a
    /// CI job builds them in a step that holds no AWS credentials, so no
    /// build script ever runs with them
    #[arg(long)]
    pub no_build: bool,
    /// The cargo profile the services are built in (dev builds faster,
    /// unoptimised)
    #[arg(long, value_name = "NAME", default_value = "release", env = "TECHCTL_CARGO_PROFILE", value_parser = cargo_profile)]
    pub cargo_profile: image::build::Profile,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct DevArgs {
    #[command(subcommand)]
    pub action: Option<DevAction>,
    /// Port of the gateway, where clients call the system
    #[arg(long, default_value_t = 8080)]
    pub gateway_port: u16,
    /// Put every port in one block from here: the gateway, the Mercado Pago
    /// sandbox, PostgreSQL, then the services in blueprint order
    #[arg(long, value_name = "PORT")]
    pub base_port: Option<u16>,
    /// The repository holding the services' source (default: the one
    /// around the working directory)
    #[arg(long, value_name = "DIR")]
    pub source: Option<PathBuf>,
    /// Run the service binaries already built instead of calling cargo
    #[arg(long)]
    pub no_build: bool,
    /// The cargo profile the services are built in (dev builds faster,
    /// unoptimised)
    #[arg(long, value_name = "NAME", default_value = "release", env = "TECHCTL_CARGO_PROFILE", value_parser = cargo_profile)]
    pub cargo_profile: image::build::Profile,
}

fn cargo_profile(name: &str) -> Result<image::build::Profile, String> {
    image::build::Profile::named(name).map_err(|e| e.to_string())
}

#[derive(Debug, Subcommand)]
pub enum DevAction {
    /// Approve or reject the payment of an order, as its customer paying
    /// the QR code at Mercado Pago would; the payment service gets the
    /// signed webhook
    Pay {
        /// The order whose QR code is paid
        order_id: String,
        #[command(flatten)]
        decision: Decision,
    },
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct Decision {
    /// The payment goes through
    #[arg(long)]
    pub approve: bool,
    /// Mercado Pago rejects the payment
    #[arg(long)]
    pub reject: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kid_that_begins_with_a_hyphen_is_read_as_the_kid() {
        let cli = Cli::try_parse_from(["techctl", "keys", "retire", "--kid", "-8Qx_z"]).unwrap();
        let Command::Keys(KeysAction::Retire { kid, .. }) = cli.command else {
            panic!("{cli:?}");
        };
        assert_eq!(kid.as_deref(), Some("-8Qx_z"));
    }
}
