//! `flowplane up`: every service in one process, creating its database, falling back to the
//! in-process bus when NATS is unreachable, and still carrying changes from config to xDS.

use std::process::Stdio;
use std::time::Duration;

use flowplane_e2e::envoy::tail;
use flowplane_e2e::stack::binary;
use flowplane_e2e::{Api, eventually, free_port, scratch_dir};
use reqwest::Method;
use serde_json::json;
use tokio::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flowplane_up_runs_everything_in_one_process() {
    let dir = scratch_dir("up");
    let database = format!("fp_up_{}", std::process::id());
    let base = std::env::var("FLOWPLANE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let (api, xds, xds_http, grpc, config_http) = (
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
    );
    let (ratelimit, ratelimit_http, mcp) = (free_port(), free_port(), free_port());
    let log_path = dir.join("up.log");
    let log = std::fs::File::create(&log_path).unwrap_or_else(|e| panic!("{e}"));
    let mut child = Command::new(binary("flowplane").unwrap_or_else(|e| panic!("{e:#}")))
        .arg("up")
        .env("FLOWPLANE_DATABASE_URL", format!("{base}/{database}"))
        // Without FLOWPLANE_SECRETS_KEY, `up` keeps a development key under here.
        .env("XDG_CONFIG_HOME", &dir)
        .env_remove("FLOWPLANE_SECRETS_KEY")
        // Nothing listens here: the in-process bus must take over.
        .env(
            "FLOWPLANE_NATS_URL",
            format!("nats://127.0.0.1:{}", free_port()),
        )
        .env("FLOWPLANE_API_ADDR", format!("127.0.0.1:{api}"))
        .env("FLOWPLANE_XDS_ADDR", format!("127.0.0.1:{xds}"))
        .env("FLOWPLANE_XDS_HTTP_ADDR", format!("127.0.0.1:{xds_http}"))
        .env("FLOWPLANE_CONFIG_GRPC_ADDR", format!("127.0.0.1:{grpc}"))
        .env(
            "FLOWPLANE_CONFIG_HTTP_ADDR",
            format!("127.0.0.1:{config_http}"),
        )
        .env("FLOWPLANE_CONFIG_URL", format!("http://127.0.0.1:{grpc}"))
        .env("FLOWPLANE_RATELIMIT_ADDR", format!("127.0.0.1:{ratelimit}"))
        .env(
            "FLOWPLANE_RATELIMIT_HTTP_ADDR",
            format!("127.0.0.1:{ratelimit_http}"),
        )
        .env("FLOWPLANE_MCP_ADDR", format!("127.0.0.1:{mcp}"))
        .env_remove("FLOWPLANE_API_URL")
        .env_remove("FLOWPLANE_REDIS_URL")
        .env_remove("FLOWPLANE_SERVICE_SECRET")
        .stdout(log.try_clone().unwrap_or_else(|e| panic!("{e}")))
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));

    let result = async {
        let ready = format!("http://127.0.0.1:{api}/readyz");
        eventually("flowplane up to be ready", Duration::from_secs(40), || async {
            match reqwest::get(&ready).await {
                Ok(r) if r.status().is_success() => Ok(()),
                Ok(r) => Err(r.status().to_string()),
                Err(e) => Err(e.to_string()),
            }
        })
        .await?;
        let log = std::fs::read_to_string(&log_path)?;
        anyhow::ensure!(log.contains("in-process bus"), "the log must say the in-process bus is used");
        anyhow::ensure!(log.contains("FLOWPLANE_SECRETS_KEY is unset; generated a development value"), "the log must say a development secrets key was made");
        anyhow::ensure!(dir.join("flowplane/secrets.key").is_file(), "the development key is kept");
        // Kept too, so Envoy bootstraps (their dataplane tokens) survive a restart.
        anyhow::ensure!(log.contains("FLOWPLANE_SERVICE_SECRET is unset; generated a development value"), "the log must say a development service secret was made");
        anyhow::ensure!(dir.join("flowplane/service.token").is_file(), "the development service token is kept");
        anyhow::ensure!(log.contains(&format!("127.0.0.1:{api}")), "the log must say where the API listens");
        anyhow::ensure!(log.contains("global rate limits are counted in this process only"), "without Redis the ratelimit service counts in-process, and says so");
        let ratelimit_ready = reqwest::get(format!("http://127.0.0.1:{ratelimit_http}/readyz")).await?;
        anyhow::ensure!(ratelimit_ready.status().is_success(), "the in-process ratelimit service is ready");
        // The in-process mcp service answers agents (and wants their token).
        let mcp_answer = reqwest::Client::new().post(format!("http://127.0.0.1:{mcp}/api/v1/mcp/cp")).body("{}").send().await?;
        anyhow::ensure!(mcp_answer.status() == 401, "the in-process mcp service refuses a call without a token: {}", mcp_answer.status());
        let start = log.find("fp_setup_").ok_or_else(|| anyhow::anyhow!("no setup token in the log"))?;
        let setup: String = log[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();

        let anonymous = Api::new(&format!("http://127.0.0.1:{api}"));
        let init = anonymous
            .with_token(&setup)
            .expect(Method::POST, "/api/v1/bootstrap/initialize",
                Some(&json!({"email": "me@example.com", "password": "long-enough-password", "name": "Me"})), 201)
            .await?;
        let admin = anonymous.with_token(init["token"].as_str().unwrap_or_default());
        admin.expect(Method::POST, "/api/v1/admin/organizations", Some(&json!({"name": "solo"})), 201).await?;
        admin
            .expect(Method::POST, "/api/v1/clusters",
                Some(&json!({"team": "solo-default", "name": "c", "endpoints": [{"host": "127.0.0.1", "port": 9}]})), 201)
            .await?;
        // The change travelled config → in-process bus → xds-server.
        let metrics = format!("http://127.0.0.1:{xds_http}/metrics");
        eventually("xds-server to apply revision 1", Duration::from_secs(10), || async {
            let body = reqwest::get(&metrics).await.map_err(|e| e.to_string())?.text().await.map_err(|e| e.to_string())?;
            if body.lines().any(|l| l.starts_with("xds_revision ") && l.ends_with(" 1")) { Ok(()) } else { Err(body) }
        })
        .await?;

        // A second `up` whose config port is taken (its own database, every other port free)
        // names the setting and exits non-zero before any of its services starts (none can
        // reach the first instance's config).
        let second_log = dir.join("second.log");
        let second_out = std::fs::File::create(&second_log)?;
        let second = Command::new(binary("flowplane")?)
            .arg("up")
            .env("FLOWPLANE_DATABASE_URL", format!("{base}/{database}_second"))
            .env("XDG_CONFIG_HOME", &dir)
            .env_remove("FLOWPLANE_SECRETS_KEY")
            .env("FLOWPLANE_NATS_URL", format!("nats://127.0.0.1:{}", free_port()))
            .env("FLOWPLANE_API_ADDR", format!("127.0.0.1:{}", free_port()))
            .env("FLOWPLANE_XDS_ADDR", format!("127.0.0.1:{}", free_port()))
            .env("FLOWPLANE_XDS_HTTP_ADDR", format!("127.0.0.1:{}", free_port()))
            .env("FLOWPLANE_CONFIG_GRPC_ADDR", format!("127.0.0.1:{grpc}"))
            .env("FLOWPLANE_CONFIG_HTTP_ADDR", format!("127.0.0.1:{}", free_port()))
            .env("FLOWPLANE_CONFIG_URL", format!("http://127.0.0.1:{grpc}"))
            .env("FLOWPLANE_RATELIMIT_ADDR", format!("127.0.0.1:{}", free_port()))
            .env("FLOWPLANE_RATELIMIT_HTTP_ADDR", format!("127.0.0.1:{}", free_port()))
            .env("FLOWPLANE_LEARNING_ADDR", format!("127.0.0.1:{}", free_port()))
            .env("FLOWPLANE_LEARNING_HTTP_ADDR", format!("127.0.0.1:{}", free_port()))
            .env("FLOWPLANE_MCP_ADDR", format!("127.0.0.1:{}", free_port()))
            .env_remove("FLOWPLANE_API_URL")
            .env_remove("FLOWPLANE_REDIS_URL")
            .env_remove("FLOWPLANE_SERVICE_SECRET")
            .stdout(second_out.try_clone()?)
            .stderr(second_out)
            .kill_on_drop(true)
            .status();
        let status = tokio::time::timeout(Duration::from_secs(60), second)
            .await
            .map_err(|_| anyhow::anyhow!("a second `up` on a taken port kept running"))??;
        let said = std::fs::read_to_string(&second_log)?;
        anyhow::ensure!(
            !status.success()
                && said.contains(&format!("FLOWPLANE_CONFIG_GRPC_ADDR=127.0.0.1:{grpc} cannot be used"))
                && !said.contains("listening"),
            "a second `up` on a taken port: {status}; {}",
            tail(&second_log, 20)
        );
        let _ = Command::new("psql")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-c"])
            .arg(format!("DROP DATABASE IF EXISTS {database}_second WITH (FORCE)"))
            .output()
            .await;
        Ok::<_, anyhow::Error>(())
    }
    .await;

    let _ = child.kill().await;
    let _ = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-q",
            "-c",
            &format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
    if let Err(e) = result {
        panic!("{e:#}\n--- flowplane up ---\n{}", tail(&log_path, 60));
    }
    let _ = std::fs::remove_dir_all(&dir);
}
