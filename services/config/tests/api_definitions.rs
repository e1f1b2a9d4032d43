//! API definitions against a real PostgreSQL: one revision per change with the generated
//! resources, ownership (409 on direct edits), exact clean-up on delete, idempotent
//! re-import, dry runs, domain uniqueness and tenancy.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use flowplane_config::error::ServiceError;
use flowplane_config::{api_definitions, identity, resources};
use flowplane_domain::ResourceKind;
use flowplane_proto::resources::v1 as pb;
use flowplane_proto::state::v1::ChangeEvent;
use prost::Message;
use sqlx::Row;
use support::{TestDb, admin};

async fn org(db: &TestDb, name: &str) -> String {
    let created = identity::create_organization(&db.ctx, &admin(), name, "")
        .await
        .unwrap_or_else(|e| panic!("create org: {e}"));
    created.default_team.unwrap_or_default().name
}

fn request(
    source: pb::ApiDefinitionSource,
    mode: pb::ApplyMode,
    team: &str,
    body: &str,
) -> pb::ApplyApiDefinitionRequest {
    pb::ApplyApiDefinitionRequest {
        source: source as i32,
        mode: mode as i32,
        team: team.into(),
        body: body.into(),
        ..Default::default()
    }
}

fn import(team: &str, document: &str, dry_run: bool) -> pb::ApplyApiDefinitionRequest {
    pb::ApplyApiDefinitionRequest {
        dry_run,
        ..request(
            pb::ApiDefinitionSource::Openapi,
            pb::ApplyMode::Upsert,
            team,
            document,
        )
    }
}

const PETSTORE_V1: &str = r#"
openapi: 3.0.3
info: {title: Petstore, version: "1"}
servers: [{url: "http://127.0.0.1:9001"}]
x-flowplane-domain: pets.example.com
paths:
  /pets:
    get: {operationId: listPets}
    post: {operationId: createPet}
  /pets/{id}:
    get: {operationId: getPet}
"#;

/// v2: one operation gone, one added, one with a new timeout.
const PETSTORE_V2: &str = r#"
openapi: 3.0.3
info: {title: Petstore, version: "2"}
servers: [{url: "http://127.0.0.1:9001"}]
x-flowplane-domain: pets.example.com
paths:
  /pets:
    get: {operationId: listPets, x-flowplane-route: {timeoutSeconds: 5}}
  /pets/{id}:
    get: {operationId: getPet}
    delete: {operationId: deletePet}
"#;

async fn revision(db: &TestDb) -> i64 {
    sqlx::query_scalar("SELECT value FROM revision_counter")
        .fetch_one(&db.ctx.pool)
        .await
        .unwrap()
}

async fn managed(db: &TestDb) -> Vec<(String, String, Option<String>)> {
    sqlx::query("SELECT kind, name, managed_by FROM resources ORDER BY kind, name")
        .fetch_all(&db.ctx.pool)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get("kind"), r.get("name"), r.get("managed_by")))
        .collect()
}

fn changes(response: &pb::ApplyApiDefinitionResponse) -> Vec<String> {
    response
        .changes
        .iter()
        .map(|c| format!("{} {} {}", c.op, c.kind, c.name))
        .collect()
}

#[tokio::test]
async fn import_generates_owned_resources_at_one_revision_and_reimport_changes_nothing() {
    let db = TestDb::new().await;
    let team = org(&db, "acme").await;
    let admin = admin();

    // A dry run reports the plan and writes nothing.
    let planned = api_definitions::apply(&db.ctx, &admin, import(&team, PETSTORE_V1, true))
        .await
        .unwrap();
    assert!(planned.dry_run && planned.changed);
    assert!(changes(&planned).contains(&"added listeners default-gateway-listener".to_string()));
    assert_eq!(revision(&db).await, 0);
    assert!(managed(&db).await.is_empty());

    let created = api_definitions::apply(&db.ctx, &admin, import(&team, PETSTORE_V1, false))
        .await
        .unwrap();
    assert!(created.created);
    let definition = created.definition.clone().unwrap();
    assert_eq!(
        (definition.name.as_str(), definition.revision),
        ("petstore", 1)
    );
    assert_eq!(
        managed(&db).await,
        [
            (
                "clusters".into(),
                "api-petstore-127.0.0.1-9001".into(),
                Some("petstore".into())
            ),
            (
                "listeners".into(),
                "default-gateway-listener".into(),
                Some("api-definitions".into())
            ),
            (
                "route-configs".into(),
                "default-gateway-routes".into(),
                Some("api-definitions".into())
            ),
        ]
    );
    // One revision, one outbox event carrying all three resources, audit rows for all four.
    let payloads: Vec<Vec<u8>> = sqlx::query_scalar("SELECT payload FROM outbox ORDER BY revision")
        .fetch_all(&db.ctx.pool)
        .await
        .unwrap();
    assert_eq!(payloads.len(), 1);
    let event = ChangeEvent::decode(payloads[0].as_slice()).unwrap();
    assert_eq!((event.revision, event.changes.len()), (1, 3));
    let actions: Vec<String> =
        sqlx::query_scalar("SELECT action FROM audit_log WHERE revision = 1 ORDER BY id")
            .fetch_all(&db.ctx.pool)
            .await
            .unwrap();
    assert_eq!(
        actions,
        [
            "cluster.created",
            "route-config.created",
            "listener.created",
            "api-definition.created"
        ]
    );

    // Re-importing the same document changes nothing and spends no revision.
    let again = api_definitions::apply(&db.ctx, &admin, import(&team, PETSTORE_V1, false))
        .await
        .unwrap();
    assert!(!again.changed && again.changes.is_empty());
    assert_eq!(revision(&db).await, 1);

    // A changed document updates in place and reports exactly the difference.
    let updated = api_definitions::apply(&db.ctx, &admin, import(&team, PETSTORE_V2, false))
        .await
        .unwrap();
    let mut reported = changes(&updated);
    reported.sort();
    assert_eq!(
        reported,
        [
            "added routes deletepet",
            "changed route-configs default-gateway-routes",
            "changed routes listpets",
            "removed routes createpet"
        ]
    );
    assert_eq!(revision(&db).await, 2);

    // Generated resources cannot be edited or deleted directly.
    let delete = resources::delete(
        &db.ctx,
        &admin,
        ResourceKind::Cluster,
        &team,
        "api-petstore-127.0.0.1-9001",
        0,
    )
    .await;
    assert!(
        matches!(delete, Err(ServiceError::Conflict { .. })),
        "{delete:?}"
    );

    let got = api_definitions::get(&db.ctx, &admin, "", "petstore")
        .await
        .unwrap();
    assert_eq!(got.generated.len(), 3);
    db.drop_db().await;
}

#[tokio::test]
async fn deleting_a_definition_removes_exactly_what_it_owned() {
    let db = TestDb::new().await;
    let team = org(&db, "acme").await;
    let admin = admin();
    let def = |name: &str, domain: &str, port: u16| {
        serde_json::json!({"name": name, "domain": domain,
            "routes": [{"path": "/", "upstream": format!("http://127.0.0.1:{port}")}]})
        .to_string()
    };
    for (name, domain, port) in [("a", "a.example.com", 9001), ("b", "b.example.com", 9002)] {
        api_definitions::apply(
            &db.ctx,
            &admin,
            request(
                pb::ApiDefinitionSource::Definition,
                pb::ApplyMode::Create,
                &team,
                &def(name, domain, port),
            ),
        )
        .await
        .unwrap();
    }
    // A dedicated one via expose.
    api_definitions::apply(
        &db.ctx,
        &admin,
        request(
            pb::ApiDefinitionSource::Expose,
            pb::ApplyMode::Create,
            &team,
            r#"{"name":"echo","upstream":"http://127.0.0.1:9003/v1","path":"/echo","port":18080}"#,
        ),
    )
    .await
    .unwrap();
    assert_eq!(managed(&db).await.len(), 7);

    // A domain has one owner, in any team.
    let other_team = org(&db, "globex").await;
    let taken = api_definitions::apply(
        &db.ctx,
        &admin,
        request(
            pb::ApiDefinitionSource::Definition,
            pb::ApplyMode::Create,
            &other_team,
            &def("a2", "a.example.com", 9009),
        ),
    )
    .await;
    assert!(
        matches!(taken, Err(ServiceError::Conflict { .. })),
        "{taken:?}"
    );
    let before = revision(&db).await;

    // Deleting 'a' keeps the shared gateway (b still uses it) without a's virtual host.
    api_definitions::delete(&db.ctx, &admin, &team, "a", 0)
        .await
        .unwrap();
    assert_eq!(revision(&db).await, before + 1);
    let left = managed(&db).await;
    assert!(
        !left
            .iter()
            .any(|(_, _, owner)| owner.as_deref() == Some("a"))
    );
    let routes: serde_json::Value =
        sqlx::query_scalar("SELECT spec FROM resources WHERE name = 'default-gateway-routes'")
            .fetch_one(&db.ctx.pool)
            .await
            .unwrap();
    assert_eq!(routes["virtualHosts"].as_array().map(Vec::len), Some(1));

    // Deleting the last shared definition removes the shared gateway too.
    api_definitions::delete(&db.ctx, &admin, &team, "b", 0)
        .await
        .unwrap();
    api_definitions::delete(&db.ctx, &admin, &team, "echo", 0)
        .await
        .unwrap();
    assert!(managed(&db).await.is_empty());
    db.drop_db().await;
}

#[tokio::test]
async fn invalid_input_is_a_400_with_a_path_and_other_teams_see_nothing() {
    let db = TestDb::new().await;
    let team = org(&db, "acme").await;
    org(&db, "globex").await;
    let bad = api_definitions::apply(
        &db.ctx,
        &admin(),
        import(
            &team,
            r#"{"openapi":"3.1.0","info":{"title":"t"},"servers":[{"url":"http://h:1"}],"paths":{"/pets":{"get":"x"}}}"#,
            false,
        ),
    )
    .await;
    match bad {
        Err(ServiceError::Validation(e)) => assert_eq!(e.errors()[0].field, "/paths/~1pets/get"),
        other => panic!("expected a validation error, got {other:?}"),
    }
    api_definitions::apply(&db.ctx, &admin(), import(&team, PETSTORE_V1, false))
        .await
        .unwrap();
    // The shared gateway's catch-all host has one owner per team.
    let expose = |name: &str| {
        request(
            pb::ApiDefinitionSource::Expose,
            pb::ApplyMode::Upsert,
            &team,
            &format!(r#"{{"name":"{name}","upstream":"http://127.0.0.1:9005","path":"/{name}"}}"#),
        )
    };
    api_definitions::apply(&db.ctx, &admin(), expose("one"))
        .await
        .unwrap();
    let second = api_definitions::apply(&db.ctx, &admin(), expose("two")).await;
    assert!(
        matches!(second, Err(ServiceError::Conflict { .. })),
        "{second:?}"
    );

    // A GET -> PUT round trip (generatedResources included) changes nothing.
    let got = api_definitions::get(&db.ctx, &admin(), &team, "petstore")
        .await
        .unwrap();
    let mut body: serde_json::Value = serde_json::from_str(&got.spec_json).unwrap();
    body["generatedResources"] = serde_json::json!([{"kind": "clusters", "name": "x"}]);
    let put = pb::ApplyApiDefinitionRequest {
        name: "petstore".into(),
        ..request(
            pb::ApiDefinitionSource::Definition,
            pb::ApplyMode::Update,
            &team,
            &body.to_string(),
        )
    };
    let same = api_definitions::apply(&db.ctx, &admin(), put)
        .await
        .unwrap();
    assert!(!same.changed);
    assert_eq!(same.definition.unwrap().revision, got.revision);

    let outsider = support::caller_in_team_org(
        &db,
        "globex-default",
        &["team:globex-default:api-definitions:write"],
    )
    .await;
    let hidden = api_definitions::get(&db.ctx, &outsider, &team, "petstore").await;
    assert!(
        matches!(hidden, Err(ServiceError::NotFound(_))),
        "{hidden:?}"
    );
    let listed = api_definitions::list(&db.ctx, &outsider, "", 0, "")
        .await
        .unwrap();
    assert!(listed.items.is_empty());
    let reader =
        support::caller_in_team_org(&db, &team, &[&format!("team:{team}:api-definitions:read")])
            .await;
    let denied = api_definitions::delete(&db.ctx, &reader, &team, "petstore", 0).await;
    assert!(
        matches!(denied, Err(ServiceError::Forbidden(_))),
        "{denied:?}"
    );
    db.drop_db().await;
}
