//! The names AWS knows a stack's resources by, made from the stack and
//! service names, and the rules AWS holds each kind of name to.
//!
//! The expansion names its resources with these functions and the
//! validator checks what they return, so the names checked are the names
//! created: a blueprint that passes validation never has a create call
//! refused halfway through `up` for a name.

use std::fmt;

/// The internal ALB: the stack's name.
pub fn load_balancer(stack: &str) -> String {
    stack.to_string()
}

/// A service's target group.
pub fn target_group(stack: &str, service: &str) -> String {
    format!("{stack}-{service}")
}

/// The RDS instance: the stack's name.
pub fn db_instance(stack: &str) -> String {
    stack.to_string()
}

/// The DB subnet group over the private subnets.
pub fn db_subnet_group(stack: &str) -> String {
    format!("{stack}-private")
}

/// The ARN partition of a region.
pub fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// A consuming service's queue.
pub fn queue(stack: &str, service: &str) -> String {
    format!("{stack}-{service}")
}

/// A consuming service's dead-letter queue.
pub fn dead_letter_queue(stack: &str, service: &str) -> String {
    format!("{stack}-{service}-dlq")
}

/// The CloudWatch alarm on a consuming service's dead-letter queue.
pub fn dead_letter_alarm(stack: &str, service: &str) -> String {
    format!("{stack}-{service}-dead-letters")
}

/// The role ECS starts every task with.
pub fn execution_role(stack: &str) -> String {
    format!("{stack}-task-execution")
}

/// The database a service owns, and the PostgreSQL role that owns it and
/// that the service logs in as (one name for both), on RDS and locally.
pub fn service_database(service: &str) -> String {
    format!("{}_service", service.replace('-', "_"))
}

/// The role ECS starts the database set-up task with: the only one that
/// may read the master password.
pub fn db_init_role(stack: &str) -> String {
    format!("{stack}-db-init-execution")
}

/// The role GitHub Actions assumes to deploy the stack (`deploy_on_push`).
pub fn deploy_role(stack: &str) -> String {
    format!("{stack}-deploy")
}

/// The managed policy every role of the stack is bounded by.
pub fn boundary_policy(stack: &str) -> String {
    format!("{stack}-boundary")
}

/// The role a service's tasks run as.
pub fn task_role(stack: &str, service: &str) -> String {
    format!("{stack}-{service}-task")
}

/// One kind of name and the rule AWS holds it to, as its API reference
/// states it.
#[derive(Debug, Clone, Copy)]
pub struct NameRule {
    /// What the name names, e.g. "load balancer name".
    pub what: &'static str,
    /// The call whose reference states the rule.
    pub api: &'static str,
    /// The rule, briefly.
    pub rule: &'static str,
    check: fn(&str) -> Option<Broken>,
}

impl NameRule {
    /// How `name` breaks the rule, if it does.
    pub fn broken(&self, name: &str) -> Option<Broken> {
        (self.check)(name)
    }
}

/// ELBv2 `CreateLoadBalancer`, `Name`: "can have a maximum of 32
/// characters, must contain only alphanumeric characters or hyphens, must
/// not begin or end with a hyphen, and must not begin with "internal-"".
/// (AWS puts `internal-` in front of an internal load balancer's DNS name
/// itself.)
pub const LOAD_BALANCER: NameRule = NameRule {
    what: "load balancer name",
    api: "CreateLoadBalancer",
    rule: "at most 32 letters, digits or hyphens, not beginning or ending with a hyphen, not beginning with \"internal-\"",
    check: |name| {
        elb_name(name).or_else(|| {
            name.starts_with("internal-")
                .then_some(Broken::Begins("\"internal-\""))
        })
    },
};

/// ELBv2 `CreateTargetGroup`, `Name`: "can have a maximum of 32
/// characters, must contain only alphanumeric characters or hyphens, and
/// must not begin or end with a hyphen".
pub const TARGET_GROUP: NameRule = NameRule {
    what: "target group name",
    api: "CreateTargetGroup",
    rule: "at most 32 letters, digits or hyphens, not beginning or ending with a hyphen",
    check: elb_name,
};

/// RDS `CreateDBInstance`, `DBInstanceIdentifier`: "Must contain from 1 to
/// 63 letters, numbers, or hyphens. First character must be a letter. Can't
/// end with a hyphen or contain two consecutive hyphens."
pub const DB_INSTANCE: NameRule = NameRule {
    what: "DB instance identifier",
    api: "CreateDBInstance",
    rule: "1 to 63 letters, digits or hyphens, beginning with a letter, not ending with a hyphen, no two hyphens in a row",
    check: |name| {
        length(name, 63)
            .or_else(|| only(name, |c| c.is_ascii_alphanumeric() || c == '-'))
            .or_else(|| first_letter(name))
            .or_else(|| name.ends_with('-').then_some(Broken::Ends("a hyphen")))
            .or_else(|| name.contains("--").then_some(Broken::DoubleHyphen))
    },
};

/// RDS `CreateDBSubnetGroup`, `DBSubnetGroupName`: "Must contain no more
/// than 255 letters, numbers, periods, underscores, spaces, or hyphens.
/// Must not be default. First character must be a letter."
pub const DB_SUBNET_GROUP: NameRule = NameRule {
    what: "DB subnet group name",
    api: "CreateDBSubnetGroup",
    rule: "at most 255 letters, digits, periods, underscores, spaces or hyphens, beginning with a letter, not \"default\"",
    check: |name| {
        length(name, 255)
            .or_else(|| {
                only(name, |c| {
                    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ' ' | '-')
                })
            })
            .or_else(|| first_letter(name))
            .or_else(|| {
                name.eq_ignore_ascii_case("default")
                    .then_some(Broken::Reserved("default"))
            })
    },
};

/// SQS `CreateQueue`, `QueueName`: "A queue name can have up to 80
/// characters. Valid values: alphanumeric characters, hyphens (-), and
/// underscores (_)."
pub const QUEUE: NameRule = NameRule {
    what: "queue name",
    api: "CreateQueue",
    rule: "1 to 80 letters, digits, hyphens or underscores",
    check: |name| {
        length(name, 80).or_else(|| {
            only(name, |c| {
                c.is_ascii_alphanumeric() || matches!(c, '-' | '_')
            })
        })
    },
};

/// CloudWatch `PutMetricAlarm`, `AlarmName`: 1 to 255 characters, "only
/// UTF-8 characters, and can't contain ASCII control characters".
pub const ALARM: NameRule = NameRule {
    what: "alarm name",
    api: "PutMetricAlarm",
    rule: "1 to 255 characters, no control characters",
    check: |name| length(name, 255).or_else(|| only(name, |c| !c.is_ascii_control())),
};

/// IAM `CreateRole`, `RoleName`: length 1 to 64, pattern `[\w+=,.@-]+`.
pub const ROLE: NameRule = NameRule {
    what: "role name",
    api: "CreateRole",
    rule: "1 to 64 letters, digits or any of _+=,.@-",
    check: |name| {
        length(name, 64).or_else(|| {
            only(name, |c| {
                c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '=' | ',' | '.' | '@' | '-')
            })
        })
    },
};

/// How a name breaks its rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Broken {
    Empty,
    TooLong { length: usize, max: usize },
    Character(char),
    Begins(&'static str),
    Ends(&'static str),
    NoLetterFirst,
    DoubleHyphen,
    Reserved(&'static str),
}

impl fmt::Display for Broken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Broken::Empty => write!(f, "is empty"),
            Broken::TooLong { length, max } => {
                write!(
                    f,
                    "is {length} characters long, {} over the {max} allowed",
                    length - max
                )
            }
            Broken::Character(c) => write!(f, "contains {c:?}"),
            Broken::Begins(what) => write!(f, "begins with {what}"),
            Broken::Ends(what) => write!(f, "ends with {what}"),
            Broken::NoLetterFirst => write!(f, "does not begin with a letter"),
            Broken::DoubleHyphen => write!(f, "has two hyphens in a row"),
            Broken::Reserved(word) => write!(f, "is the reserved name {word:?}"),
        }
    }
}

/// What ELBv2 asks of both load balancer and target group names.
fn elb_name(name: &str) -> Option<Broken> {
    length(name, 32)
        .or_else(|| only(name, |c| c.is_ascii_alphanumeric() || c == '-'))
        .or_else(|| name.starts_with('-').then_some(Broken::Begins("a hyphen")))
        .or_else(|| name.ends_with('-').then_some(Broken::Ends("a hyphen")))
}

fn length(name: &str, max: usize) -> Option<Broken> {
    let length = name.chars().count();
    if length == 0 {
        Some(Broken::Empty)
    } else if length > max {
        Some(Broken::TooLong { length, max })
    } else {
        None
    }
}

fn only(name: &str, allowed: impl Fn(char) -> bool) -> Option<Broken> {
    name.chars().find(|c| !allowed(*c)).map(Broken::Character)
}

fn first_letter(name: &str) -> Option<Broken> {
    (!name.starts_with(|c: char| c.is_ascii_alphabetic())).then_some(Broken::NoLetterFirst)
}
