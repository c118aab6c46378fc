//! The names and sizes AWS accepts on create, as its API references state
//! them. Moto takes almost any name, so without these a name that real AWS
//! refuses would only fail on the first real deployment.
//!
//! Where a reference and AWS's own error messages disagree, the wider of
//! the two is accepted: a test should never fail on a name AWS takes.

use super::{Request, Service, Verdict};

/// The refusal AWS gives a create whose name breaks its rules.
pub(super) fn check(request: &Request<'_>) -> Option<Verdict> {
    match (request.service, request.operation) {
        (Service::Elbv2, "CreateLoadBalancer") => {
            elb_name("Load balancer", request.form("Name")?, true)
        }
        (Service::Elbv2, "CreateTargetGroup") => {
            elb_name("Target group", request.form("Name")?, false)
        }
        (Service::Rds, "CreateDBInstance") => {
            db_instance_identifier(request.form("DBInstanceIdentifier")?)
        }
        (Service::Rds, "CreateDBSubnetGroup") => {
            db_subnet_group_name(request.form("DBSubnetGroupName")?)
        }
        (Service::Sqs, "CreateQueue") => {
            let fifo = request.json["Attributes"]["FifoQueue"].as_str() == Some("true");
            queue_name(request.json_str("QueueName")?, fifo)
        }
        (Service::Sns, "CreateTopic") => topic_name(request.form("Name")?, sns_fifo(request)),
        (Service::Iam, "CreateRole") => {
            role_name(request.form("RoleName")?).or_else(|| request.form("Path").and_then(iam_path))
        }
        (Service::SecretsManager, "CreateSecret") => secret_name(request.json_str("Name")?),
        (Service::Logs, "CreateLogGroup") => log_group_name(request.json_str("logGroupName")?),
        (Service::Ecr, "CreateRepository") => repository_name(request.json_str("repositoryName")?),
        (Service::Ec2, "CreateSecurityGroup") => security_group_name(request.form("GroupName")?),
        (Service::ApiGatewayV2, "CreateApi") => api_gateway_name("API", request.json_str("name")?),
        (Service::ApiGatewayV2, "CreateVpcLink") => {
            api_gateway_name("VPC link", request.json_str("name")?)
        }
        (Service::CloudWatch, "PutMetricAlarm") => alarm_name(request.json_str("AlarmName")?),
        (Service::Ecs, "CreateCluster") => {
            ecs_name("Cluster name", request.json_str("clusterName")?)
        }
        (Service::Ecs, "CreateService") => {
            ecs_name("Service name", request.json_str("serviceName")?)
        }
        (Service::Ecs, "RegisterTaskDefinition") => ecs_name("Family", request.json_str("family")?)
            .or_else(|| {
                request.json["containerDefinitions"]
                    .as_array()?
                    .iter()
                    .filter_map(|c| c["name"].as_str())
                    .find_map(|name| ecs_name("Container.name", name))
            }),
        _ => None,
    }
}

fn refuse(code: &'static str, message: String) -> Option<Verdict> {
    Some(Verdict::new(code, message.clone(), message))
}

/// CreateLoadBalancer / CreateTargetGroup (ELBv2 API reference): at most 32
/// characters, only alphanumerics and hyphens, not beginning or ending with
/// a hyphen; a load balancer's not beginning with `internal-`. AWS answers
/// `ValidationError` with these messages.
fn elb_name(what: &str, name: &str, load_balancer: bool) -> Option<Verdict> {
    let message = if name.is_empty() {
        format!("{what} name cannot be empty")
    } else if name.chars().count() > 32 {
        format!("{what} name '{name}' cannot be longer than '32' characters")
    } else if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        format!(
            "{what} name '{name}' can only contain characters that are alphanumeric characters or hyphens(-)"
        )
    } else if name.starts_with('-') || name.ends_with('-') {
        format!("{what} name '{name}' cannot begin or end with '-'")
    } else if load_balancer && name.starts_with("internal-") {
        format!("{what} name '{name}' cannot begin with 'internal-'")
    } else {
        return None;
    };
    refuse("ValidationError", message)
}

/// CreateDBInstance's DBInstanceIdentifier (RDS API reference): 1 to 63
/// letters, digits or hyphens, first a letter, not ending with a hyphen,
/// no two consecutive hyphens. AWS answers `InvalidParameterValue`.
fn db_instance_identifier(id: &str) -> Option<Verdict> {
    if id.chars().count() > 63 {
        return refuse(
            "InvalidParameterValue",
            "The parameter DBInstanceIdentifier is not a valid identifier because it is longer than 63 characters."
                .to_string(),
        );
    }
    let valid = id.starts_with(|c: char| c.is_ascii_alphabetic())
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !id.ends_with('-')
        && !id.contains("--");
    if valid {
        return None;
    }
    refuse(
        "InvalidParameterValue",
        "The parameter DBInstanceIdentifier is not a valid identifier. Identifiers must begin with a letter; \
         must contain only ASCII letters, digits, and hyphens; and must not end with a hyphen or contain two \
         consecutive hyphens."
            .to_string(),
    )
}

/// CreateDBSubnetGroup's DBSubnetGroupName (RDS API reference): at most 255
/// letters, numbers, periods, underscores, spaces or hyphens, first a
/// letter, not `default`.
fn db_subnet_group_name(name: &str) -> Option<Verdict> {
    let valid = name.chars().count() <= 255
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ' ' | '-'))
        && !name.eq_ignore_ascii_case("default");
    if valid {
        return None;
    }
    refuse(
        "InvalidParameterValue",
        format!(
            "The parameter DBSubnetGroupName is not a valid identifier: '{name}'. It must begin with a letter, \
             contain no more than 255 letters, numbers, periods, underscores, spaces, or hyphens, and must not be default."
        ),
    )
}

/// CreateQueue's QueueName (SQS API reference): up to 80 alphanumerics,
/// hyphens and underscores; a FIFO queue's name ends with `.fifo`, and only
/// a FIFO queue's may. AWS answers `InvalidParameterValue` with these
/// messages.
fn queue_name(name: &str, fifo: bool) -> Option<Verdict> {
    let base = if fifo {
        name.strip_suffix(".fifo")
    } else {
        Some(name)
    };
    let valid = base.is_some_and(|base| {
        !base.is_empty()
            && base
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    }) && name.chars().count() <= 80;
    if valid {
        return None;
    }
    let message = if fifo {
        "The name of a FIFO queue can only include alphanumeric characters, hyphens, or underscores, \
         must end with .fifo suffix and be 1 to 80 in length."
    } else {
        "Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length"
    };
    refuse("InvalidParameterValue", message.to_string())
}

/// PutMetricAlarm, `AlarmName`: 1 to 255 characters, "only UTF-8
/// characters, and can't contain ASCII control characters".
fn alarm_name(name: &str) -> Option<Verdict> {
    let length = name.chars().count();
    if (1..=255).contains(&length) && !name.chars().any(|c| c.is_ascii_control()) {
        return None;
    }
    refuse(
        "InvalidParameterValue",
        format!("The alarm name must be 1 to 255 characters with no control characters: {name:?}"),
    )
}

/// Whether CreateTopic asks for a FIFO topic: an `Attributes.entry.N.key`
/// of `FifoTopic` whose value is `true`.
fn sns_fifo(request: &Request<'_>) -> bool {
    request.params.iter().any(|(key, value)| {
        value == "FifoTopic"
            && key.starts_with("Attributes.entry.")
            && key.ends_with(".key")
            && request.form(&key.replace(".key", ".value")) == Some("true")
    })
}

/// CreateTopic's Name (SNS API reference): 1 to 256 ASCII letters,
/// numbers, underscores and hyphens; a FIFO topic's ends with `.fifo`.
/// AWS answers `InvalidParameter`.
fn topic_name(name: &str, fifo: bool) -> Option<Verdict> {
    let base = if fifo {
        name.strip_suffix(".fifo")
    } else {
        Some(name)
    };
    let valid = base.is_some_and(|base| {
        !base.is_empty()
            && base
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    }) && name.chars().count() <= 256;
    if valid {
        return None;
    }
    Some(Verdict::new(
        "InvalidParameter",
        "Invalid parameter: Topic Name".to_string(),
        format!("topic name '{name}' breaks SNS's naming rules"),
    ))
}

/// IAM's validation message for a value that breaks a constraint.
fn iam_invalid(value: &str, field: &str, constraint: &str) -> Option<Verdict> {
    refuse(
        "ValidationError",
        format!(
            "1 validation error detected: Value '{value}' at '{field}' failed to satisfy constraint: {constraint}"
        ),
    )
}

/// CreateRole's RoleName (IAM API reference): 1 to 64 of `[\w+=,.@-]`.
fn role_name(name: &str) -> Option<Verdict> {
    if name.chars().count() > 64 {
        return iam_invalid(
            name,
            "roleName",
            "Member must have length less than or equal to 64",
        );
    }
    if name.is_empty() {
        return iam_invalid(
            name,
            "roleName",
            "Member must have length greater than or equal to 1",
        );
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c))
    {
        return iam_invalid(
            name,
            "roleName",
            "Member must satisfy regular expression pattern: [\\w+=,.@-]+",
        );
    }
    None
}

/// CreateRole's Path (IAM API reference): 1 to 512 characters, `/` alone
/// or `/`, then printable ASCII from `!` to `~`, then `/`.
fn iam_path(path: &str) -> Option<Verdict> {
    if path.chars().count() > 512 {
        return iam_invalid(
            path,
            "path",
            "Member must have length less than or equal to 512",
        );
    }
    let valid = path == "/"
        || (path.len() >= 3
            && path.starts_with('/')
            && path.ends_with('/')
            && path.bytes().all(|b| (0x21..=0x7e).contains(&b)));
    if valid {
        return None;
    }
    iam_invalid(
        path,
        "path",
        "Member must satisfy regular expression pattern: (\\u002F)|(\\u002F[\\u0021-\\u007E]+\\u002F)",
    )
}

/// CreateSecret's Name (Secrets Manager API reference): 1 to 512 ASCII
/// letters, numbers and `/_+=.@-` (AWS's own message also names `!`).
/// AWS answers `ValidationException`.
fn secret_name(name: &str) -> Option<Verdict> {
    let length = name.chars().count();
    if !(1..=512).contains(&length) {
        let bound = if length == 0 {
            "greater than or equal to 1"
        } else {
            "less than or equal to 512"
        };
        return refuse(
            "ValidationException",
            format!(
                "1 validation error detected: Value at 'name' failed to satisfy constraint: \
                 Member must have length {bound}"
            ),
        );
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/_+=.@-!".contains(c))
    {
        return refuse(
            "ValidationException",
            "Invalid name. Must be a valid name containing alphanumeric characters, or any of the following: -/_+=.@!"
                .to_string(),
        );
    }
    None
}

/// CreateLogGroup's logGroupName (CloudWatch Logs API reference): 1 to 512
/// of `[\.\-_/#A-Za-z0-9]`. AWS answers `InvalidParameterException`.
fn log_group_name(name: &str) -> Option<Verdict> {
    let constraint = if name.is_empty() {
        "Member must have length greater than or equal to 1"
    } else if name.chars().count() > 512 {
        "Member must have length less than or equal to 512"
    } else if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "._-/#".contains(c))
    {
        "Member must satisfy regular expression pattern: [\\.\\-_/#A-Za-z0-9]+"
    } else {
        return None;
    };
    refuse(
        "InvalidParameterException",
        format!(
            "1 validation error detected: Value '{name}' at 'logGroupName' failed to satisfy constraint: {constraint}"
        ),
    )
}

/// The ECR API reference's pattern for a repository name.
const REPOSITORY_PATTERN: &str =
    "[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*(\\/[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*)*";

/// CreateRepository's repositoryName (ECR API reference): 2 to 256
/// characters of `/`-separated lowercase components, each alphanumeric runs
/// joined by `.`, `_`, `__` or hyphens. AWS answers
/// `InvalidParameterException`.
fn repository_name(name: &str) -> Option<Verdict> {
    let length = name.chars().count();
    if (2..=256).contains(&length) && name.split('/').all(repository_component) {
        return None;
    }
    refuse(
        "InvalidParameterException",
        format!(
            "Invalid parameter at 'repositoryName' failed to satisfy constraint: 'must satisfy regular expression '{REPOSITORY_PATTERN}''"
        ),
    )
}

fn repository_component(component: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    if !component.starts_with(alnum) || !component.ends_with(alnum) {
        return false;
    }
    component
        .split(alnum)
        .filter(|separator| !separator.is_empty())
        .all(|separator| {
            matches!(separator, "." | "_" | "__") || separator.chars().all(|c| c == '-')
        })
}

/// CreateSecurityGroup's GroupName (EC2 API reference): up to 255
/// characters, not starting with `sg-`, of a-z, A-Z, 0-9, spaces and
/// `._-:/()#,@[]+=&;{}!$*`. AWS answers `InvalidParameterValue`.
fn security_group_name(name: &str) -> Option<Verdict> {
    let reason = if name.chars().count() > 255 {
        "Group names may not be longer than 255 characters."
    } else if name.to_ascii_lowercase().starts_with("sg-") {
        "Group names may not be in the format sg-*."
    } else if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || " ._-:/()#,@[]+=&;{}!$*".contains(c))
    {
        "Character sets beyond a-z, A-Z, 0-9, spaces, and ._-:/()#,@[]+=&;{}!$* are not supported."
    } else {
        return None;
    };
    refuse(
        "InvalidParameterValue",
        format!("Value ({name}) for parameter GroupName is invalid. {reason}"),
    )
}

/// CreateApi / CreateVpcLink's name (API Gateway v2 reference: a
/// StringWithLengthBetween1And128). AWS answers `BadRequestException`.
fn api_gateway_name(what: &str, name: &str) -> Option<Verdict> {
    let length = name.chars().count();
    if (1..=128).contains(&length) {
        return None;
    }
    refuse(
        "BadRequestException",
        format!("Invalid {what} name: it must be between 1 and 128 characters long, not {length}."),
    )
}

/// ECS's names (CreateCluster's clusterName, CreateService's serviceName,
/// RegisterTaskDefinition's family and container names; ECS API
/// reference): up to 255 letters, digits, underscores and hyphens. AWS
/// answers `ClientException` ("Family contains invalid characters.").
fn ecs_name(what: &str, name: &str) -> Option<Verdict> {
    let message = if name.is_empty() {
        format!("{what} can not be blank.")
    } else if name.chars().count() > 255 {
        format!("{what} can not be longer than 255 characters.")
    } else if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        format!("{what} contains invalid characters.")
    } else {
        return None;
    };
    refuse("ClientException", message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecr_components_follow_the_reference_pattern() {
        for good in ["ab", "a/b", "team-a/web.app", "a__b", "a---b", "a.b_c"] {
            assert!(repository_name(good).is_none(), "{good} should pass");
        }
        for bad in [
            "a", "Upper", "a/", "/a", "a..b", "a___b", "-a", "a_", "a//b",
        ] {
            assert!(repository_name(bad).is_some(), "{bad} should fail");
        }
    }

    #[test]
    fn identifiers_and_paths() {
        assert!(db_instance_identifier("orders-db").is_none());
        for bad in ["1db", "a--b", "db-", "a_b", &"a".repeat(64)] {
            assert!(db_instance_identifier(bad).is_some(), "{bad} should fail");
        }
        assert!(iam_path("/").is_none());
        assert!(iam_path("/service/").is_none());
        for bad in ["", "//", "service", "/service", "/a b/"] {
            assert!(iam_path(bad).is_some(), "{bad:?} should fail");
        }
        assert!(queue_name("jobs.fifo", true).is_none());
        assert!(queue_name("jobs.fifo", false).is_some());
        assert!(queue_name("jobs", true).is_some());
        assert!(elb_name("Load balancer", "internal-web", true).is_some());
        assert!(elb_name("Target group", "internal-web", false).is_none());
        assert!(ecs_name("Family", "techchallenge-order_v2").is_none());
        for bad in ["", "web.app", "a b", "svc/one", &"a".repeat(256)] {
            assert!(ecs_name("Family", bad).is_some(), "{bad:?} should fail");
        }
    }
}
