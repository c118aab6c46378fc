//! The database set-up: each service gets a PostgreSQL role of its own
//! that owns its database and can reach no other. It runs with the
//! instance's master credentials, which no service holds: on AWS as a
//! one-off ECS task (`SERVICE db-init`, started by `techctl deploy` with an
//! execution role that alone may read the master password), locally from
//! `techctl dev`. Running it again changes nothing but the passwords, so a
//! rotated password or a new service is one more run.

use anyhow::Context;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};

use crate::config::{ConfigError, Env, Secret};

/// One service's role (also its database's name) and the role's password.
#[derive(Debug, Clone)]
pub struct ServiceRole {
    pub role: String,
    pub password: Secret,
}

/// The environment variable that holds `role`'s password for `db-init`.
pub fn password_variable(role: &str) -> String {
    format!(
        "DB_INIT_PASSWORD_{}",
        role.to_ascii_uppercase().replace('-', "_")
    )
}

/// What `db-init` reads: the master connection (`DATABASE_URL` or the
/// `DB_*` parts) and `DB_INIT_ROLES`, the roles to make, each with its
/// password in `DB_INIT_PASSWORD_<ROLE>`.
pub fn from_env<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
) -> Result<(String, Vec<ServiceRole>), ConfigError> {
    let url = crate::config::database_url(env, "maintenance")?;
    let roles = env.required(
        "DB_INIT_ROLES",
        "the services' roles to make, separated by commas (order_service,payment_service)",
    )?;
    let mut out = Vec::new();
    for role in roles.split(',').map(str::trim).filter(|r| !r.is_empty()) {
        let password = env.required(
            &password_variable(role),
            &format!("the password of the role {role}"),
        )?;
        out.push(ServiceRole {
            role: role.to_string(),
            password: Secret::new(password),
        });
    }
    Ok((url, out))
}

/// A name as an SQL identifier.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A value as an SQL string literal (utility statements take no parameters).
fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// Makes (or brings in line) every role and its database, connected as the
/// master user to `admin_url`'s database.
pub async fn provision(admin_url: &str, roles: &[ServiceRole]) -> anyhow::Result<()> {
    let options: PgConnectOptions = admin_url
        .parse()
        .context("the master connection is not a PostgreSQL URL")?;
    // The passwords go over as SQL text: never into a log line.
    let options = options
        .log_statements(log::LevelFilter::Off)
        .log_slow_statements(log::LevelFilter::Off, std::time::Duration::from_secs(3600))
        // Inside a service's database its role owns `public`: nothing there
        // may stand in for a catalog function the master calls.
        .options([("search_path", "pg_catalog,pg_temp")]);
    let mut admin = options
        .connect()
        .await
        .context("cannot connect as the master user")?;
    for service in roles {
        provision_one(&mut admin, &options, service)
            .await
            .with_context(|| format!("cannot set up the role and database {}", service.role))?;
        tracing::info!(role = %service.role, "role and database ready");
    }
    close_maintenance_databases(&mut admin).await;
    admin.close().await.ok();
    Ok(())
}

/// The databases every role may connect to by default (the maintenance
/// databases) are closed to them; where the master may not (on RDS,
/// `postgres` is the platform's), it stays as it is.
async fn close_maintenance_databases(admin: &mut PgConnection) {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT datname FROM pg_catalog.pg_database \
         WHERE datname IN ('postgres', 'template1', pg_catalog.current_database())",
    )
    .fetch_all(&mut *admin)
    .await
    .unwrap_or_default();
    for name in names {
        if let Err(e) = sqlx::query(&format!(
            "REVOKE CONNECT ON DATABASE {} FROM PUBLIC",
            ident(&name)
        ))
        .execute(&mut *admin)
        .await
        {
            tracing::warn!(database = %name, error = %e, "cannot close a maintenance database to other roles");
        }
    }
}

async fn provision_one(
    admin: &mut PgConnection,
    options: &PgConnectOptions,
    service: &ServiceRole,
) -> anyhow::Result<()> {
    let role = ident(&service.role);
    let password = literal(service.password.expose());
    // RDS's master user is no superuser: it may not name SUPERUSER,
    // REPLICATION or BYPASSRLS even to deny them. A new role has none of
    // them; one found with any is refused, not quietly kept.
    let found: Option<(bool, bool, bool)> = sqlx::query_as(
        "SELECT rolsuper, rolreplication, rolbypassrls FROM pg_catalog.pg_roles WHERE rolname = $1",
    )
    .bind(&service.role)
    .fetch_optional(&mut *admin)
    .await?;
    match found {
        None => {
            sqlx::query(&format!(
                "CREATE ROLE {role} WITH LOGIN NOCREATEDB NOCREATEROLE NOINHERIT PASSWORD {password}"
            ))
            .execute(&mut *admin)
            .await?;
        }
        Some((superuser, replication, bypass)) if superuser || replication || bypass => {
            anyhow::bail!(
                "the role {} exists with SUPERUSER, REPLICATION or BYPASSRLS; a service must log in as a plain role: \
                 drop or fix it by hand, then run the set-up again",
                service.role
            );
        }
        Some(_) => {
            // Whatever it was given by hand: a plain login, nothing more.
            sqlx::query(&format!(
                "ALTER ROLE {role} WITH LOGIN NOCREATEDB NOCREATEROLE NOINHERIT PASSWORD {password}"
            ))
            .execute(&mut *admin)
            .await?;
        }
    }
    // RDS's master user is no superuser: it may give a database to a role
    // only as a member of it.
    sqlx::query(&format!("GRANT {role} TO CURRENT_USER"))
        .execute(&mut *admin)
        .await?;
    let database_exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_database WHERE datname = $1)",
    )
    .bind(&service.role)
    .fetch_one(&mut *admin)
    .await?;
    if !database_exists {
        // Made as the master's first, so that it can hand over what is in
        // it; a non-superuser master loses that power once the role owns it.
        sqlx::query(&format!("CREATE DATABASE {role}"))
            .execute(&mut *admin)
            .await?;
    }
    // Inside it: its schema, and what an older stack's service made as the
    // master user, become the role's, so its migrations can go on. Done
    // while the master still owns the database (or, run again, finds
    // nothing left to hand over).
    let mut inside = options
        .clone()
        .database(&service.role)
        .connect()
        .await
        .context("cannot connect to the service's database as the master user")?;
    sqlx::query(&format!(
        r#"DO $$
DECLARE
  item record;
BEGIN
  BEGIN
    EXECUTE pg_catalog.format('ALTER SCHEMA public OWNER TO %I', {name});
  EXCEPTION WHEN insufficient_privilege THEN
    -- Before PostgreSQL 15 the schema is the server's; the role, owning
    -- the database, is given what it needs in it instead.
    EXECUTE pg_catalog.format('GRANT ALL ON SCHEMA public TO %I', {name});
  END;
  FOR item IN
    SELECT c.relname, c.relkind FROM pg_catalog.pg_class c
      JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
       AND pg_catalog.pg_get_userbyid(c.relowner) <> {name}
       AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                        WHERE d.objid = c.oid AND d.deptype IN ('a', 'i') AND c.relkind = 'S')
  LOOP
    EXECUTE pg_catalog.format('ALTER %s public.%I OWNER TO %I',
      CASE item.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW'
                        WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'TABLE' END,
      item.relname, {name});
  END LOOP;
  FOR item IN
    SELECT t.typname FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
     WHERE n.nspname = 'public' AND t.typtype IN ('e', 'd')
       AND pg_catalog.pg_get_userbyid(t.typowner) <> {name}
  LOOP
    EXECUTE pg_catalog.format('ALTER TYPE public.%I OWNER TO %I', item.typname, {name});
  END LOOP;
END
$$"#,
        name = literal(&service.role)
    ))
    .execute(&mut inside)
    .await?;
    inside.close().await.ok();
    sqlx::query(&format!("ALTER DATABASE {role} OWNER TO {role}"))
        .execute(&mut *admin)
        .await?;
    // Nobody else connects to it (new databases let every role in).
    sqlx::query(&format!("REVOKE ALL ON DATABASE {role} FROM PUBLIC"))
        .execute(&mut *admin)
        .await?;
    Ok(())
}

/// `SERVICE db-init`: the set-up from the environment; exits 0 when every
/// role and database is ready.
pub async fn run_from_env() -> std::process::ExitCode {
    let env = Env::process();
    let (url, roles) = match from_env(&env) {
        Ok(found) => found,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    match provision(&url, &roles).await {
        Ok(()) => {
            tracing::info!(roles = roles.len(), "database set-up done");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = ?e, "database set-up failed");
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::Connection;

    fn role(name: &str) -> ServiceRole {
        ServiceRole {
            role: name.to_string(),
            password: Secret::new(format!("pw-{name}")),
        }
    }

    /// `role` connected to `database` of the test cluster.
    async fn connect_as(role: &str, database: &str) -> Result<PgConnection, sqlx::Error> {
        let pg = testkit::postgres();
        PgConnection::connect(&format!(
            "postgres://{role}:pw-{role}@127.0.0.1:{}/{database}",
            pg.port
        ))
        .await
    }

    fn state(e: &sqlx::Error) -> String {
        e.as_database_error()
            .and_then(|d| d.code())
            .map(|c| c.into_owned())
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn each_service_reaches_its_own_database_and_no_other() {
        let tag = std::process::id();
        let (order, product) = (format!("order_{tag}"), format!("product_{tag}"));
        // A master user as RDS makes it: no superuser, only CREATEDB and
        // CREATEROLE, with its maintenance database.
        let (master, maintenance) = (format!("master_{tag}"), format!("techctl_{tag}"));
        let mut superuser = PgConnection::connect(&testkit::postgres().url("postgres"))
            .await
            .unwrap();
        for sql in [
            format!("CREATE ROLE {master} LOGIN CREATEDB CREATEROLE"),
            format!("CREATE DATABASE {maintenance} OWNER {master}"),
        ] {
            sqlx::query(&sql).execute(&mut superuser).await.unwrap();
        }
        let as_master = |database: &str| {
            format!(
                "postgres://{master}@127.0.0.1:{}/{database}",
                testkit::postgres().port
            )
        };
        let admin = as_master(&maintenance);
        // An older stack: the product database was made by the master user,
        // with a table and its sequence.
        let mut master_connection = PgConnection::connect(&admin).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {product}"))
            .execute(&mut master_connection)
            .await
            .unwrap();
        let mut inside = PgConnection::connect(&as_master(&product)).await.unwrap();
        sqlx::query("CREATE TABLE products (id serial PRIMARY KEY, name text)")
            .execute(&mut inside)
            .await
            .unwrap();
        inside.close().await.unwrap();
        let mut master = master_connection;

        let roles = [role(&order), role(&product)];
        provision(&admin, &roles).await.unwrap();
        // Running it again changes nothing and fails on nothing.
        provision(&admin, &roles).await.unwrap();

        // Each role owns its database and what is in it: the product
        // service goes on migrating the table the master user made.
        let mut own = connect_as(&product, &product).await.unwrap();
        sqlx::query("INSERT INTO products (name) VALUES ('X-Burger')")
            .execute(&mut own)
            .await
            .unwrap();
        sqlx::query("ALTER TABLE products ADD COLUMN price numeric")
            .execute(&mut own)
            .await
            .unwrap();
        // The order service's role cannot even connect to it...
        let refused = connect_as(&order, &product).await.unwrap_err();
        assert_eq!(state(&refused), "42501", "{refused}");
        // ... nor take the product role on from its own database.
        let mut other = connect_as(&order, &order).await.unwrap();
        let borrowed = sqlx::query(&format!("SET ROLE {product}"))
            .execute(&mut other)
            .await
            .unwrap_err();
        assert_eq!(state(&borrowed), "42501", "{borrowed}");
        // And it is a plain login: no database, role or superuser powers.
        let (superuser, create_db, create_role): (bool, bool, bool) = sqlx::query_as(
            "SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = current_user",
        )
        .fetch_one(&mut other)
        .await
        .unwrap();
        assert!(!superuser && !create_db && !create_role);
        let made = sqlx::query(&format!("CREATE DATABASE sneaky_{tag}"))
            .execute(&mut other)
            .await
            .unwrap_err();
        assert_eq!(state(&made), "42501", "{made}");
        // The master's own database is closed to it as well.
        let maintenance_refused = connect_as(&order, &maintenance).await.unwrap_err();
        assert_eq!(
            state(&maintenance_refused),
            "42501",
            "{maintenance_refused}"
        );
        // A password change is one more run.
        let changed = [ServiceRole {
            role: order.clone(),
            password: Secret::new("rotated"),
        }];
        provision(&admin, &changed).await.unwrap();
        let (owner,): (String,) =
            sqlx::query_as("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $1")
                .bind(&order)
                .fetch_one(&mut master)
                .await
                .unwrap();
        assert_eq!(owner, order);
    }

    #[test]
    fn the_settings_name_what_is_missing() {
        let env = Env::from_fn(|name| match name {
            "DATABASE_URL" => Some("postgres://m@db/techctl".to_string()),
            "DB_INIT_ROLES" => Some("order_service, payment_service".to_string()),
            "DB_INIT_PASSWORD_ORDER_SERVICE" => Some("a".to_string()),
            _ => None,
        });
        let err = from_env(&env).unwrap_err().to_string();
        assert!(err.contains("DB_INIT_PASSWORD_PAYMENT_SERVICE"), "{err}");
        let env = Env::from_fn(|name| match name {
            "DATABASE_URL" => Some("postgres://m@db/techctl".to_string()),
            "DB_INIT_ROLES" => Some("order_service".to_string()),
            "DB_INIT_PASSWORD_ORDER_SERVICE" => Some("a".to_string()),
            _ => None,
        });
        let (url, roles) = from_env(&env).unwrap();
        assert_eq!(url, "postgres://m@db/techctl");
        assert_eq!(roles[0].role, "order_service");
        assert_eq!(format!("{:?}", roles[0].password), "Secret(***)");
    }
}
