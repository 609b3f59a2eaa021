//! The trash sweep: every `trash_purge_interval`, volume images still in the pool's
//! trash (a purge queued with the mgr that failed, or a parent that waited for its
//! clones to go) are purged. Deletes move images to the trash and queue their purge with
//! the mgr, so this only catches what fell through.

use std::sync::Arc;
use std::time::Duration;

use cinder_common::shutdown::CancellationToken;

use cinder_drivers::VolumeDriver;

/// Sweeps until `shutdown`; the first sweep comes one interval after start.
pub async fn sweep_trash<D: VolumeDriver>(
    driver: Arc<D>,
    host: String,
    interval: Duration,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        match driver.sweep_trash().await {
            Ok(s) if s.purged > 0 || s.waiting > 0 => {
                tracing::info!(backend = %host, purged = s.purged, waiting = s.waiting, "trash swept")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(backend = %host, error = %e, "trash sweep failed"),
        }
    }
}
