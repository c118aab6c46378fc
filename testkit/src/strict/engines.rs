//! RDS's PostgreSQL versions: moto does not implement
//! `DescribeDBEngineVersions` and creates an instance of any version it is
//! given, while AWS offers a region's own list and refuses the rest
//! ("Cannot find version 16.4 for postgres").

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};

use super::{Request, Service, Verdict};
use crate::proxy::error_response;

/// The PostgreSQL versions the strict proxy offers for new instances,
/// oldest first: a region's list as RDS gives it in late 2026, deprecated
/// minors (such as 16.4) gone.
pub const POSTGRES_VERSIONS: &[&str] = &[
    "14.18", "14.19", "15.13", "15.14", "16.9", "16.10", "17.5", "17.6", "18.1",
];

/// AWS's answer to `DescribeDBEngineVersions` for PostgreSQL, in moto's
/// place; `None` for any other request.
pub(super) fn answer(request: &Request<'_>) -> Option<Response<Full<Bytes>>> {
    if request.service != Service::Rds || request.operation != "DescribeDBEngineVersions" {
        return None;
    }
    let engine = request.form("Engine").unwrap_or("postgres");
    let wanted = request.form("EngineVersion");
    let versions: String = POSTGRES_VERSIONS
        .iter()
        .filter(|_| engine == "postgres")
        .filter(|v| wanted.is_none_or(|w| w == **v))
        .map(|v| {
            let major = v.split('.').next().unwrap_or_default();
            format!(
                "<DBEngineVersion><Engine>postgres</Engine><EngineVersion>{v}</EngineVersion>\
                 <DBParameterGroupFamily>postgres{major}</DBParameterGroupFamily>\
                 <Status>available</Status></DBEngineVersion>"
            )
        })
        .collect();
    Some(error_response(
        StatusCode::OK,
        "text/xml",
        None,
        &format!(
            "<DescribeDBEngineVersionsResponse xmlns=\"http://rds.amazonaws.com/doc/2014-10-31/\">\
             <DescribeDBEngineVersionsResult><DBEngineVersions>{versions}</DBEngineVersions>\
             </DescribeDBEngineVersionsResult><ResponseMetadata><RequestId>strict-proxy</RequestId>\
             </ResponseMetadata></DescribeDBEngineVersionsResponse>"
        ),
    ))
}

/// A PostgreSQL instance of a version the region does not offer.
pub(super) fn check_create(request: &Request<'_>) -> Option<Verdict> {
    if request.service != Service::Rds
        || !matches!(request.operation, "CreateDBInstance" | "ModifyDBInstance")
    {
        return None;
    }
    let version = request.form("EngineVersion")?;
    if request.form("Engine").is_some_and(|e| e != "postgres")
        || POSTGRES_VERSIONS.contains(&version)
    {
        return None;
    }
    Some(Verdict::new(
        if request.operation == "CreateDBInstance" {
            "InvalidParameterCombination"
        } else {
            "InvalidParameterValue"
        },
        format!("Cannot find version {version} for postgres"),
        format!("PostgreSQL {version} is not among the offered {POSTGRES_VERSIONS:?}"),
    ))
}
