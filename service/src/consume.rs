//! Consuming a topic's queues: at most `prefetch` requests taken in at once (the
//! broker's prefetch matches), a task per request on one tracker, reconnection with
//! backoff when the broker goes away, and at shutdown: stop consuming, give running
//! work a grace period, then let the caller cancel what still runs, then close.
//!
//! The intake budget and the tracker outlive connections: when the broker goes away,
//! running work carries on (its acks fail and the broker redelivers; handlers are
//! idempotent) while the consumer reconnects.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cinder_common::shutdown::CancellationToken;
use cinder_rpc::{Incoming, RpcError, RpcServer, Topic};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::task::TaskTracker;

/// What handles a topic's requests.
pub trait Handler<T: Topic>: Send + Sync + 'static {
    /// Handles one request to its end; `intake` is its slot of the intake budget.
    fn handle(
        self: Arc<Self>,
        req: Incoming<T>,
        intake: OwnedSemaphorePermit,
    ) -> impl Future<Output = ()> + Send;
}

/// The intake of one service: its broker, budget, tracker and shutdown.
#[derive(Clone)]
pub struct Intake {
    amqp: String,
    prefetch: usize,
    permits: Arc<Semaphore>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    /// Consumers whose broker connection is lost and not yet back.
    cut_off: Arc<AtomicUsize>,
    /// Each queue's connection probe (its current server's).
    links: Arc<Mutex<HashMap<String, Link>>>,
}

/// A probe of one broker connection.
type Link = Box<dyn Fn() -> bool + Send + Sync>;

/// Why one serving loop returned.
enum Ended {
    Shutdown,
    ConsumerLost,
}

impl Intake {
    /// An intake of `prefetch` requests at once from the broker at `amqp`.
    pub fn new(amqp: &str, prefetch: usize, shutdown: CancellationToken) -> Self {
        Intake {
            amqp: amqp.to_string(),
            prefetch: prefetch.max(1),
            permits: Arc::new(Semaphore::new(prefetch.max(1))),
            tracker: TaskTracker::new(),
            shutdown,
            cut_off: Arc::new(AtomicUsize::new(0)),
            links: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    fn link<T: Topic>(&self, queue: &str, server: &RpcServer<T>) {
        if let Ok(mut l) = self.links.lock() {
            l.insert(queue.to_string(), Box::new(server.connected()));
        }
    }

    /// Whether every consumer has its broker connection (false from the moment one
    /// loses it until it is back): what the service's health reports.
    pub fn broker_connected(&self) -> bool {
        (self.broker_probe())()
    }

    /// A handle that reads [`Intake::broker_connected`] (for metrics): no consumer is
    /// reconnecting and every connection is open (read from the connection itself, so
    /// a service whose intake is full sees the broker go at once).
    pub fn broker_probe(&self) -> impl Fn() -> bool + Send + Sync + 'static {
        let (cut_off, links) = (self.cut_off.clone(), self.links.clone());
        move || {
            cut_off.load(Ordering::Relaxed) == 0
                && links
                    .lock()
                    .map(|l| l.values().all(|up| up()))
                    .unwrap_or(false)
        }
    }

    /// Binds `queue` of topic `T` (fails when the broker is unreachable).
    pub async fn bind<T: Topic>(&self, queue: &str) -> Result<RpcServer<T>, RpcError> {
        RpcServer::bind(
            &self.amqp,
            queue,
            self.prefetch.min(u16::MAX as usize) as u16,
        )
        .await
    }

    /// Serves `queues` with `handler` until shutdown, then drains: running work gets
    /// `grace`; when it overruns, `overrun` is called (to cancel long work) and the
    /// rest is awaited. The connections close last, returning prefetched, unclaimed
    /// deliveries to their queues.
    pub async fn serve<T: Topic, H: Handler<T>>(
        &self,
        handler: Arc<H>,
        queues: Vec<(String, RpcServer<T>)>,
        grace: Duration,
        overrun: impl FnOnce(),
    ) {
        let consumers: Vec<_> = queues
            .into_iter()
            .map(|(queue, server)| {
                self.link(&queue, &server);
                let (me, handler) = (self.clone(), handler.clone());
                tokio::spawn(async move { me.consume(handler, queue, server).await })
            })
            .collect();
        let mut servers = Vec::new();
        for c in consumers {
            match c.await {
                Ok(s) => servers.push(s),
                Err(e) => tracing::error!(error = %e, "a consumer task failed"),
            }
        }
        self.tracker.close();
        if tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                ?grace,
                "requests still running after the grace period; cancelling long work"
            );
            overrun();
            self.tracker.wait().await;
        }
        drop(servers);
    }

    /// Consumes `queue` until shutdown, reconnecting with backoff; returns the last
    /// server, so the caller closes it only after running work ended.
    async fn consume<T: Topic, H: Handler<T>>(
        &self,
        handler: Arc<H>,
        queue: String,
        server: RpcServer<T>,
    ) -> Option<RpcServer<T>> {
        let mut server = Some(server);
        let mut backoff = Duration::from_millis(200);
        while let Some(current) = server.as_mut() {
            match self.serve_one(&handler, current).await {
                Ended::Shutdown => break,
                Ended::ConsumerLost => {
                    server = None;
                    self.cut_off.fetch_add(1, Ordering::Relaxed);
                    while server.is_none() && !self.shutdown.is_cancelled() {
                        tracing::warn!(queue = %queue, retry_in = ?backoff, "broker connection lost; reconnecting");
                        tokio::select! {
                            _ = self.shutdown.cancelled() => break,
                            _ = tokio::time::sleep(backoff) => {}
                        }
                        match self.bind::<T>(&queue).await {
                            Ok(s) => {
                                tracing::info!(queue = %queue, "reconnected to the broker");
                                self.link(&queue, &s);
                                self.cut_off.fetch_sub(1, Ordering::Relaxed);
                                server = Some(s);
                                backoff = Duration::from_millis(200);
                            }
                            Err(e) => {
                                tracing::warn!(queue = %queue, error = %e, "reconnect failed");
                                backoff = (backoff * 2).min(Duration::from_secs(10));
                            }
                        }
                    }
                }
            }
        }
        server
    }

    /// Serves one connection until shutdown or the consumer ends.
    async fn serve_one<T: Topic, H: Handler<T>>(
        &self,
        handler: &Arc<H>,
        server: &mut RpcServer<T>,
    ) -> Ended {
        loop {
            let permit = tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => return Ended::Shutdown,
                p = self.permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return Ended::Shutdown },
            };
            let next = tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => return Ended::Shutdown,
                n = server.next() => n,
            };
            match next {
                Some(Ok(req)) => {
                    let handler = handler.clone();
                    self.tracker.spawn(handler.handle(req, permit));
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "RPC consumer failed");
                    return Ended::ConsumerLost;
                }
                None => return Ended::ConsumerLost,
            }
        }
    }
}
