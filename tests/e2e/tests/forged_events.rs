//! Anything that reaches NATS can publish on the change subject; only config can sign. A
//! change event copied from the stream and altered (a new resource at the next revision, the
//! original's installation, epoch and MAC) is dropped by the replica and counted, and the
//! next real change still arrives. Before events carried a MAC, the replica applied it.

use std::time::Duration;

use flowplane_e2e::{Stack, Tenant, eventually, metric};
use flowplane_proto::state::v1::ChangeEvent;
use futures::StreamExt;
use prost::Message;
use reqwest::Method;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_change_event_is_dropped_and_counted() {
    let stack = Stack::start("forged-events").await.expect("stack");
    let result = scenario(&stack).await;
    if let Err(e) = &result {
        eprintln!("{}", stack.logs());
        stack.stop().await;
        panic!("{e:#}");
    }
    stack.stop().await;
}

/// Waits until metric `name` is at least `value`.
async fn reaches(stack: &Stack, what: &str, name: &str, value: f64) -> anyhow::Result<()> {
    eventually(what, Duration::from_secs(15), || async {
        match metric(&stack.xds_http, name).await? {
            v if v >= value => Ok(()),
            v => Err(format!("{name} is {v}")),
        }
    })
    .await?;
    Ok(())
}

async fn scenario(stack: &Stack) -> anyhow::Result<()> {
    let tenant = Tenant::create(stack, "acme").await?;
    let nats = async_nats::connect(
        std::env::var("FLOWPLANE_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into()),
    )
    .await?;
    let subject = format!("{}.changes.v1", stack.nats_prefix());
    let mut copies = nats.subscribe(subject.clone()).await?;
    nats.flush().await?;

    let created = tenant
        .api
        .expect(
            Method::POST,
            "/api/v1/clusters",
            Some(&tenant.cluster("real", 8081)),
            201,
        )
        .await?;
    let revision = created["revision"]
        .as_i64()
        .ok_or_else(|| anyhow::anyhow!("a create without a revision: {created}"))?;
    // Earlier changes (the tenant's own) may still be on their way; copy this one.
    let copied = loop {
        let message = tokio::time::timeout(Duration::from_secs(10), copies.next())
            .await?
            .ok_or_else(|| anyhow::anyhow!("no change event seen on {subject}"))?;
        let of = message
            .headers
            .as_ref()
            .and_then(|h| h.get("Flowplane-Revision"))
            .and_then(|v| v.as_str().parse::<i64>().ok());
        if of == Some(revision) {
            break message;
        }
    };
    let headers = copied
        .headers
        .clone()
        .ok_or_else(|| anyhow::anyhow!("a change event without headers"))?;
    let header = |name: &str| {
        headers
            .get(name)
            .map(|v| v.as_str().to_string())
            .unwrap_or_default()
    };
    reaches(
        stack,
        "the replica applies the real change",
        "xds_revision",
        revision as f64,
    )
    .await?;

    // The forgery: the real event, renamed and moved to the next revision, under its old MAC.
    let mut event = ChangeEvent::decode(copied.payload.as_ref())?;
    let forged_revision = revision + 1;
    event.revision = forged_revision;
    if let Some(resource) = event.resource.as_mut() {
        resource.name = "forged".into();
        resource.revision = forged_revision;
    }
    event.name = "forged".into();
    let mut forged = async_nats::HeaderMap::new();
    forged.insert("Nats-Msg-Id", format!("forged-{forged_revision}").as_str());
    forged.insert("Flowplane-Revision", forged_revision.to_string().as_str());
    for name in ["Flowplane-Installation", "Flowplane-Epoch", "Flowplane-Mac"] {
        forged.insert(name, header(name).as_str());
    }
    let jetstream = async_nats::jetstream::new(nats.clone());
    jetstream
        .publish_with_headers(subject.clone(), forged, event.encode_to_vec().into())
        .await?
        .await?;

    reaches(
        stack,
        "the replica counts the forged event",
        "xds_forged_events_total",
        1.0,
    )
    .await?;
    let applied = metric(&stack.xds_http, "xds_revision")
        .await
        .map_err(anyhow::Error::msg)?;
    anyhow::ensure!(
        applied < forged_revision as f64,
        "the replica applied the forged revision {forged_revision} (now at {applied})"
    );

    // The stream still works: config's next change is real and arrives.
    tenant
        .api
        .expect(
            Method::POST,
            "/api/v1/clusters",
            Some(&tenant.cluster("after", 8082)),
            201,
        )
        .await?;
    reaches(
        stack,
        "the next real change arrives",
        "xds_revision",
        forged_revision as f64,
    )
    .await?;
    Ok(())
}
