//! The capacity report: every `backend_stats_polling_interval`, provisioned capacity
//! from the database and stored/available from one `df`, handed to the heartbeat, which
//! writes them into the service row for the scheduler. Never a scan of the images.

use std::sync::Arc;
use std::time::Duration;

use cinder_common::shutdown::CancellationToken;
use cinder_db::Db;
use tokio::sync::watch;

use cinder_drivers::VolumeDriver;

/// Reports until `shutdown`; the first report is immediate.
pub async fn report_stats<D: VolumeDriver>(
    db: Db,
    driver: Arc<D>,
    host: String,
    interval: Duration,
    out: watch::Sender<Option<serde_json::Value>>,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        // Taken before the database is read: a report younger than a placement
        // counts that placement (the scheduler writes the host before it casts).
        let taken = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let stats = match db.provisioned_gib(&host).await {
            Ok(p) => match driver.get_volume_stats(p).await {
                Ok(mut caps) => {
                    caps.timestamp = Some(taken.clone());
                    serde_json::to_value(caps).map_err(|e| e.to_string())
                }
                Err(e) => Err(e.to_string()),
            },
            Err(e) => Err(e.to_string()),
        };
        match stats {
            Ok(s) => {
                out.send_replace(Some(s));
            }
            Err(e) => {
                tracing::warn!(backend = %host, error = %e, "capacity report failed; reporting the backend down");
                out.send_replace(Some(serde_json::json!({
                    "backend_state": "down",
                    "volume_backend_name": driver.volume_backend_name(),
                    "timestamp": taken,
                })));
            }
        }
    }
}
