//! RPC over the real RabbitMQ: casts are confirmed and acknowledged only when the service
//! says so, calls get typed replies and typed remote errors, foreign versions are refused
//! (never dropped), and the prefetch bounds the unacknowledged deliveries.

use std::time::Duration;

use cinder_rpc::messages::{
    ConnectionInfo, DeleteVolume, GetCapabilities, InitializeConnection, RemoteErrorKind,
    VolumeRequest, VolumeTopic,
};
use cinder_rpc::{
    Envelope, Incoming, RemoteError, RequestContext, RpcClient, RpcError, RpcServer, RpcVersion,
    Topic,
};
use cinder_tests::amqp_url;
use lapin::options::{BasicGetOptions, QueueDeleteOptions};

/// A queue name of our own, and its removal afterwards.
struct TestQueue(String);

impl TestQueue {
    fn new() -> Self {
        TestQueue(cinder_rpc::topology::volume_queue(
            &cinder_tests::unique("it"),
            "rbd",
        ))
    }

    async fn remove(self) {
        let conn = lapin::Connection::connect(&amqp_url(), Default::default())
            .await
            .unwrap();
        let ch = conn.create_channel().await.unwrap();
        for q in [
            self.0.clone(),
            cinder_rpc::topology::rejected_queue(&self.0),
        ] {
            let _ = ch
                .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
                .await;
        }
    }
}

fn ctx() -> RequestContext {
    RequestContext {
        project_id: Some("p".into()),
        user_id: Some("u".into()),
        is_admin: false,
        ..Default::default()
    }
}

async fn next_within(
    server: &mut RpcServer<VolumeTopic>,
    ms: u64,
) -> Option<Incoming<VolumeTopic>> {
    match tokio::time::timeout(Duration::from_millis(ms), server.next()).await {
        Ok(Some(r)) => Some(r.unwrap()),
        Ok(None) | Err(_) => None,
    }
}

async fn bind(q: &TestQueue, prefetch: u16) -> RpcServer<VolumeTopic> {
    RpcServer::bind(&amqp_url(), &q.0, prefetch)
        .await
        .expect("RabbitMQ reachable")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cast_is_redelivered_until_the_service_acknowledges_it() {
    let q = TestQueue::new();
    let client = RpcClient::connect(&amqp_url()).await.unwrap();
    let mut server = bind(&q, 4).await;
    let id = client
        .cast(
            &q.0,
            ctx(),
            DeleteVolume {
                volume_id: "v1".into(),
            },
        )
        .await
        .unwrap();
    let first = next_within(&mut server, 5000).await.expect("delivered");
    assert_eq!(first.envelope.request_id, id);
    assert_eq!(
        first.envelope.body,
        VolumeRequest::DeleteVolume(DeleteVolume {
            volume_id: "v1".into()
        })
    );
    assert!(!first.redelivered && !first.is_call());

    // The service goes away before claiming the work: the message comes back.
    drop(first);
    drop(server);
    let mut server = bind(&q, 4).await;
    let again = next_within(&mut server, 5000).await.expect("redelivered");
    assert_eq!(again.envelope.request_id, id);
    assert!(again.redelivered);
    again.ack().await.unwrap();
    drop(again);
    drop(server);
    let mut server = bind(&q, 4).await;
    assert!(
        next_within(&mut server, 500).await.is_none(),
        "an acknowledged cast is gone"
    );
    drop(server);
    q.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_get_typed_replies_and_remote_errors_keep_their_kind() {
    let q = TestQueue::new();
    let client = RpcClient::connect(&amqp_url()).await.unwrap();
    let mut server = bind(&q, 4).await;
    let serving = tokio::spawn(async move {
        while let Some(Ok(req)) = server.next().await {
            assert!(req.is_call());
            match &req.envelope.body {
                VolumeRequest::InitializeConnection(c) => {
                    let info = ConnectionInfo {
                        driver_volume_type: "rbd".into(),
                        data: serde_json::json!({"name": format!("volumes/volume-{}", c.volume_id)}),
                    };
                    req.reply(Ok(info)).await.unwrap();
                }
                _ => {
                    let e = RemoteError {
                        kind: RemoteErrorKind::Unavailable,
                        message: "backend down".into(),
                        retryable: true,
                    };
                    req.reply::<()>(Err(e)).await.unwrap();
                }
            }
            req.ack().await.unwrap();
        }
    });
    let info = client
        .call(
            &q.0,
            ctx(),
            InitializeConnection {
                volume_id: "v1".into(),
                connector: serde_json::json!({}),
            },
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(info.driver_volume_type, "rbd");
    assert_eq!(info.data["name"], "volumes/volume-v1");
    match client
        .call(&q.0, ctx(), GetCapabilities {}, Duration::from_secs(5))
        .await
    {
        Err(RpcError::Remote(e)) => {
            assert_eq!((e.kind, e.retryable), (RemoteErrorKind::Unavailable, true))
        }
        other => panic!("{other:?}"),
    }
    serving.abort();
    q.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_serving_is_unroutable_and_nobody_answering_times_out() {
    let client = RpcClient::connect(&amqp_url()).await.unwrap();
    let e = client
        .cast(
            "cinder-volume.nowhere@rbd",
            ctx(),
            DeleteVolume {
                volume_id: "v".into(),
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(e, RpcError::Unroutable(_)), "{e}");

    let q = TestQueue::new();
    let server = bind(&q, 1).await; // bound, but never reading
    let started = std::time::Instant::now();
    let e = client
        .call(&q.0, ctx(), GetCapabilities {}, Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(matches!(e, RpcError::Timeout(..)), "{e}");
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(server);
    q.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_versions_are_refused_with_a_clear_error_not_dropped() {
    let q = TestQueue::new();
    let client = RpcClient::connect(&amqp_url()).await.unwrap();
    let mut server = bind(&q, 4).await;
    let future = RpcVersion { major: 2, minor: 0 };
    let body = VolumeRequest::DeleteVolume(DeleteVolume {
        volume_id: "v9".into(),
    });

    // A cast of an unknown major goes to <queue>.rejected, not to the handler.
    client
        .cast_envelope(&q.0, &Envelope::new(future, ctx(), body.clone()))
        .await
        .unwrap();
    client
        .cast(
            &q.0,
            ctx(),
            DeleteVolume {
                volume_id: "v1".into(),
            },
        )
        .await
        .unwrap();
    let next = next_within(&mut server, 5000)
        .await
        .expect("the valid cast");
    assert_eq!(
        next.envelope.body,
        VolumeRequest::DeleteVolume(DeleteVolume {
            volume_id: "v1".into()
        })
    );
    next.ack().await.unwrap();
    let conn = lapin::Connection::connect(&amqp_url(), Default::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    let rejected = cinder_rpc::topology::rejected_queue(&q.0);
    let mut kept = None;
    for _ in 0..50 {
        kept = ch
            .basic_get(rejected.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap();
        if kept.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let kept = kept.expect("the rejected cast is kept for operators");
    let env: Envelope<VolumeRequest> = serde_json::from_slice(&kept.delivery.data).unwrap();
    assert_eq!((env.version, env.body), (future, body.clone()));

    // A call of an unknown major gets a typed error back.
    let serving = tokio::spawn(async move {
        while let Some(Ok(req)) = server.next().await {
            req.ack().await.unwrap();
        }
    });
    let e = client
        .call_envelope::<_, serde_json::Value>(
            &q.0,
            &Envelope::new(future, ctx(), body),
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
    match e {
        RpcError::Remote(r) => {
            assert_eq!(r.kind, RemoteErrorKind::UnsupportedVersion);
            assert!(
                r.message.contains("2.0") && r.message.contains(&VolumeTopic::VERSION.to_string()),
                "{}",
                r.message
            );
        }
        other => panic!("{other:?}"),
    }
    serving.abort();
    q.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_prefetch_bounds_unacknowledged_deliveries() {
    let q = TestQueue::new();
    let client = RpcClient::connect(&amqp_url()).await.unwrap();
    let mut server = bind(&q, 2).await;
    for i in 0..5 {
        client
            .cast(
                &q.0,
                ctx(),
                DeleteVolume {
                    volume_id: format!("v{i}"),
                },
            )
            .await
            .unwrap();
    }
    let a = next_within(&mut server, 5000).await.unwrap();
    let _b = next_within(&mut server, 5000).await.unwrap();
    assert!(
        next_within(&mut server, 300).await.is_none(),
        "no third delivery while two are unacknowledged"
    );
    a.ack().await.unwrap();
    let c = next_within(&mut server, 5000)
        .await
        .expect("acking one lets the next through");
    assert_eq!(
        c.envelope.body,
        VolumeRequest::DeleteVolume(DeleteVolume {
            volume_id: "v2".into()
        })
    );
    drop(server);
    q.remove().await;
}
