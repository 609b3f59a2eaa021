//! Periodic work of a volume service besides the heartbeat (`cinder-service`): the
//! capacity report and the trash sweep. Each runs on the async runtime; librbd work goes through the driver's pool.

pub mod stats;
pub mod trash;

use std::sync::Arc;
use std::time::Duration;

use cinder_common::shutdown::CancellationToken;
use cinder_db::Db;
use cinder_drivers::VolumeDriver;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::VolumeSettings;

/// Starts the capacity report (into `caps`, which the heartbeat writes) and, unless
/// turned off, the trash sweep of backend `host`, until `shutdown`.
pub fn start<D: VolumeDriver>(
    db: &Db,
    driver: &Arc<D>,
    host: &str,
    volume: &VolumeSettings,
    caps: watch::Sender<Option<serde_json::Value>>,
    shutdown: &CancellationToken,
) -> Vec<JoinHandle<()>> {
    let mut tasks = vec![tokio::spawn(stats::report_stats(
        db.clone(),
        driver.clone(),
        host.to_string(),
        Duration::from_secs(volume.backend_stats_polling_interval),
        caps,
        shutdown.clone(),
    ))];
    if volume.trash_purge_interval > 0 {
        tasks.push(tokio::spawn(trash::sweep_trash(
            driver.clone(),
            host.to_string(),
            Duration::from_secs(volume.trash_purge_interval),
            shutdown.clone(),
        )));
    }
    tasks
}
