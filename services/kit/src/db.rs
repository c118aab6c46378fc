//! The service's PostgreSQL pool, with its embedded migrations run at start.
//!
//! Each service owns a database of its own on the shared instance, made
//! with its role by the database set-up (`provision`). A service whose
//! database is missing tries to create it (a login that may, as in tests),
//! and otherwise says to run the set-up; then it migrates it.

use std::time::Duration;

use anyhow::Context;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};

/// PostgreSQL's code for "database does not exist".
const INVALID_CATALOG_NAME: &str = "3D000";
/// PostgreSQL's code for "permission denied".
const INSUFFICIENT_PRIVILEGE: &str = "42501";
/// PostgreSQL's code for "database already exists": another replica won.
const DUPLICATE_DATABASE: &str = "42P04";

fn sql_state(e: &sqlx::Error) -> Option<String> {
    e.as_database_error()
        .and_then(|d| d.code())
        .map(|c| c.into_owned())
}

/// Creates the database `url` names, through the server's `postgres`
/// database; a database created meanwhile by another replica is fine.
async fn create_database(url: &str) -> anyhow::Result<()> {
    let options: PgConnectOptions = url
        .parse()
        .context("DATABASE_URL is not a PostgreSQL URL")?;
    let name = options
        .get_database()
        .context("DATABASE_URL names no database")?
        .to_string();
    let mut admin = options
        .database("postgres")
        .connect()
        .await
        .context("cannot reach the server's postgres database to create the service's own")?;
    let quoted = format!("\"{}\"", name.replace('"', "\"\""));
    let created = sqlx::query(&format!("CREATE DATABASE {quoted}"))
        .execute(&mut admin)
        .await;
    let _ = admin.close().await;
    match created {
        Ok(_) => {
            tracing::info!(database = %name, "created the service's database");
            Ok(())
        }
        Err(e) if sql_state(&e).as_deref() == Some(DUPLICATE_DATABASE) => Ok(()),
        Err(e) if sql_state(&e).as_deref() == Some(INSUFFICIENT_PRIVILEGE) => Err(e).with_context(|| {
            format!(
                "the database {name} does not exist and this service's role may not make it: \
                 run the database set-up (`techctl deploy` runs it before a service's first rollout, \
                 `techctl dev` at every start)"
            )
        }),
        Err(e) => Err(e).with_context(|| format!("cannot create the database {name}")),
    }
}

/// Connects (retrying while the database starts) and migrates.
pub async fn connect(url: &str, pool_size: u32, migrator: &Migrator) -> anyhow::Result<PgPool> {
    let mut attempt = 0;
    let mut created = false;
    let pool = loop {
        let pool = PgPoolOptions::new()
            .max_connections(pool_size)
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await;
        match pool {
            Ok(pool) => break pool,
            Err(e) if !created && sql_state(&e).as_deref() == Some(INVALID_CATALOG_NAME) => {
                create_database(url).await?;
                created = true;
            }
            Err(e) if attempt < 10 => {
                tracing::warn!(error = %e, attempt, "database not reachable yet; retrying");
                tokio::time::sleep(Duration::from_millis(200 * (1 << attempt.min(5)))).await;
                attempt += 1;
            }
            Err(e) => return Err(e).context("cannot connect to the database (DATABASE_URL)"),
        }
    };
    migrator
        .run(&pool)
        .await
        .context("cannot apply the database migrations")?;
    Ok(pool)
}

#[cfg(test)]
mod tests {
    use super::*;

    static NO_MIGRATIONS: Migrator = Migrator::DEFAULT;

    #[tokio::test]
    async fn a_missing_database_is_created_on_first_connect() {
        let pg = testkit::postgres();
        let name = format!("kit_created_{}", std::process::id());
        let url = pg.url(&name);
        let pool = connect(&url, 2, &NO_MIGRATIONS)
            .await
            .expect("connect creates it");
        let (current,): (String,) = sqlx::query_as("SELECT current_database()")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(current, name);
        pool.close().await;
        // A second start finds it.
        connect(&url, 2, &NO_MIGRATIONS)
            .await
            .expect("connect again")
            .close()
            .await;
    }
}
