//! Calls: `initialize_connection` (Nova's `rbd` connection info) and
//! `get_capabilities`. No claim, no status: they reply, then ack.

use cinder_rpc::messages::{ConnectionInfo, InitializeConnection, RemoteErrorKind};
use cinder_rpc::RemoteError;

use crate::drivers::{VolumeDriver, VolumeError};
use crate::manager::VolumeManager;

pub(crate) async fn initialize<D: VolumeDriver>(
    m: &VolumeManager<D>,
    c: &InitializeConnection,
) -> Result<ConnectionInfo, RemoteError> {
    m.driver
        .initialize_connection(&c.volume_id, &c.connector)
        .await
        .map_err(|e| remote(&e))
}

pub(crate) async fn capabilities<D: VolumeDriver>(
    m: &VolumeManager<D>,
) -> Result<serde_json::Value, RemoteError> {
    match m.db.provisioned_gib(&m.host).await {
        Ok(p) => m.driver.get_volume_stats(p).await.map_err(|e| remote(&e)),
        Err(e) => Err(RemoteError {
            kind: RemoteErrorKind::Unavailable,
            message: format!("database: {e}"),
            retryable: true,
        }),
    }
}

/// A driver failure as the caller sees it: a kind that survives the hop.
fn remote(e: &VolumeError) -> RemoteError {
    let kind = e.remote_kind();
    RemoteError {
        kind,
        message: e.to_string(),
        retryable: matches!(kind, RemoteErrorKind::Unavailable),
    }
}
