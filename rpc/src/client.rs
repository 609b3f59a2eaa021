//! The calling side: casts are persistent, mandatory and publisher-confirmed; calls use
//! RabbitMQ's direct reply-to (one no-ack consumer on `amq.rabbitmq.reply-to`, opened
//! before the first publish) with a correlation id per call and a timeout.
//!
//! When the connection breaks, the next publish reconnects (once per broken
//! connection, however many callers notice) and is sent again on the new one: casts are
//! at least once (handlers are idempotent). A call whose reply was due on the broken
//! connection times out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_lite::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::oneshot;

use crate::messages::{Call, Cast, Envelope, RemoteError, Reply, RequestContext, Topic};
use crate::topology::{DIRECT_REPLY_TO, EXCHANGE};

/// What can go wrong calling or casting.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// The broker or the connection failed.
    #[error("AMQP: {0}")]
    Amqp(#[from] lapin::Error),
    /// The broker refused the message (publisher nack).
    #[error("the broker did not accept the message")]
    Nacked,
    /// No queue is bound for the routing key: no service serves it.
    #[error("no queue for {0}: is the service running?")]
    Unroutable(String),
    /// No reply within the timeout.
    #[error("no reply from {0} within {1:?}")]
    Timeout(String, Duration),
    /// The service answered with an error.
    #[error("remote error: {0}")]
    Remote(#[from] RemoteError),
    /// A message could not be encoded or decoded.
    #[error("bad message: {0}")]
    Codec(#[from] serde_json::Error),
    /// The client is shutting down.
    #[error("the RPC client is closed")]
    Closed,
}

type Pending = Arc<Mutex<HashMap<String, oneshot::Sender<Vec<u8>>>>>;

/// A connection for casting and calling. Cheap to share behind an `Arc`.
pub struct RpcClient {
    url: String,
    link: tokio::sync::Mutex<Arc<Link>>,
    pending: Pending,
}

/// One connection and its confirming channel.
struct Link {
    _conn: Connection,
    channel: Channel,
}

impl Link {
    /// Connects, declares the exchange, enables publisher confirms and starts the
    /// direct reply-to consumer, which hands replies to `pending`.
    async fn open(url: &str, pending: &Pending) -> Result<Link, RpcError> {
        let conn = Connection::connect(
            url,
            ConnectionProperties::default().with_connection_name("cinder-rpc-client".into()),
        )
        .await?;
        let channel = conn.create_channel().await?;
        channel
            .exchange_declare(
                EXCHANGE.into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        let mut replies = channel
            .basic_consume(
                DIRECT_REPLY_TO.into(),
                "cinder-rpc-replies".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        let waiting = pending.clone();
        tokio::spawn(async move {
            while let Some(Ok(delivery)) = replies.next().await {
                let Some(id) = delivery
                    .properties
                    .correlation_id()
                    .as_ref()
                    .map(|c| c.to_string())
                else {
                    continue;
                };
                let waiter = waiting.lock().ok().and_then(|mut p| p.remove(&id));
                if let Some(tx) = waiter {
                    let _ = tx.send(delivery.data);
                }
            }
        });
        Ok(Link {
            _conn: conn,
            channel,
        })
    }

    async fn publish(
        &self,
        queue: &str,
        payload: &[u8],
        props: BasicProperties,
    ) -> Result<(), RpcError> {
        let confirm = self
            .channel
            .basic_publish(
                EXCHANGE.into(),
                queue.into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                payload,
                props,
            )
            .await?
            .await?;
        match confirm {
            Confirmation::Ack(None) => Ok(()),
            Confirmation::Ack(Some(_returned)) => Err(RpcError::Unroutable(queue.to_string())),
            Confirmation::Nack(_) => Err(RpcError::Nacked),
            Confirmation::NotRequested => Ok(()),
        }
    }
}

impl RpcClient {
    /// Connects, declares the exchange, enables publisher confirms and starts the
    /// direct reply-to consumer.
    pub async fn connect(url: &str) -> Result<RpcClient, RpcError> {
        let pending: Pending = Arc::default();
        let link = Link::open(url, &pending).await?;
        Ok(RpcClient {
            url: url.to_string(),
            link: tokio::sync::Mutex::new(Arc::new(link)),
            pending,
        })
    }

    /// Publishes on the current connection; when it has broken, reconnects and
    /// publishes again on the new one.
    async fn publish(
        &self,
        queue: &str,
        payload: &[u8],
        props: BasicProperties,
    ) -> Result<(), RpcError> {
        let link = self.link.lock().await.clone();
        match link.publish(queue, payload, props.clone()).await {
            Err(RpcError::Amqp(e)) => {
                tracing::warn!(error = %e, "broker connection lost; reconnecting to publish again");
                let link = {
                    let mut current = self.link.lock().await;
                    if Arc::ptr_eq(&current, &link) {
                        *current = Arc::new(Link::open(&self.url, &self.pending).await?);
                    }
                    current.clone()
                };
                link.publish(queue, payload, props).await
            }
            r => r,
        }
    }

    fn properties() -> BasicProperties {
        BasicProperties::default()
            .with_content_type("application/json".into())
            .with_delivery_mode(2)
    }

    /// Casts `msg` to `queue` (persistent; returns once the broker confirmed it), at
    /// its topic's version. Returns the request id.
    pub async fn cast<M: Cast>(
        &self,
        queue: &str,
        context: RequestContext,
        msg: M,
    ) -> Result<String, RpcError> {
        self.cast_request::<M::Topic>(queue, context, msg.into())
            .await
    }

    /// Casts `body`, any request of topic `T` (a value of its request enum), at the
    /// topic's version. Returns the request id.
    pub async fn cast_request<T: Topic>(
        &self,
        queue: &str,
        context: RequestContext,
        body: T::Request,
    ) -> Result<String, RpcError> {
        let env = Envelope::new(T::version_of(&body), context, body);
        self.cast_envelope(queue, &env).await?;
        Ok(env.request_id)
    }

    /// Casts a prepared envelope (any body; tests use it for foreign versions).
    pub async fn cast_envelope<B: Serialize>(
        &self,
        queue: &str,
        env: &Envelope<B>,
    ) -> Result<(), RpcError> {
        let payload = serde_json::to_vec(env)?;
        self.publish(
            queue,
            &payload,
            Self::properties().with_message_id(env.request_id.as_str().into()),
        )
        .await
    }

    /// Calls `queue` and waits up to `timeout` for the typed reply.
    pub async fn call<M: Call>(
        &self,
        queue: &str,
        context: RequestContext,
        msg: M,
        timeout: Duration,
    ) -> Result<M::Reply, RpcError> {
        let body: <M::Topic as Topic>::Request = msg.into();
        let env = Envelope::new(M::Topic::version_of(&body), context, body);
        self.call_envelope(queue, &env, timeout).await
    }

    /// Calls with a prepared envelope.
    pub async fn call_envelope<B: Serialize, R: DeserializeOwned>(
        &self,
        queue: &str,
        env: &Envelope<B>,
        timeout: Duration,
    ) -> Result<R, RpcError> {
        let id = uuid::Uuid::new_v4().to_string();
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .map_err(|_| RpcError::Closed)?
            .insert(id.clone(), tx);
        let props = Self::properties()
            .with_delivery_mode(1)
            .with_reply_to(DIRECT_REPLY_TO.into())
            .with_correlation_id(id.as_str().into())
            .with_message_id(env.request_id.as_str().into());
        let sent = async {
            self.publish(queue, &serde_json::to_vec(env)?, props)
                .await?;
            match tokio::time::timeout(timeout, rx).await {
                Err(_) => Err(RpcError::Timeout(queue.to_string(), timeout)),
                Ok(Err(_)) => Err(RpcError::Closed),
                Ok(Ok(data)) => match serde_json::from_slice::<Reply<R>>(&data)? {
                    Reply::Ok(r) => Ok(r),
                    Reply::Err(e) => Err(RpcError::Remote(e)),
                },
            }
        }
        .await;
        if let Ok(mut p) = self.pending.lock() {
            p.remove(&id);
        }
        sent
    }
}

/// A client for long-lived services: connects on first use (a service may start before
/// the broker answers), then is an [`RpcClient`], which replaces a broken connection on
/// the next publish.
pub struct Caster {
    url: String,
    client: tokio::sync::OnceCell<RpcClient>,
}

impl Caster {
    /// A caster for the broker at `url` (nothing connects yet).
    pub fn new(url: &str) -> Self {
        Caster {
            url: url.to_string(),
            client: tokio::sync::OnceCell::new(),
        }
    }

    async fn client(&self) -> Result<&RpcClient, RpcError> {
        self.client
            .get_or_try_init(|| RpcClient::connect(&self.url))
            .await
    }

    /// Casts `body` of topic `T` to `queue`; returns once the broker confirmed it.
    pub async fn cast_request<T: Topic>(
        &self,
        queue: &str,
        context: &RequestContext,
        body: T::Request,
    ) -> Result<String, RpcError> {
        self.client()
            .await?
            .cast_request::<T>(queue, context.clone(), body)
            .await
    }

    /// Casts `body` under the caller's request id (`req-<uuid>`, the API's), so the
    /// receiving service's spans carry it.
    pub async fn cast_as<T: Topic>(
        &self,
        queue: &str,
        request_id: &str,
        context: &RequestContext,
        body: T::Request,
    ) -> Result<(), RpcError> {
        let mut env = crate::messages::Envelope::new(T::version_of(&body), context.clone(), body);
        env.request_id = request_id.to_string();
        self.client().await?.cast_envelope(queue, &env).await
    }

    /// Calls `queue` under the caller's request id and waits up to `timeout`.
    pub async fn call_as<M: Call>(
        &self,
        queue: &str,
        request_id: &str,
        context: &RequestContext,
        msg: M,
        timeout: Duration,
    ) -> Result<M::Reply, RpcError> {
        let body: <M::Topic as Topic>::Request = msg.into();
        let mut env =
            crate::messages::Envelope::new(M::Topic::version_of(&body), context.clone(), body);
        env.request_id = request_id.to_string();
        self.client()
            .await?
            .call_envelope(queue, &env, timeout)
            .await
    }

    /// Calls `queue` and waits up to `timeout` for the typed reply.
    pub async fn call<M: Call>(
        &self,
        queue: &str,
        context: &RequestContext,
        msg: M,
        timeout: Duration,
    ) -> Result<M::Reply, RpcError> {
        self.client()
            .await?
            .call(queue, context.clone(), msg, timeout)
            .await
    }
}
