//! The shape of the xDS delivery report: for one dataplane, every Envoy node connected to any
//! xds-server replica, what each was sent and acknowledged per type, and the recent NACKs.
//!
//! Replicas hold this in memory only (it is the state of their streams); config asks all of
//! them at once over the bus and merges the answers ([`merge`]), so the report shows the whole
//! fleet without a registry of replicas.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// How many NACKs a replica keeps per dataplane, and the report shows.
pub const NACK_HISTORY: usize = 50;

/// What config asks every replica.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryQuery {
    pub team: String,
    pub dataplane: String,
}

/// One replica's answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaDelivery {
    pub replica: String,
    pub nodes: Vec<NodeDelivery>,
    pub nacks: Vec<Nack>,
}

/// One Envoy stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeDelivery {
    /// The Envoy's `--service-node` (node id).
    pub node_id: String,
    /// The xds-server replica the stream is connected to.
    pub replica: String,
    /// `sotw` or `delta`.
    pub protocol: String,
    /// RFC 3339.
    pub connected_at: String,
    /// One entry per type the Envoy subscribed to, in push order.
    pub types: Vec<TypeDelivery>,
}

/// One type of one stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TypeDelivery {
    /// `cds`, `eds`, `lds`, `rds` or `sds`.
    #[serde(rename = "type")]
    pub type_name: String,
    /// The version last sent (null before the first response).
    pub sent_version: Option<String>,
    /// The version Envoy last acknowledged (null before its first ACK).
    pub acked_version: Option<String>,
    /// A response is out that Envoy has not answered yet.
    pub pending: bool,
    /// Responses sent on this stream.
    pub pushes: u64,
    /// NACKs Envoy sent on this stream.
    pub nacks: u64,
}

/// One rejection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Nack {
    /// RFC 3339.
    pub at: String,
    pub node_id: String,
    pub replica: String,
    /// `cds`, `eds`, `lds`, `rds` or `sds`.
    #[serde(rename = "type")]
    pub type_name: String,
    /// The version Envoy rejected.
    pub version: String,
    /// The resources of that response.
    pub resources: Vec<String>,
    /// Envoy's message.
    pub error: String,
}

/// The report: all replicas' answers together.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub dataplane: String,
    /// The replicas that answered (each answers, connected Envoys or not).
    pub replicas: Vec<String>,
    /// Connected Envoys, by node id.
    pub nodes: Vec<NodeDelivery>,
    /// The most recent NACKs first, at most [`NACK_HISTORY`].
    pub nacks: Vec<Nack>,
}

/// The answers of every replica as one report.
pub fn merge(dataplane: &str, answers: Vec<ReplicaDelivery>) -> Delivery {
    let mut replicas = Vec::new();
    let mut nodes = Vec::new();
    let mut nacks = Vec::new();
    for answer in answers {
        replicas.push(answer.replica);
        nodes.extend(answer.nodes);
        nacks.extend(answer.nacks);
    }
    replicas.sort();
    replicas.dedup();
    nodes.sort_by(|a, b| (&a.node_id, &a.replica).cmp(&(&b.node_id, &b.replica)));
    // RFC 3339 in UTC sorts as text.
    nacks.sort_by(|a, b| b.at.cmp(&a.at));
    nacks.truncate(NACK_HISTORY);
    Delivery {
        dataplane: dataplane.to_string(),
        replicas,
        nodes,
        nacks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nack(at: &str) -> Nack {
        Nack {
            at: at.into(),
            node_id: "n".into(),
            replica: "r".into(),
            type_name: "lds".into(),
            version: "v".into(),
            resources: vec![],
            error: "e".into(),
        }
    }

    #[test]
    fn answers_merge_newest_nacks_first_and_capped() {
        let many = (0..60)
            .map(|i| nack(&format!("2026-12-07T10:00:{i:02}Z")))
            .collect();
        let merged = merge(
            "edge",
            vec![
                ReplicaDelivery {
                    replica: "b".into(),
                    nodes: vec![],
                    nacks: many,
                },
                ReplicaDelivery {
                    replica: "a".into(),
                    nodes: vec![],
                    nacks: vec![nack("2026-12-07T11:00:00Z")],
                },
            ],
        );
        assert_eq!(merged.replicas, ["a", "b"]);
        assert_eq!(merged.nacks.len(), NACK_HISTORY);
        assert_eq!(merged.nacks[0].at, "2026-12-07T11:00:00Z");
        assert_eq!(merged.nacks[1].at, "2026-12-07T10:00:59Z");
    }
}
