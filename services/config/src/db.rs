//! Connecting to PostgreSQL: optional database creation, the pool, migrations.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context as _;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};

/// Connects, creating the database first when asked (single-binary and test runs), then applies
/// pending migrations. Migrations take an advisory lock, so replicas may start together.
pub async fn connect(url: &str, create_if_missing: bool) -> anyhow::Result<PgPool> {
    let options =
        PgConnectOptions::from_str(url).context("FLOWPLANE_DATABASE_URL is not a valid URL")?;
    if create_if_missing {
        create_database(&options).await?;
    }
    let pool = PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(Duration::from_secs(3))
        .connect_with(options.clone())
        .await
        .with_context(|| {
            format!(
                "connecting to database '{}'",
                options.get_database().unwrap_or("?")
            )
        })?;
    sqlx::migrate!("../../migrations")
        .run(&pool)
        .await
        .context("applying migrations")?;
    Ok(pool)
}

async fn create_database(options: &PgConnectOptions) -> anyhow::Result<()> {
    let Some(name) = options.get_database().map(str::to_string) else {
        return Ok(());
    };
    let mut admin = options
        .clone()
        .database("postgres")
        .connect()
        .await
        .context("connecting to the 'postgres' database to create ours")?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut admin)
            .await?;
    if !exists {
        // Identifiers cannot be bound; quote it ourselves.
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        match sqlx::query(&format!("CREATE DATABASE {quoted}"))
            .execute(&mut admin)
            .await
        {
            Ok(_) => tracing::info!(database = %name, "created database"),
            // Another process created it between our check and our create.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => {}
            Err(e) => return Err(e).context("creating database"),
        }
    }
    Ok(())
}
