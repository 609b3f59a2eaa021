//! The scheduler: takes `create_volume` from the `cinder-scheduler` queue (which any
//! number of schedulers share), places each volume on a pool of a volume service that is
//! enabled and up, writes the placement, and casts the create to that service.
//!
//! # Layout
//! - [`core`]: filters and weighers, plain functions over plain data (no I/O).
//! - [`view`]: the pools in view, refreshed from the `services` rows, with placements
//!   deducted at once.
//! - [`manager`]: the requests (`create_volume`, `get_pools`).
//! - [`settings`]: the `[scheduler]` section.
#![warn(missing_docs)]

pub mod core;
pub mod manager;
pub mod settings;
pub mod view;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use cinder_common::shutdown::CancellationToken;
use cinder_db::{Db, ServiceRegistration};
use cinder_rpc::messages::SchedulerTopic;
use cinder_service::Intake;
use tokio::sync::watch;

pub use settings::{SchedulerSettings, Settings};
use view::View;

/// Runs until `shutdown` is cancelled.
pub async fn run(settings: Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    let db = Db::connect_checked(settings.common.database.connection.expose()).await?;
    let sched = &settings.scheduler;
    let weighers = sched.weighers()?;
    let service = &settings.common.service;
    let amqp = settings.common.amqp.transport_url.expose();
    let registration = ServiceRegistration {
        host: service.host.clone(),
        binary: "cinder-scheduler".into(),
        topic: "cinder-scheduler".into(),
        availability_zone: service.storage_availability_zone.clone(),
        cluster_name: None,
    };
    let (_no_caps, caps) = watch::channel(None);
    let registered = cinder_service::register(
        &db,
        &registration,
        Duration::from_secs(service.report_interval),
        caps,
        shutdown.clone(),
    )
    .await
    .context("registering the scheduler")?;

    let view = Arc::new(Mutex::new(View::default()));
    let down_time = Duration::from_secs(service.down_time());
    refresh(&db, &view, down_time).await?;
    let refresher = tokio::spawn(refresh_forever(
        db.clone(),
        view.clone(),
        down_time,
        Duration::from_millis(sched.refresh_interval_ms.max(50)),
        shutdown.clone(),
    ));

    let intake = Intake::new(amqp, sched.max_concurrent_requests, shutdown.clone());
    let queue = settings.common.amqp.scheduler_topic.as_str();
    let server = intake
        .bind::<SchedulerTopic>(queue)
        .await
        .with_context(|| format!("cannot consume {queue}"))?;
    let manager = Arc::new(manager::SchedulerManager::new(
        db,
        view,
        weighers,
        sched.scheduler_max_attempts,
        cinder_rpc::Caster::new(amqp),
    ));
    tracing::info!(host = %service.host, "cinder-scheduler serving");
    intake
        .serve(
            manager,
            vec![(queue.to_string(), server)],
            Duration::from_secs(10),
            || {},
        )
        .await;
    if let Err(e) = refresher.await {
        tracing::error!(error = %e, "the view's refresher failed");
    }
    registered.stopped().await;
    tracing::info!("cinder-scheduler stopped");
    Ok(())
}

async fn refresh(db: &Db, view: &Mutex<View>, down_time: Duration) -> Result<(), cinder_db::Error> {
    let rows = db.volume_services().await?;
    let now = chrono::Utc::now().naive_utc();
    // Parsed outside the lock: placements go on meanwhile.
    let reports = View::read(&rows, now, down_time);
    view.lock()
        .unwrap_or_else(|p| p.into_inner())
        .merge(reports);
    Ok(())
}

async fn refresh_forever(
    db: Db,
    view: Arc<Mutex<View>>,
    down_time: Duration,
    every: Duration,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        if let Err(e) = refresh(&db, &view, down_time).await {
            tracing::warn!(error = %e, "cannot read the volume services; placing on what was last seen");
        }
    }
}
