//! Calls: `initialize_connection` (Nova's `rbd` connection info) and
//! `get_capabilities`. No claim, no status: they reply, then ack.

use cinder_drivers::DriverErrorKind as K;
use cinder_rpc::messages::{ConnectionInfo, InitializeConnection, RemoteErrorKind};
use cinder_rpc::RemoteError;

use crate::manager::VolumeManager;
use cinder_drivers::{DriverError, VolumeDriver};

pub(crate) async fn initialize<D: VolumeDriver>(
    m: &VolumeManager<D>,
    c: &InitializeConnection,
) -> Result<ConnectionInfo, RemoteError> {
    let c = m
        .driver
        .initialize_connection(&c.volume_id, &c.connector)
        .await
        .map_err(|e| remote(&e))?;
    Ok(ConnectionInfo {
        driver_volume_type: c.driver_volume_type,
        data: c.data,
    })
}

pub(crate) async fn capabilities<D: VolumeDriver>(
    m: &VolumeManager<D>,
) -> Result<serde_json::Value, RemoteError> {
    match m.db.provisioned_gib(&m.host).await {
        Ok(p) => {
            let caps = m.driver.get_volume_stats(p).await.map_err(|e| remote(&e))?;
            serde_json::to_value(caps).map_err(|e| RemoteError {
                kind: RemoteErrorKind::Internal,
                message: e.to_string(),
                retryable: false,
            })
        }
        Err(e) => Err(db_unavailable(&e)),
    }
}

/// A database failure as the caller sees it.
pub(crate) fn db_unavailable(e: &cinder_db::Error) -> RemoteError {
    RemoteError {
        kind: RemoteErrorKind::Unavailable,
        message: format!("database: {e}"),
        retryable: false,
    }
}

/// A driver failure as the caller sees it: a kind that survives the hop.
pub(crate) fn remote(e: &DriverError) -> RemoteError {
    let kind = match e.kind {
        K::NotFound => RemoteErrorKind::NotFound,
        K::Busy | K::HasDependents => RemoteErrorKind::Busy,
        K::InvalidInput | K::AlreadyExists => RemoteErrorKind::InvalidInput,
        K::Unavailable => RemoteErrorKind::Unavailable,
        K::Cancelled | K::Other | K::NotCloneable | K::PermissionDenied => {
            RemoteErrorKind::Internal
        }
    };
    RemoteError {
        kind,
        message: e.to_string(),
        retryable: matches!(kind, RemoteErrorKind::Unavailable),
    }
}
