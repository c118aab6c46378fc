//! What the blueprint asks of the account and region, checked before a
//! plan is made: moto offers every zone and version, AWS does not.
//!
//! - The PostgreSQL version must be offered in the region
//!   (`DescribeDBEngineVersions`); the error names the versions that are.
//! - HTTP API VPC links are not offered in every availability zone, and
//!   zone names map to different physical zones in each account; the
//!   blueprint's zones are resolved to zone ids (`DescribeAvailabilityZones`)
//!   and checked against the zone ids API Gateway supports.

use aws_sdk_ec2::types::Filter;

use super::{Aws, AwsError, YOURS_TO_FIX, all_pages};
use blueprint::Blueprint;
use blueprint::engine_version::Requirement;

/// The zone ids where API Gateway offers VPC links for HTTP APIs, by region
/// ("Set up VPC links for HTTP APIs", Availability by Region). A region
/// not listed here is not checked.
const VPC_LINK_ZONE_IDS: &[(&str, &[&str])] = &[
    (
        "us-east-1",
        &["use1-az1", "use1-az2", "use1-az4", "use1-az5", "use1-az6"],
    ),
    ("us-east-2", &["use2-az1", "use2-az2", "use2-az3"]),
    ("us-west-1", &["usw1-az1", "usw1-az3"]),
    (
        "us-west-2",
        &["usw2-az1", "usw2-az2", "usw2-az3", "usw2-az4"],
    ),
    ("ap-east-1", &["ape1-az2", "ape1-az3"]),
    ("ap-south-1", &["aps1-az1", "aps1-az2", "aps1-az3"]),
    ("ap-northeast-2", &["apne2-az1", "apne2-az2", "apne2-az3"]),
    ("ap-southeast-1", &["apse1-az1", "apse1-az2", "apse1-az3"]),
];

/// Checks the blueprint against the region; an error is the user's to fix.
pub async fn check(aws: &Aws, bp: &Blueprint) -> Result<(), AwsError> {
    let (zones, versions) = tokio::join!(check_zones(aws, bp), check_engine_version(aws, bp));
    zones?;
    versions.map(|_| ())
}

fn refused(operation: &'static str, message: String) -> AwsError {
    AwsError {
        code: Some(YOURS_TO_FIX.into()),
        ..AwsError::new(operation, message)
    }
}

async fn check_zones(aws: &Aws, bp: &Blueprint) -> Result<(), AwsError> {
    let answer = sdk!(
        "DescribeAvailabilityZones",
        aws.ec2
            .describe_availability_zones()
            .filters(
                Filter::builder()
                    .name("region-name")
                    .values(bp.region())
                    .build()
            )
            .send()
    )?;
    // name → id, for every zone of the region the account sees.
    let region_zones: Vec<(String, String)> = answer
        .availability_zones()
        .iter()
        .filter_map(|z| Some((z.zone_name()?.to_string(), z.zone_id()?.to_string())))
        .collect();
    let supported = VPC_LINK_ZONE_IDS
        .iter()
        .find(|(region, _)| *region == bp.region())
        .map(|(_, ids)| *ids);
    let mut problems = Vec::new();
    for zone in bp.availability_zones() {
        match region_zones.iter().find(|(name, _)| name == zone) {
            None => problems.push(format!(
                "{zone} is not an availability zone of {} in this account",
                bp.region()
            )),
            Some((_, id)) if supported.is_some_and(|ids| !ids.contains(&id.as_str())) => problems
                .push(format!(
                    "{zone} is {id} in this account, where API Gateway offers no VPC link for HTTP APIs"
                )),
            Some(_) => {}
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    let usable: Vec<String> = region_zones
        .iter()
        .filter(|(_, id)| supported.is_none_or(|ids| ids.contains(&id.as_str())))
        .map(|(name, id)| format!("{name} ({id})"))
        .collect();
    Err(refused(
        "DescribeAvailabilityZones",
        format!(
            "network.availability_zones: {}\n  zones that would work in {} for this account: {}",
            problems.join("; "),
            bp.region(),
            usable.join(", ")
        ),
    ))
}

/// The version a new instance gets: the newest offered one that meets the
/// blueprint, or the blueprint's own text where the region cannot be asked
/// (an emulator without the call).
pub async fn engine_version(aws: &Aws, requirement: &str) -> Result<String, AwsError> {
    let want = Requirement::parse(requirement).ok_or_else(|| {
        refused(
            "DescribeDBEngineVersions",
            format!("database.engine_version {requirement:?} is not a PostgreSQL version"),
        )
    })?;
    let Some(offered) = offered_versions(aws).await? else {
        return Ok(requirement.to_string());
    };
    match want.choose(offered.iter().map(String::as_str)) {
        Some(version) => Ok(version.to_string()),
        None => {
            let mut majors: Vec<&str> =
                offered.iter().filter_map(|v| v.split('.').next()).collect();
            majors.dedup();
            let newest_of_major: Vec<&str> = offered
                .iter()
                .filter(|v| v.split('.').next() == Some(&want.major.to_string()))
                .map(String::as_str)
                .collect();
            Err(refused(
                "DescribeDBEngineVersions",
                format!(
                    "database.engine_version: PostgreSQL {want} is not offered in {} (offered majors: {}{})\n  \
                     set database.engine_version to an offered major version such as \"{}\"",
                    aws.region,
                    majors.join(", "),
                    if newest_of_major.is_empty() {
                        String::new()
                    } else {
                        format!("; of {}: {}", want.major, newest_of_major.join(", "))
                    },
                    majors.last().copied().unwrap_or("16"),
                ),
            ))
        }
    }
}

async fn check_engine_version(aws: &Aws, bp: &Blueprint) -> Result<String, AwsError> {
    engine_version(aws, bp.database.engine_version.get_ref()).await
}

/// The PostgreSQL versions RDS offers for new instances in the region,
/// oldest first, or `None` when the endpoint does not know the call.
async fn offered_versions(aws: &Aws) -> Result<Option<Vec<String>>, AwsError> {
    let rds = &aws.rds;
    let listed = all_pages(|marker| async move {
        let page =
            sdk!(
                "DescribeDBEngineVersions",
                rds.describe_db_engine_versions()
                    .engine("postgres")
                    .set_marker(marker)
                    .customize()
                    .config_override(aws_sdk_rds::config::Builder::default().retry_config(
                        aws_config::retry::RetryConfig::standard().with_max_attempts(2)
                    ))
                    .send()
            )?;
        let versions = page
            .db_engine_versions()
            .iter()
            .filter(|v| v.status().is_none_or(|s| s == "available"))
            .filter_map(|v| v.engine_version().map(str::to_string))
            .collect::<Vec<_>>();
        Ok((versions, page.marker().map(str::to_string)))
    })
    .await;
    match listed {
        Ok(versions) => Ok(Some(versions)),
        Err(e) if is_unknown_operation(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// How an emulator answers a call it does not implement: an error code
/// saying so, or a bare server error with no AWS error code at all (moto's
/// HTML page), which AWS itself never sends.
fn is_unknown_operation(e: &AwsError) -> bool {
    match e.code.as_deref() {
        Some(code) => matches!(
            code,
            "InvalidAction" | "NotImplemented" | "UnknownOperation"
        ),
        None => e.transient,
    }
}
