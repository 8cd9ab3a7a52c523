//! The transport's side of a region (issue 12, decision 0021): the
//! application answering another node's `POST /internal/slice`, and sending
//! a whole request to a node that holds what it needs
//! ([`crate::server::Peers`]).

use crate::context::Caller;
use crate::server::{DownloadRefusal, Peers};
use async_trait::async_trait;
use registre_app::cluster::SliceRequest;
use registre_app::{ApiError, App};
use registre_store::Partition;
use std::sync::Arc;

/// The application as the other nodes of its region see it.
#[derive(Debug)]
pub struct AppPeers(pub Arc<App>);

#[async_trait]
impl Peers for AppPeers {
    async fn slice(&self, node_key: Option<&str>, body: &[u8]) -> Result<Vec<u8>, DownloadRefusal> {
        let app = &self.0;
        if !app.cluster().authenticates(node_key) {
            return Err(DownloadRefusal::from(&ApiError::Unauthenticated(
                "an internal request needs the node key".into(),
            )));
        }
        let request: SliceRequest = serde_json::from_slice(body).map_err(|e| {
            DownloadRefusal::from(&ApiError::invalid(
                "body",
                format!("not a slice request: {e}"),
            ))
        })?;
        app.slice_bytes(&request)
            .await
            .map_err(|e| DownloadRefusal::from(&e))
    }

    async fn forward(
        &self,
        partition: &str,
        authorization: Option<&str>,
        body: Vec<u8>,
    ) -> Result<(u16, Vec<u8>), DownloadRefusal> {
        let refuse = |e: ApiError| DownloadRefusal::from(&e);
        let partition =
            Partition::from_stored(partition.to_owned()).map_err(|e| refuse(ApiError::from(e)))?;
        self.0
            .cluster()
            .forward_graphql(&partition, authorization, body)
            .await
            .map_err(refuse)
    }

    fn home_elsewhere(&self, caller: &Caller) -> Option<String> {
        self.0.home_elsewhere(caller).map(|p| p.as_str().to_owned())
    }
}
