//! The wire types. Pure serde, no AMQP.
//!
//! A [`Topic`] names its request enum and its version; each topic's module keeps its
//! version history ([`volume`]). Every message has one argument struct of its own,
//! which says whether it is a [`Cast`] or a [`Call`] (with its typed reply); the
//! request enum is `{"method": ..., "args": ...}` on the wire and knows each variant's
//! method name ([`Method`]).
//!
//! Compatibility: a minor bump adds methods or fields (`#[serde(default)]`); a service
//! accepts any minor of its major. A major bump is refused with `UnsupportedVersion`.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// `major.minor` of an RPC API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RpcVersion {
    /// Incompatible changes.
    pub major: u16,
    /// Compatible additions.
    pub minor: u16,
}

impl RpcVersion {
    /// Whether a service speaking `self` can handle a message of `other`.
    pub fn accepts(self, other: RpcVersion) -> bool {
        self.major == other.major && other.minor <= self.minor
    }
}

impl std::fmt::Display for RpcVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl From<RpcVersion> for String {
    fn from(v: RpcVersion) -> String {
        v.to_string()
    }
}

impl TryFrom<String> for RpcVersion {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let (a, b) = s
            .split_once('.')
            .ok_or_else(|| format!("bad version {s:?}"))?;
        Ok(RpcVersion {
            major: a.parse().map_err(|_| format!("bad version {s:?}"))?,
            minor: b.parse().map_err(|_| format!("bad version {s:?}"))?,
        })
    }
}

/// Who asked: carried with every message, as oslo's context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RequestContext {
    /// Project of the caller.
    pub project_id: Option<String>,
    /// User of the caller.
    pub user_id: Option<String>,
    /// Whether the caller is an admin.
    #[serde(default)]
    pub is_admin: bool,
    /// The caller's token (oslo's `auth_token`): what the volume service shows the image
    /// service on the caller's behalf. The API sends it with every request of a caller,
    /// as Cinder's context does; it is absent (not even a key) when there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_token: Option<cinder_common::settings::Secret>,
}

/// Every message: version, request id (`req-<uuid>`, carried into spans), caller, body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<T> {
    /// API version of the body.
    pub version: RpcVersion,
    /// OpenStack request id.
    pub request_id: String,
    /// The caller.
    pub context: RequestContext,
    /// The request.
    pub body: T,
}

impl<T> Envelope<T> {
    /// A new envelope with a fresh request id.
    pub fn new(version: RpcVersion, context: RequestContext, body: T) -> Self {
        Envelope {
            version,
            request_id: format!("req-{}", uuid::Uuid::new_v4()),
            context,
            body,
        }
    }
}

/// What went wrong on the other side, with a kind that survives the hop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{kind:?}: {message}")]
pub struct RemoteError {
    /// The class of failure.
    pub kind: RemoteErrorKind,
    /// User-safe text (never internal detail).
    pub message: String,
    /// Whether trying again later may succeed.
    pub retryable: bool,
}

/// Classes of remote failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemoteErrorKind {
    /// No such resource.
    NotFound,
    /// The resource is not in a status that allows this.
    InvalidState,
    /// Busy (in use, watchers, dependants).
    Busy,
    /// Bad request arguments.
    InvalidInput,
    /// The message's version is not understood.
    UnsupportedVersion,
    /// The backend is down or unreachable.
    Unavailable,
    /// Anything else.
    Internal,
}

/// A call's reply on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply<T> {
    /// Success.
    Ok(T),
    /// Failure.
    Err(RemoteError),
}

/// An RPC topic: its request enum and the version its server speaks.
pub trait Topic: Send + Sync + 'static {
    /// The requests (`{"method": ..., "args": ...}` on the wire).
    type Request: Serialize
        + DeserializeOwned
        + Method
        + std::fmt::Debug
        + Clone
        + Send
        + Sync
        + 'static;
    /// The topic's name, for logs.
    const NAME: &'static str;
    /// The version of the topic this build speaks.
    const VERSION: RpcVersion;
    /// The version a request goes out at: the oldest that carries it (its method's,
    /// and its newer fields' when they are set), so that services not yet upgraded
    /// keep taking every message they know during a rolling upgrade.
    fn version_of(request: &Self::Request) -> RpcVersion;
}

/// A request knows its method's wire name.
pub trait Method {
    /// The method (`create_volume`, ...).
    fn method(&self) -> &'static str;
}

/// Fire-and-forget requests.
pub trait Cast: Into<<Self::Topic as Topic>::Request> {
    /// The topic the message belongs to.
    type Topic: Topic;
}

/// Requests with a typed reply.
pub trait Call: Into<<Self::Topic as Topic>::Request> {
    /// The topic the message belongs to.
    type Topic: Topic;
    /// The reply.
    type Reply: Serialize + DeserializeOwned + Send + 'static;
}

/// Declares a topic's request enum: one variant per message, each with its own argument
/// struct and wire name; the `From` conversions, [`Method`], and whether each is a cast
/// or a call (with its reply type).
macro_rules! topic {
    (
        $(#[$doc:meta])*
        $topic:ident => $request:ident {
            $( $(#[$vdoc:meta])* $kind:ident $name:literal $variant:ident $( -> $reply:ty )?, )*
        }
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(tag = "method", content = "args")]
        // A request lives for one delivery; the create's request spec is the big one
        // and boxing it would only move the allocation.
        #[allow(clippy::large_enum_variant)]
        pub enum $request {
            $( $(#[$vdoc])* #[serde(rename = $name)] $variant($variant), )*
        }

        impl $request {
            /// Every method of the topic.
            pub const METHODS: &'static [&'static str] = &[$($name,)*];
        }

        impl $crate::messages::Method for $request {
            fn method(&self) -> &'static str {
                match self {
                    $( $request::$variant(_) => $name, )*
                }
            }
        }

        $(
            impl From<$variant> for $request {
                fn from(r: $variant) -> Self {
                    $request::$variant(r)
                }
            }
            topic!(@kind $topic $kind $variant $( -> $reply )?);
        )*
    };
    (@kind $topic:ident cast $variant:ident) => {
        impl $crate::messages::Cast for $variant {
            type Topic = $topic;
        }
    };
    (@kind $topic:ident call $variant:ident -> $reply:ty) => {
        impl $crate::messages::Call for $variant {
            type Topic = $topic;
            type Reply = $reply;
        }
    };
}

pub mod backup;
pub mod scheduler;
pub mod volume;

pub use backup::*;
pub use scheduler::*;
pub use volume::*;

#[cfg(test)]
mod tests;
