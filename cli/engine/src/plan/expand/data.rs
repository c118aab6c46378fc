//! What keeps the system's state: the PostgreSQL instance, the topics and
//! queues of the saga, and the stack secret with the outputs.

use std::collections::{BTreeMap, BTreeSet};

use crate::plan::outputs as out;
use crate::plan::resource::{DeadLetter, KeysState, Output, Resource, SecretHolds, Spec};
use blueprint::{Blueprint, names};

use super::{
    SECURITY_GROUPS, ids, platform, private_subnets, public_keys_name, secret_name,
    service_secret_name, signing_keys_name,
};

/// The instance's master user; its password lives only in the stack secret,
/// and only the database set-up task reads it there.
pub const DATABASE_USER: &str = "techctl";
/// The database the instance is created with. Each service keeps its data
/// in a database of its own beside it (see [`service_database`]).
pub const DATABASE_NAME: &str = "techctl";
/// How long a dead-letter queue keeps a message: SQS's longest, 14 days,
/// so a poison message outlives a long weekend.
const DEAD_LETTER_RETENTION_SECONDS: u32 = 14 * 24 * 3600;
/// SQS sends its metrics to CloudWatch once a minute: a finer period would
/// only see gaps.
const DEAD_LETTER_ALARM_PERIOD_SECONDS: u32 = 60;
/// How long a queue keeps a message nobody handled: 4 days, SQS's default.
const QUEUE_RETENTION_SECONDS: u32 = 4 * 24 * 3600;

/// The database a service owns on the instance, and the PostgreSQL role
/// that owns it and that the service logs in as (one name for both). The
/// database set-up task makes both with the master password; the service
/// then runs its own migrations in it.
pub fn service_database(service: &str) -> String {
    names::service_database(service)
}

pub fn database(bp: &Blueprint, zones: &[String]) -> Vec<Resource> {
    let db = &bp.database;
    let mut instance = Resource::new(
        ids::db_instance(),
        Spec::DbInstance {
            identifier: names::db_instance(bp.stack_name()),
            engine_version: db.engine_version.get_ref().clone(),
            instance_class: db.instance_class.get_ref().clone(),
            allocated_storage_gb: *db.allocated_storage_gb.get_ref(),
            backup_retention_days: *db.backup_retention_days.get_ref(),
            port: *db.port.get_ref(),
            master_username: DATABASE_USER.to_string(),
            database_name: DATABASE_NAME.to_string(),
            encrypted: true,
            publicly_accessible: false,
            subnet_group: ids::db_subnet_group(),
            security_group: ids::security_group("database"),
        },
    );
    // The master password is made and stored before the instance exists,
    // so an interrupted `up` never leaves an instance nobody can log in to.
    instance.after.push(ids::stack_secret());
    vec![
        Resource::new(
            ids::db_subnet_group(),
            Spec::DbSubnetGroup {
                name: names::db_subnet_group(bp.stack_name()),
                subnets: private_subnets(zones),
            },
        ),
        instance,
    ]
}

/// One topic per producing service; one queue (with its dead-letter queue)
/// per consuming service, subscribed to each producer whose events it
/// consumes, with a filter on exactly those event names.
pub fn messaging(bp: &Blueprint) -> Vec<Resource> {
    let stack = bp.stack_name();
    let msg = &bp.messaging;
    let mut out = Vec::new();
    let producers: BTreeMap<&str, BTreeSet<&str>> = bp
        .services()
        .filter(|(_, s)| !s.publishes.is_empty())
        .map(|(name, s)| {
            (
                name,
                s.publishes.iter().map(|e| e.get_ref().as_str()).collect(),
            )
        })
        .collect();
    for name in producers.keys() {
        out.push(Resource::new(
            ids::topic(name),
            Spec::Topic {
                name: format!("{stack}-{name}-events"),
            },
        ));
    }
    for (name, service) in bp.services().filter(|(_, s)| !s.consumes.is_empty()) {
        let consumed: BTreeSet<&str> = service
            .consumes
            .iter()
            .map(|e| e.get_ref().as_str())
            .collect();
        let sources: Vec<(&str, BTreeSet<String>)> = producers
            .iter()
            .map(|(producer, events)| {
                let wanted = events
                    .intersection(&consumed)
                    .map(|e| e.to_string())
                    .collect::<BTreeSet<_>>();
                (*producer, wanted)
            })
            .filter(|(_, events)| !events.is_empty())
            .collect();
        out.push(Resource::new(
            ids::dead_letter_queue(name),
            Spec::Queue {
                name: names::dead_letter_queue(stack, name),
                visibility_timeout_seconds: *msg.visibility_timeout_seconds.get_ref(),
                retention_seconds: DEAD_LETTER_RETENTION_SECONDS,
                dead_letter: None,
                senders: BTreeSet::new(),
            },
        ));
        out.push(Resource::new(
            ids::dead_letter_alarm(name),
            Spec::Alarm {
                name: names::dead_letter_alarm(stack, name),
                queue_name: names::dead_letter_queue(stack, name),
                period_seconds: DEAD_LETTER_ALARM_PERIOD_SECONDS,
            },
        ));
        out.push(Resource::new(
            ids::queue(name),
            Spec::Queue {
                name: names::queue(stack, name),
                visibility_timeout_seconds: *msg.visibility_timeout_seconds.get_ref(),
                retention_seconds: QUEUE_RETENTION_SECONDS,
                dead_letter: Some(DeadLetter {
                    queue: Output::attr(ids::dead_letter_queue(name), "arn"),
                    max_receive_count: msg.redrive_max_receive_count(),
                }),
                senders: sources
                    .iter()
                    .map(|(producer, _)| Output::Id(ids::topic(producer)))
                    .collect(),
            },
        ));
        for (producer, events) in sources {
            out.push(Resource::new(
                ids::subscription(name, producer),
                Spec::Subscription {
                    topic: ids::topic(producer),
                    queue: ids::queue(name),
                    events,
                    raw_delivery: true,
                },
            ));
        }
    }
    out
}

/// The stack secret (keys and the database password, made once) and the
/// outputs written into it once everything they name exists.
pub fn secret(bp: &Blueprint, zones: &[String], nat_zones: &[&String]) -> Vec<Resource> {
    let subnets = |tier: &str| Output::ids(zones.iter().map(|z| ids::subnet(tier, z)));
    let text = |s: &str| Output::Text(s.to_string());
    let mut outputs = BTreeMap::from([
        (out::STACK.to_string(), text(bp.stack_name())),
        (out::REGION.to_string(), text(bp.region())),
        (out::VPC_ID.to_string(), Output::Id(ids::vpc())),
        (out::PUBLIC_SUBNET_IDS.to_string(), subnets("public")),
        (out::PRIVATE_SUBNET_IDS.to_string(), subnets("private")),
        (
            out::NAT_GATEWAY_IDS.to_string(),
            Output::ids(nat_zones.iter().map(|z| ids::nat_gateway(z))),
        ),
        (out::API_ID.to_string(), Output::Id(ids::api())),
        (
            out::API_ENDPOINT.to_string(),
            Output::attr(ids::api(), "endpoint"),
        ),
        (out::VPC_LINK_ID.to_string(), Output::Id(ids::vpc_link())),
        (out::ALB_ARN.to_string(), Output::Id(ids::load_balancer())),
        (
            out::ALB_DNS_NAME.to_string(),
            Output::attr(ids::load_balancer(), "dns_name"),
        ),
        (out::LISTENER_ARN.to_string(), Output::Id(ids::listener())),
        (out::CLUSTER_ARN.to_string(), Output::Id(ids::cluster())),
        (out::CLUSTER_NAME.to_string(), text(bp.stack_name())),
        (
            out::TASK_EXECUTION_ROLE_ARN.to_string(),
            Output::attr(ids::execution_role(), "arn"),
        ),
        (
            out::DB_INIT_ROLE_ARN.to_string(),
            Output::attr(ids::db_init_role(), "arn"),
        ),
        (
            out::DB_INIT_LOG_GROUP.to_string(),
            text(&platform::log_group_name(bp.stack_name(), "db-init")),
        ),
        (
            out::SIGNING_KEYS_SECRET_ARN.to_string(),
            Output::Id(ids::signing_keys()),
        ),
        (
            out::PUBLIC_KEYS_SECRET_ARN.to_string(),
            Output::Id(ids::public_keys()),
        ),
        (
            out::DB_HOST.to_string(),
            Output::attr(ids::db_instance(), "endpoint"),
        ),
        (
            out::DB_PORT.to_string(),
            Output::Text(bp.database.port.get_ref().to_string()),
        ),
        (out::DB_NAME.to_string(), text(DATABASE_NAME)),
        (out::DB_USER.to_string(), text(DATABASE_USER)),
        (
            out::DB_INSTANCE_ID.to_string(),
            Output::Id(ids::db_instance()),
        ),
    ]);
    for (role, _) in SECURITY_GROUPS {
        outputs.insert(
            out::security_group_id(role),
            Output::Id(ids::security_group(role)),
        );
    }
    outputs.extend(platform::service_outputs(bp));
    vec![
        Resource::new(
            ids::stack_secret(),
            Spec::StackSecret {
                name: secret_name(bp.stack_name()),
                database_password: KeysState::Present,
                scheduled_for_deletion: false,
            },
        ),
        Resource::new(
            ids::stack_outputs(),
            Spec::StackOutputs {
                secret: ids::stack_secret(),
                outputs,
            },
        ),
    ]
}

/// The secrets beside the stack secret: the signing key ring, its public
/// set, and one per service. Each is read by only the roles that need it.
pub fn secrets(bp: &Blueprint) -> Vec<Resource> {
    let stack = bp.stack_name();
    let secret = |id, name, holds| {
        Resource::new(
            id,
            Spec::Secret {
                name,
                holds,
                complete: KeysState::Present,
                scheduled_for_deletion: false,
            },
        )
    };
    let mut out = vec![
        secret(
            ids::signing_keys(),
            signing_keys_name(stack),
            SecretHolds::SigningKeys,
        ),
        secret(
            ids::public_keys(),
            public_keys_name(stack),
            SecretHolds::PublicKeys,
        ),
    ];
    // The public set is copied from the ring.
    out[1].after.push(ids::signing_keys());
    for (name, _) in bp.services() {
        out.push(secret(
            ids::service_secret(name),
            service_secret_name(stack, name),
            SecretHolds::Service(name.to_string()),
        ));
    }
    out
}
