//! The scheduler's requests: `create_volume` (place, write the host, cast to the
//! backend, then ack) and `get_pools`.
//!
//! Exactly once: the placement is a conditional write (`creating`, placed nowhere), so
//! of two schedulers given the same request (a redelivery) only one casts; the delivery
//! is acknowledged only once the cast is confirmed by the broker, so a scheduler that
//! dies loses nothing. A cast that fails takes its placement back and returns the
//! request to the queue.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cinder_common::messages::{self, Detail};
use cinder_common::ops::{volume, Outcome};
use cinder_common::status::VolumeStatus;
use cinder_db::{Db, Ending, NewMessage, Placement};
use cinder_rpc::messages::{
    CreateVolume, GetPools, Pool, ScheduleCreateVolume, SchedulerRequest, SchedulerTopic,
    VolumeTopic,
};
use cinder_rpc::{Caster, Incoming, RemoteError, RpcError};
use cinder_service::Handler;
use tokio::sync::OwnedSemaphorePermit;
use tracing::Instrument;

use crate::core::{filters, Filter, NoValidBackend, Request, Weighers};
use crate::view::{Chosen, View};

/// Handles the scheduler topic.
pub struct SchedulerManager {
    db: Db,
    view: Arc<Mutex<View>>,
    weighers: Weighers,
    max_attempts: u32,
    rpc: Caster,
}

impl Handler<SchedulerTopic> for SchedulerManager {
    async fn handle(self: Arc<Self>, req: Incoming<SchedulerTopic>, intake: OwnedSemaphorePermit) {
        let span = tracing::info_span!("scheduler", request_id = %req.envelope.request_id);
        async move {
            let r = match req.envelope.body.clone() {
                SchedulerRequest::ScheduleCreateVolume(c) => self.create_volume(&req, c).await,
                SchedulerRequest::GetPools(g) => {
                    let pools = self.get_pools(&g);
                    match req.reply(Ok::<_, RemoteError>(pools)).await {
                        Ok(()) => req.ack().await,
                        Err(e) => Err(e),
                    }
                }
            };
            if let Err(e) = r {
                tracing::warn!(error = %e, "a scheduler request could not be answered; the broker redelivers it");
            }
            drop(intake);
        }
        .instrument(span)
        .await
    }
}

/// Why a create cannot be placed: the user message's detail and the log's reason.
fn detail_of(e: &NoValidBackend) -> Detail {
    match e.filter {
        None => messages::NO_BACKEND_AVAILABLE,
        Some(Filter::BackendState) => messages::BACKENDS_DOWN,
        Some(Filter::Retry) => messages::ATTEMPTS_EXHAUSTED,
        Some(Filter::SourceBackend) => messages::SOURCE_BACKEND_UNAVAILABLE,
        Some(Filter::AvailabilityZone) => messages::NO_BACKEND_IN_ZONE,
        Some(Filter::Capacity) => messages::INSUFFICIENT_CAPACITY,
        Some(Filter::Capabilities) => messages::NO_MATCHING_CAPABILITIES,
        Some(Filter::SameBackend | Filter::DifferentBackend) => messages::HINTS_UNSATISFIED,
    }
}

impl SchedulerManager {
    pub(crate) fn new(
        db: Db,
        view: Arc<Mutex<View>>,
        weighers: Weighers,
        max_attempts: u32,
        rpc: Caster,
    ) -> Self {
        SchedulerManager {
            db,
            view,
            weighers,
            max_attempts,
            rpc,
        }
    }

    fn view(&self) -> std::sync::MutexGuard<'_, View> {
        self.view.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Places one create. Errors are the broker's (the delivery is redelivered).
    async fn create_volume(
        &self,
        req: &Incoming<SchedulerTopic>,
        c: ScheduleCreateVolume,
    ) -> Result<(), RpcError> {
        let span = tracing::info_span!("create_volume", volume_id = %c.volume_id, attempt = c.retry.num_attempts + 1);
        async {
            // No read of the row first: the placement is conditional (still `creating`,
            // placed nowhere), so a duplicate or a volume that moved on is found there.
            // A create that failed on a backend: what it took there comes back.
            if let Some(last) = c.retry.backends.last() {
                tracing::warn!(failed_on = %last, reason = ?c.retry.exc, "rescheduling a create that failed");
                self.view().give_back(last, &c.volume_id);
            }
            let placed = if c.retry.num_attempts >= self.max_attempts {
                Err(NoValidBackend {
                    filter: Some(Filter::Retry),
                    reason: format!(
                        "Exceeded max scheduling attempts {} for resource {} (tried: {}; last failure: {})",
                        self.max_attempts,
                        c.volume_id,
                        c.retry.backends.join(", "),
                        c.retry.exc.as_deref().unwrap_or("unknown")
                    ),
                })
            } else {
                let project = req.envelope.context.project_id.as_deref();
                match self.request_of(&c, project).await {
                    Ok(Ok(r)) => self.view().choose(&c.volume_id, &r, &self.weighers),
                    Ok(Err(no)) => Err(no),
                    Err(e) => return self.later(req, &e.to_string()).await,
                }
            };
            let chosen = match placed {
                Ok(chosen) => chosen,
                Err(no) => return self.no_valid_backend(req, &c, &no).await,
            };
            self.place(req, c, chosen).await
        }
        .instrument(span)
        .await
    }

    /// Writes the placement, casts, acks; undoes the placement when the cast fails.
    async fn place(
        &self,
        req: &Incoming<SchedulerTopic>,
        c: ScheduleCreateVolume,
        chosen: Chosen,
    ) -> Result<(), RpcError> {
        let at = Placement {
            host: chosen.host.clone(),
            cluster_name: chosen.cluster_name.clone(),
            availability_zone: chosen.availability_zone.clone(),
        };
        match self.db.place_volume(&c.volume_id, &at).await {
            Ok(true) => self.view().written(&chosen.pool, &c.volume_id),
            Ok(false) => {
                self.view().give_back(&chosen.pool, &c.volume_id);
                tracing::info!("placed by another scheduler meanwhile, or no longer creating");
                return req.ack().await;
            }
            Err(e) => {
                self.view().give_back(&chosen.pool, &c.volume_id);
                return self.later(req, &e.to_string()).await;
            }
        }
        let backend = filters::backend_of(&chosen.host).to_string();
        let queue = match &chosen.cluster_name {
            Some(cluster) => cinder_rpc::topology::cluster_queue(cluster),
            None => cinder_rpc::topology::backend_queue(&backend),
        };
        let mut schedule = c.clone();
        schedule.retry.num_attempts += 1;
        schedule.retry.backends.push(chosen.pool.clone());
        schedule.retry.exc = None;
        let msg = CreateVolume {
            volume_id: c.volume_id.clone(),
            size_gib: c.size_gib,
            snapshot_id: c.snapshot_id.clone(),
            source_volid: c.source_volid.clone(),
            image_location: c.image_location.clone(),
            image: c.image.clone(),
            schedule: (self.max_attempts > 1).then(|| Box::new(schedule)),
        };
        match self
            .rpc
            .cast_request::<VolumeTopic>(&queue, &req.envelope.context, msg.into())
            .await
        {
            Ok(_) => {
                tracing::info!(host = %chosen.host, queue = %queue, "volume placed");
                req.ack().await
            }
            Err(e) => {
                tracing::warn!(host = %chosen.host, error = %e, "the cast to the backend failed; taking the placement back");
                self.view().give_back(&chosen.pool, &c.volume_id);
                if let Err(e) = self.db.unplace_volume(&c.volume_id, &backend).await {
                    tracing::error!(error = %e, "cannot take the placement back");
                }
                self.later(req, &e.to_string()).await
            }
        }
    }

    /// The core's request for `c`: hints and the source's backend resolved from the
    /// database (`Ok(Err)`: the source has no backend to stay on).
    async fn request_of(
        &self,
        c: &ScheduleCreateVolume,
        project: Option<&str>,
    ) -> Result<Result<Request, NoValidBackend>, cinder_db::Error> {
        let hints = &c.scheduler_hints;
        let resolve = |ids: &Option<Vec<String>>| {
            let ids = ids.clone();
            async move {
                match ids {
                    None => Ok(None),
                    Some(ids) => self.db.hosts_of_volumes(&ids, project).await.map(Some),
                }
            }
        };
        let same_host = resolve(&hints.same_host).await?;
        let different_host = resolve(&hints.different_host).await?;
        let source_volume = match (&c.snapshot_id, &c.source_volid) {
            (Some(s), _) => Some(self.db.snapshot(s).await?.volume_id),
            (None, Some(v)) => Some(v.clone()),
            _ => None,
        };
        let source_backend = match source_volume {
            None => None,
            Some(v) => {
                let src = match self.db.volume(&v).await {
                    Ok(src) => src,
                    Err(cinder_db::Error::NotFound { .. }) => {
                        return Ok(Err(NoValidBackend {
                            filter: Some(Filter::SourceBackend),
                            reason: format!("the source volume {v} is gone"),
                        }))
                    }
                    Err(e) => return Err(e),
                };
                match src.cluster_name.or(src.host) {
                    Some(h) => Some(h),
                    None => {
                        return Ok(Err(NoValidBackend {
                            filter: Some(Filter::SourceBackend),
                            reason: format!("the source volume {v} is on no backend"),
                        }))
                    }
                }
            }
        };
        Ok(Ok(Request {
            size_gib: c.size_gib,
            availability_zone: c.availability_zone.clone(),
            extra_specs: c
                .volume_type
                .as_ref()
                .map(|t| t.extra_specs.clone())
                .unwrap_or_default(),
            same_host,
            different_host,
            tried: c.retry.backends.clone(),
            source_backend,
            // Only raw images are cloned: others are downloaded wherever they land.
            image_clusters: c
                .image
                .as_ref()
                .filter(|i| i.disk_format.as_deref() == Some("raw"))
                .map(|i| i.rbd_fsids().into_iter().map(str::to_string).collect())
                .unwrap_or_default(),
        }))
    }

    /// No backend fits: the volume goes to `error`, with a user message saying why.
    async fn no_valid_backend(
        &self,
        req: &Incoming<SchedulerTopic>,
        c: &ScheduleCreateVolume,
        no: &NoValidBackend,
    ) -> Result<(), RpcError> {
        let project = match self.db.volume(&c.volume_id).await {
            Ok(v) if v.status == VolumeStatus::Creating && v.host.is_none() => v.project_id,
            Ok(_) | Err(cinder_db::Error::NotFound { .. }) => {
                tracing::info!("placed elsewhere meanwhile, or no longer creating");
                return req.ack().await;
            }
            Err(e) => return self.later(req, &e.to_string()).await,
        };
        tracing::warn!(reason = %no, filter = ?no.filter.map(Filter::name), "no valid backend: the volume goes to error");
        // The message first, then the status (as Cinder): whoever sees `error` finds
        // the reason.
        let m = NewMessage::volume_error(
            project,
            req.envelope.request_id.clone(),
            &c.volume_id,
            messages::SCHEDULE_ALLOCATE_VOLUME,
            detail_of(no),
        );
        if let Err(e) = self.db.create_message(&m).await {
            tracing::error!(error = %e, "cannot record the user message");
        }
        let ending = Ending::volume(&volume::CREATE, &c.volume_id, Outcome::Failed);
        match self.db.finish(None, &ending).await {
            Ok(()) => {}
            Err(cinder_db::Error::Conflict { .. } | cinder_db::Error::NotFound { .. }) => {
                tracing::info!("the volume moved on meanwhile");
                return req.ack().await;
            }
            Err(e) => return self.later(req, &e.to_string()).await,
        }
        req.ack().await
    }

    /// The database or broker failed: the request goes back to the queue, after a
    /// pause so a persistent failure does not spin.
    async fn later(&self, req: &Incoming<SchedulerTopic>, why: &str) -> Result<(), RpcError> {
        tracing::warn!(error = %why, "cannot place now; the request goes back to the queue");
        tokio::time::sleep(Duration::from_millis(500)).await;
        req.requeue().await
    }

    /// `get_pools`: the pools in view, with their reported capabilities on `detail`;
    /// by name, or those a volume type's extra specs match.
    pub fn get_pools(&self, g: &GetPools) -> Vec<Pool> {
        let specs = g
            .volume_type
            .as_ref()
            .map(|t| filters::Specs::compile(&t.extra_specs));
        let view = self.view();
        view.pools()
            .iter()
            .filter(|p| g.name.as_ref().is_none_or(|n| *n == p.name))
            .filter(|p| specs.as_ref().is_none_or(|s| filters::matches_specs(p, s)))
            .map(|p| Pool {
                name: p.name.clone(),
                capabilities: g.detail.then(|| serde_json::Value::Object(p.raw.clone())),
            })
            .collect()
    }
}
