//! The service's PostgreSQL pool, with its embedded migrations run at start.

use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::PgPoolOptions;

/// Connects (retrying while the database starts) and migrates.
pub async fn connect(url: &str, pool_size: u32, migrator: &Migrator) -> anyhow::Result<PgPool> {
    let mut attempt = 0;
    let pool = loop {
        let pool = PgPoolOptions::new()
            .max_connections(pool_size)
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await;
        match pool {
            Ok(pool) => break pool,
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
