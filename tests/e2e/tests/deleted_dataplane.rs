//! A deleted dataplane's token stops working at the services Envoys call besides xDS: the
//! ratelimit service, which holds no key and asks config (`DataplaneService.Verify`, cached for
//! 5 s), answers with the token of a live dataplane and refuses it within seconds of the
//! dataplane's deletion, over real gRPC against the real config.

use std::time::Duration;

use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use flowplane_e2e::{Stack, Tenant, eventually, run_scenario};
use flowplane_xds::bootstrap::{DATAPLANE_ID_HEADER, DATAPLANE_TOKEN_HEADER};
use reqwest::Method;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_dataplanes_token_is_refused_by_ratelimit() {
    run_scenario("deleted-dataplane", |stack| Box::pin(scenario(stack))).await;
}

async fn scenario(stack: &mut Stack) -> anyhow::Result<()> {
    let stack = &*stack;
    let tenant = Tenant::create(stack, "acme").await?;
    let (_, bootstrap) = tenant.dataplane("edge").await?;
    let (token, id) = (
        metadata(&bootstrap, DATAPLANE_TOKEN_HEADER)?,
        metadata(&bootstrap, DATAPLANE_ID_HEADER)?,
    );
    let ask = || {
        let (token, id, team) = (token.clone(), id.clone(), tenant.team.clone());
        let port = stack.ratelimit_port;
        async move {
            let mut client = RateLimitServiceClient::connect(format!("http://127.0.0.1:{port}"))
                .await
                .map_err(|e| e.to_string())?;
            let mut request = tonic::Request::new(RateLimitRequest {
                domain: team,
                ..Default::default()
            });
            request
                .metadata_mut()
                .insert(DATAPLANE_TOKEN_HEADER, token.parse().map_err(|_| "token")?);
            request
                .metadata_mut()
                .insert(DATAPLANE_ID_HEADER, id.parse().map_err(|_| "id")?);
            client
                .should_rate_limit(request)
                .await
                .map(|_| ())
                .map_err(|status| format!("{:?}: {}", status.code(), status.message()))
        }
    };
    ask().await.map_err(anyhow::Error::msg)?;

    tenant
        .api
        .expect(
            Method::DELETE,
            &format!("/api/v1/teams/{}/dataplanes/edge", tenant.team),
            None,
            204,
        )
        .await?;
    let (_, took) = eventually(
        "ratelimit to refuse the deleted dataplane's token",
        Duration::from_secs(15),
        || async {
            match ask().await {
                Err(refused) if refused.starts_with("Unauthenticated") => Ok(()),
                Err(other) => Err(other),
                Ok(()) => Err("still answered".to_string()),
            }
        },
    )
    .await?;
    eprintln!("refused {took:?} after the deletion");
    Ok(())
}

/// The value of one of the bootstrap's `initial_metadata` entries (any gRPC service's).
fn metadata(bootstrap: &Value, key: &str) -> anyhow::Result<String> {
    fn find(value: &Value, key: &str) -> Option<String> {
        match value {
            Value::Object(map) => {
                if map.get("key").and_then(Value::as_str) == Some(key) {
                    return map.get("value").and_then(Value::as_str).map(str::to_string);
                }
                map.values().find_map(|v| find(v, key))
            }
            Value::Array(items) => items.iter().find_map(|v| find(v, key)),
            _ => None,
        }
    }
    find(bootstrap, key).ok_or_else(|| anyhow::anyhow!("no {key} in the bootstrap"))
}
