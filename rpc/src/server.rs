//! The serving side: one durable queue bound to the exchange, a prefetch equal to the
//! service's concurrency, and deliveries handed over unacknowledged: the service acks
//! once it has durably claimed the work (not when a long flatten finishes), so a crash
//! before the claim means redelivery, and a crash after it means start-up reconciliation.
//!
//! Messages the service cannot understand are never dropped silently: a call gets a
//! typed error reply; a cast is dead-lettered to `<queue>.rejected` and logged.

use futures_lite::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::Acker;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, Consumer, ExchangeKind};
use serde::Serialize;

use crate::client::RpcError;
use crate::messages::{Envelope, RemoteError, RemoteErrorKind, Reply, Topic};
use crate::topology::{rejected_queue, DEAD_LETTER_EXCHANGE, EXCHANGE};

/// A consumer of one service queue of topic `T`.
pub struct RpcServer<T: Topic> {
    conn: Connection,
    channel: Channel,
    consumer: Consumer,
    queue: String,
    topic: std::marker::PhantomData<T>,
}

/// One request of topic `T`, not yet acknowledged.
pub struct Incoming<T: Topic> {
    /// The request.
    pub envelope: Envelope<T::Request>,
    /// Whether the broker delivered it before (the service must handle it idempotently).
    pub redelivered: bool,
    acker: Acker,
    reply_to: Option<(ShortString, ShortString)>,
    channel: Channel,
}

async fn publish_reply<R: Serialize>(
    channel: &Channel,
    reply_to: &ShortString,
    correlation_id: &ShortString,
    reply: &Reply<R>,
) -> Result<(), RpcError> {
    let payload = serde_json::to_vec(reply)?;
    channel
        .basic_publish(
            "".into(),
            reply_to.clone(),
            BasicPublishOptions::default(),
            &payload,
            BasicProperties::default()
                .with_correlation_id(correlation_id.clone())
                .with_content_type("application/json".into()),
        )
        .await?;
    Ok(())
}

impl<T: Topic> Incoming<T> {
    /// Whether the caller waits for a reply.
    pub fn is_call(&self) -> bool {
        self.reply_to.is_some()
    }

    /// Acknowledges the delivery: the work is durably claimed (or done).
    pub async fn ack(&self) -> Result<(), RpcError> {
        self.acker.ack(BasicAckOptions::default()).await?;
        Ok(())
    }

    /// Returns the delivery to the queue for another consumer (e.g. shutting down
    /// before claiming it).
    pub async fn requeue(&self) -> Result<(), RpcError> {
        self.acker
            .nack(BasicNackOptions {
                requeue: true,
                ..Default::default()
            })
            .await?;
        Ok(())
    }

    /// Refuses the delivery for good: it goes to `<queue>.rejected` for operators.
    pub async fn reject(&self) -> Result<(), RpcError> {
        self.acker.nack(BasicNackOptions::default()).await?;
        Ok(())
    }

    /// Replies to a call (no-op for a cast).
    pub async fn reply<R: Serialize>(
        &self,
        result: Result<R, RemoteError>,
    ) -> Result<(), RpcError> {
        let Some((reply_to, corr)) = &self.reply_to else {
            return Ok(());
        };
        let reply = match result {
            Ok(r) => Reply::Ok(r),
            Err(e) => Reply::Err(e),
        };
        publish_reply(&self.channel, reply_to, corr, &reply).await
    }
}

impl<T: Topic> RpcServer<T> {
    /// Declares the topology for `queue` (durable, bound to the exchange by its own
    /// name, dead-lettering to `<queue>.rejected`), sets the prefetch, and consumes
    /// requests of topic `T` up to its version.
    pub async fn bind(url: &str, queue: &str, prefetch: u16) -> Result<RpcServer<T>, RpcError> {
        let conn = Connection::connect(
            url,
            ConnectionProperties::default()
                .with_connection_name(format!("cinder-rpc-server {queue}").into()),
        )
        .await?;
        let channel = conn.create_channel().await?;
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        };
        channel
            .exchange_declare(
                EXCHANGE.into(),
                ExchangeKind::Topic,
                durable,
                FieldTable::default(),
            )
            .await?;
        channel
            .exchange_declare(
                DEAD_LETTER_EXCHANGE.into(),
                ExchangeKind::Direct,
                durable,
                FieldTable::default(),
            )
            .await?;
        let rejected = rejected_queue(queue);
        let qopts = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        channel
            .queue_declare(rejected.as_str().into(), qopts, FieldTable::default())
            .await?;
        channel
            .queue_bind(
                rejected.as_str().into(),
                DEAD_LETTER_EXCHANGE.into(),
                rejected.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let mut args = FieldTable::default();
        args.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(DEAD_LETTER_EXCHANGE.into()),
        );
        args.insert(
            "x-dead-letter-routing-key".into(),
            AMQPValue::LongString(rejected.as_str().into()),
        );
        channel.queue_declare(queue.into(), qopts, args).await?;
        channel
            .queue_bind(
                queue.into(),
                EXCHANGE.into(),
                queue.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        channel
            .basic_qos(prefetch, BasicQosOptions::default())
            .await?;
        let consumer = channel
            .basic_consume(
                queue.into(),
                format!("cinder-{}", uuid::Uuid::new_v4()).as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok(RpcServer {
            conn,
            channel,
            consumer,
            queue: queue.to_string(),
            topic: std::marker::PhantomData,
        })
    }

    /// A probe of this server's broker connection, true while it is open (read at any
    /// time, without consuming: a busy service notices a lost broker before its next
    /// delivery would tell it).
    pub fn connected(&self) -> impl Fn() -> bool + Send + Sync + 'static {
        let status = self.conn.status().clone();
        move || status.connected()
    }

    /// The next request this service understands; `None` when the consumer ends.
    /// Requests it does not understand are answered or dead-lettered here.
    pub async fn next(&mut self) -> Option<Result<Incoming<T>, RpcError>> {
        loop {
            let delivery = match self.consumer.next().await? {
                Ok(d) => d,
                Err(e) => return Some(Err(e.into())),
            };
            let reply_to = delivery
                .properties
                .reply_to()
                .clone()
                .zip(delivery.properties.correlation_id().clone());
            let refuse = |kind, message: String| RemoteError {
                kind,
                message,
                retryable: false,
            };
            let verdict =
                match serde_json::from_slice::<Envelope<serde_json::Value>>(&delivery.data) {
                    Err(e) => Err(refuse(
                        RemoteErrorKind::InvalidInput,
                        format!("not an RPC envelope: {e}"),
                    )),
                    Ok(env) if !T::VERSION.accepts(env.version) => Err(refuse(
                        RemoteErrorKind::UnsupportedVersion,
                        format!(
                            "{} speaks RPC version {}, the message is {}",
                            self.queue,
                            T::VERSION,
                            env.version
                        ),
                    )),
                    Ok(env) => match serde_json::from_value::<T::Request>(env.body.clone()) {
                        Ok(body) => Ok(Envelope {
                            version: env.version,
                            request_id: env.request_id,
                            context: env.context,
                            body,
                        }),
                        Err(e) => Err(refuse(
                            RemoteErrorKind::InvalidInput,
                            format!("unknown request: {e}"),
                        )),
                    },
                };
            match verdict {
                Ok(envelope) => {
                    return Some(Ok(Incoming {
                        envelope,
                        redelivered: delivery.redelivered,
                        acker: delivery.acker,
                        reply_to,
                        channel: self.channel.clone(),
                    }))
                }
                Err(err) => {
                    tracing::error!(queue = %self.queue, error = %err.message, "rejecting a message this service does not understand");
                    let outcome = match &reply_to {
                        Some((to, corr)) => {
                            let sent =
                                publish_reply::<()>(&self.channel, to, corr, &Reply::Err(err))
                                    .await;
                            match sent {
                                Ok(()) => delivery
                                    .acker
                                    .ack(BasicAckOptions::default())
                                    .await
                                    .map(|_| ()),
                                Err(_) => delivery
                                    .acker
                                    .nack(BasicNackOptions::default())
                                    .await
                                    .map(|_| ()),
                            }
                        }
                        // Casts go to <queue>.rejected through the dead-letter exchange.
                        None => delivery
                            .acker
                            .nack(BasicNackOptions::default())
                            .await
                            .map(|_| ()),
                    };
                    if let Err(e) = outcome {
                        return Some(Err(e.into()));
                    }
                }
            }
        }
    }
}
