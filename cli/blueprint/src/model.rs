//! Serde types of the blueprint file. Fields that validation reports on are
//! `Spanned` so a problem can point at its line.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use toml::Spanned;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Blueprint {
    pub stack: Stack,
    pub network: Network,
    pub database: Database,
    pub gateway: Gateway,
    pub logs: Logs,
    pub registry: Registry,
    pub messaging: Messaging,
    #[serde(default)]
    pub tokens: Tokens,
    /// The system's first admin, made by the user service on its start.
    pub admin: Option<Admin>,
    /// The kiosks, each a Mercado Pago point of sale.
    #[serde(default)]
    pub kiosks: Kiosks,
    pub services: Spanned<BTreeMap<Spanned<String>, Service>>,
    /// GitHub Actions may deploy this stack on a push to one branch.
    pub deploy_on_push: Option<DeployOnPush>,
    /// The environment this blueprint was read for (`--env`), if any.
    #[serde(skip)]
    pub environment: Option<crate::environment::Environment>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    /// Their e-mail; the password is set with `techctl secrets set user
    /// admin_password`, never written in the blueprint.
    pub email: Spanned<String>,
}

/// The self-service kiosks: each is a Mercado Pago point of sale, and an
/// order placed at one is paid with a QR made for it there.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Kiosks {
    /// The points of sale's external ids, as made in Mercado Pago.
    #[serde(default)]
    pub points_of_sale: Vec<Spanned<String>>,
}

impl Kiosks {
    /// The external ids, in the blueprint's order.
    pub fn points_of_sale(&self) -> Vec<String> {
        self.points_of_sale
            .iter()
            .map(|p| p.get_ref().clone())
            .collect()
    }
}

/// A GitHub repository whose workflow may deploy the stack: `up` makes a
/// role that GitHub's OIDC tokens for jobs of `repository` running in the
/// GitHub environment `environment` alone can assume, with the rights
/// `techctl` uses and no others.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployOnPush {
    /// `OWNER/REPO`, as GitHub spells it.
    pub repository: Spanned<String>,
    /// The GitHub environment the deploy job runs in, such as `staging`:
    /// its token's subject names it, and its protection rules (the
    /// branches that may deploy, reviewers) are GitHub's to enforce.
    pub environment: Option<Spanned<String>>,
    /// No longer names who may deploy (a job in an environment gets a
    /// token naming the environment, not the branch); refused with the fix.
    pub branch: Option<Spanned<String>>,
}

impl DeployOnPush {
    /// The `sub` claim of GitHub's token for a job of the repository that
    /// runs in the environment.
    pub fn subject(&self) -> String {
        format!(
            "repo:{}:environment:{}",
            self.repository.get_ref(),
            self.environment
                .as_ref()
                .map(|e| e.get_ref().as_str())
                .unwrap_or_default()
        )
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stack {
    pub name: Spanned<String>,
    pub region: Spanned<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    pub vpc_cidr: Spanned<String>,
    pub availability_zones: Spanned<Vec<Spanned<String>>>,
    pub public_subnets: Spanned<Vec<Spanned<String>>>,
    pub private_subnets: Spanned<Vec<Spanned<String>>>,
    pub nat: Spanned<NatMode>,
}

/// How the private subnets reach the internet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum NatMode {
    /// One NAT gateway, in the first availability zone, for every private subnet.
    #[serde(rename = "single")]
    Single,
    /// One NAT gateway per availability zone: the loss of one zone leaves the others their way out.
    #[serde(rename = "per-az")]
    PerAz,
    /// No NAT gateway: private subnets have no route to the internet.
    /// Read so that validation can say why the stack cannot run without
    /// one; a blueprint that asks for it is refused.
    #[serde(rename = "none")]
    Disabled,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Database {
    pub engine_version: Spanned<String>,
    pub instance_class: Spanned<String>,
    pub allocated_storage_gb: Spanned<u32>,
    pub backup_retention_days: Spanned<u32>,
    pub port: Spanned<u16>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gateway {
    pub cors_allow_origins: Spanned<Vec<Spanned<String>>>,
    pub cors_allow_methods: Spanned<Vec<Spanned<String>>>,
    pub cors_allow_headers: Vec<String>,
    pub cors_max_age_seconds: Spanned<u32>,
    /// Requests a second the API takes in steady state (every route of the
    /// stage; API Gateway answers 429 beyond).
    #[serde(default)]
    pub throttle_rate_per_second: Option<Spanned<u32>>,
    /// Requests it takes in a burst.
    #[serde(default)]
    pub throttle_burst: Option<Spanned<u32>>,
}

/// The API's throttling when the blueprint says none.
pub const DEFAULT_THROTTLE_RATE: u32 = 100;
pub const DEFAULT_THROTTLE_BURST: u32 = 200;

impl Gateway {
    /// (requests a second, burst) the stage allows.
    pub fn throttle(&self) -> (u32, u32) {
        (
            self.throttle_rate_per_second
                .as_ref()
                .map_or(DEFAULT_THROTTLE_RATE, |r| *r.get_ref()),
            self.throttle_burst
                .as_ref()
                .map_or(DEFAULT_THROTTLE_BURST, |b| *b.get_ref()),
        )
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Logs {
    pub retention_days: Spanned<u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registry {
    pub keep_images: Spanned<u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Messaging {
    /// Receives a message may go through without being settled (a
    /// consumer that dies on it) before it is dead-lettered.
    pub max_receive_count: Spanned<u32>,
    pub visibility_timeout_seconds: Spanned<u32>,
    /// How long an event that cannot apply yet (a database or Mercado Pago
    /// away, an event ahead of the one it needs) is retried.
    #[serde(default)]
    pub retry_for_seconds: Option<Spanned<u32>>,
}

/// An event that cannot apply yet is retried for an hour by default: an RDS
/// Multi-AZ failover takes one to two minutes, a Mercado Pago incident
/// tens of minutes.
pub const RETRY_FOR_SECONDS: u32 = 3600;
/// The first retry waits this long; each next one twice as long, up to
/// [`RETRY_MAX_DELAY_SECONDS`].
pub const RETRY_FIRST_DELAY_SECONDS: u32 = 1;
pub const RETRY_MAX_DELAY_SECONDS: u32 = 60;

impl Messaging {
    pub fn retry_for_seconds(&self) -> u32 {
        self.retry_for_seconds
            .as_ref()
            .map_or(RETRY_FOR_SECONDS, |s| *s.get_ref())
    }

    /// The receives SQS allows a message before its redrive policy moves
    /// it to the dead-letter queue: every retry within
    /// [`Messaging::retry_for_seconds`] (each a receive on SQS) besides the
    /// unsettled receives, so the queue never cuts the retries short.
    pub fn redrive_max_receive_count(&self) -> u32 {
        self.max_receive_count.get_ref() + retries_within(self.retry_for_seconds())
    }
}

/// How many retries fit in `seconds` with the consumers' backoff.
pub fn retries_within(seconds: u32) -> u32 {
    let (mut waited, mut delay, mut retries) = (0, RETRY_FIRST_DELAY_SECONDS, 0);
    while waited < seconds {
        waited += delay;
        delay = (delay * 2).min(RETRY_MAX_DELAY_SECONDS);
        retries += 1;
    }
    retries
}

/// The JWTs the user service issues. Both settings reach every service
/// through its environment, and `techctl keys` reads them to tell when a
/// retired key's tokens have all expired.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tokens {
    /// How long a token lives (`TOKEN_TTL_SECONDS`); default 3600.
    pub lifetime_seconds: Option<Spanned<u32>>,
    /// How often the services reread the keys (`JWKS_REFRESH_SECONDS`);
    /// default 60.
    pub keys_refresh_seconds: Option<Spanned<u32>>,
}

pub const DEFAULT_TOKEN_LIFETIME_SECONDS: u32 = 3600;
pub const DEFAULT_KEYS_REFRESH_SECONDS: u32 = 60;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub port: Spanned<u16>,
    pub paths: Spanned<Vec<Spanned<String>>>,
    pub cpu: Spanned<u32>,
    pub memory: Spanned<u32>,
    pub desired: Spanned<u32>,
    pub min: Spanned<u32>,
    pub max: Spanned<u32>,
    #[serde(default)]
    pub publishes: Vec<Spanned<String>>,
    #[serde(default)]
    pub consumes: Vec<Spanned<String>>,
}

impl Blueprint {
    pub fn stack_name(&self) -> &str {
        self.stack.name.get_ref()
    }

    pub fn region(&self) -> &str {
        self.stack.region.get_ref()
    }

    pub fn availability_zones(&self) -> Vec<&str> {
        self.network
            .availability_zones
            .get_ref()
            .iter()
            .map(|z| z.get_ref().as_str())
            .collect()
    }

    /// The first admin's e-mail, when the blueprint names one.
    pub fn admin_email(&self) -> Option<&str> {
        self.admin.as_ref().map(|a| a.email.get_ref().as_str())
    }

    /// Service names and definitions, in name order.
    pub fn services(&self) -> impl Iterator<Item = (&str, &Service)> {
        self.services
            .get_ref()
            .iter()
            .map(|(name, service)| (name.get_ref().as_str(), service))
    }

    /// How often `service` rereads the keys, and for the user service how
    /// long its tokens live: the blueprint's `[tokens]`, the same on AWS and in
    /// `techctl dev`.
    pub fn token_environment(&self, service: &str) -> Vec<(String, String)> {
        let policy = self.token_policy();
        let mut env = vec![(
            "JWKS_REFRESH_SECONDS".to_string(),
            policy.refresh.as_secs().to_string(),
        )];
        if service == "user" {
            env.push((
                "TOKEN_TTL_SECONDS".to_string(),
                policy.lifetime.as_secs().to_string(),
            ));
        }
        env
    }

    /// How long tokens live and how often keys are reread.
    pub fn token_policy(&self) -> TokenPolicy {
        let seconds = |field: &Option<Spanned<u32>>, default: u32| {
            std::time::Duration::from_secs(field.as_ref().map_or(default, |v| *v.get_ref()).into())
        };
        TokenPolicy {
            lifetime: seconds(
                &self.tokens.lifetime_seconds,
                DEFAULT_TOKEN_LIFETIME_SECONDS,
            ),
            refresh: seconds(
                &self.tokens.keys_refresh_seconds,
                DEFAULT_KEYS_REFRESH_SECONDS,
            ),
        }
    }

    /// Every service port, for the security-group rules between the ALB and the services.
    pub fn service_ports(&self) -> Vec<u16> {
        self.services().map(|(_, s)| *s.port.get_ref()).collect()
    }
}

/// Seconds past `exp` the services still accept a token (service-kit's
/// verifier tolerates this much clock skew).
pub const VERIFY_LEEWAY: std::time::Duration = std::time::Duration::from_secs(30);

/// How long a token can outlive the moment its key stopped signing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenPolicy {
    /// The longest a token lives (the user service's `TOKEN_TTL_SECONDS`).
    pub lifetime: std::time::Duration,
    /// How often the services reread the keys (`JWKS_REFRESH_SECONDS`): a
    /// user service may sign with the old key until its next reread.
    pub refresh: std::time::Duration,
}

impl TokenPolicy {
    /// After a key stops signing, the last token it signs can live this
    /// long: a reread interval, a token lifetime and the verifiers' leeway.
    pub fn overlap(&self) -> std::time::Duration {
        self.refresh + self.lifetime + VERIFY_LEEWAY
    }
}
