//! RPC between the services over RabbitMQ, with `lapin`.
//!
//! # Layout
//! - [`messages`]: the wire types. Pure serde: an [`messages::Envelope`] (version,
//!   request id, caller context, body), a [`Topic`] per service naming its request
//!   enum and version, one argument struct per message (a [`Cast`], or a [`Call`] with
//!   its typed reply), and [`messages::RemoteError`] whose kind survives the hop.
//! - [`topology`]: exchange and queue names (`cinder-volume.<host>@<backend>`, ...).
//! - [`client`]: [`client::RpcClient`]: `cast` (persistent, publisher-confirmed) and
//!   `call` (RabbitMQ direct reply-to, with a timeout).
//! - [`server`]: [`server::RpcServer`] (generic over the topic): consumes a queue with a prefetch, rejects
//!   versions it does not understand (a call gets an `UnsupportedVersion` error; a cast
//!   is dead-lettered to `<queue>.rejected`), and hands each request to the service with
//!   the means to ack it once the work is durably claimed and to reply.
//!
//! # Invariants
//! - This is the only crate that knows AMQP and the wire format.
//! - Variants are never renamed or removed; new fields carry `#[serde(default)]`; a new
//!   major version is refused, never guessed at.
#![warn(missing_docs)]

pub mod client;
pub mod messages;
pub mod server;
pub mod topology;

pub use client::{Caster, RpcClient, RpcError};
pub use messages::{
    Call, Cast, Envelope, Method, RemoteError, RemoteErrorKind, RequestContext, RpcVersion, Topic,
};
pub use server::{Incoming, RpcServer};
