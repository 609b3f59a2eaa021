use std::time::Duration;

use super::*;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn jobs_run_on_named_lane_threads() {
    let pool = BlockingPool::new(2, 1);
    let pool = pool.unwrap();
    rt().block_on(async {
        let t = CancellationToken::new();
        let short = pool
            .run(Lane::Short, &t, || {
                Ok(std::thread::current().name().unwrap().to_string())
            })
            .await
            .unwrap();
        let long = pool
            .run(Lane::Long, &t, || {
                Ok(std::thread::current().name().unwrap().to_string())
            })
            .await
            .unwrap();
        assert!(short.starts_with("rbd-short-"), "{short}");
        assert_eq!(long, "rbd-long-0");
    });
}

#[test]
fn a_full_long_lane_does_not_delay_the_short_lane() {
    let pool = Arc::new(BlockingPool::new(1, 1).unwrap());
    rt().block_on(async {
        let t = CancellationToken::new();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let p = pool.clone();
        let t2 = t.clone();
        let long = tokio::spawn(async move {
            p.run(Lane::Long, &t2, move || {
                release_rx.recv().ok();
                Ok(())
            })
            .await
        });
        // Queue a second long job behind it.
        let p = pool.clone();
        let t3 = t.clone();
        let queued = tokio::spawn(async move { p.run(Lane::Long, &t3, || Ok(())).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(pool.stats().long.waiting, 1);
        let started = std::time::Instant::now();
        pool.run(Lane::Short, &t, || Ok(())).await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(1));
        release_tx.send(()).unwrap();
        long.await.unwrap().unwrap();
        queued.await.unwrap().unwrap();
        assert_eq!(pool.stats().long.waiting, 0);
    });
}

#[test]
fn waiting_for_a_slot_is_cancellable() {
    let pool = Arc::new(BlockingPool::new(1, 1).unwrap());
    rt().block_on(async {
        let busy = CancellationToken::new();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let p = pool.clone();
        let b = busy.clone();
        let holder = tokio::spawn(async move {
            p.run(Lane::Long, &b, move || {
                release_rx.recv().ok();
                Ok(())
            })
            .await
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let cancel = CancellationToken::new();
        let c = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            c.cancel();
        });
        let r = pool.run(Lane::Long, &cancel, || Ok(())).await;
        assert!(matches!(r, Err(Error::Cancelled)), "{r:?}");
        assert_eq!(pool.stats().long.waiting, 0);
        release_tx.send(()).unwrap();
        holder.await.unwrap().unwrap();
    });
}

#[test]
fn a_panicking_job_is_an_error_and_the_thread_survives() {
    let pool = BlockingPool::new(1, 1).unwrap();
    rt().block_on(async {
        let t = CancellationToken::new();
        let r: Result<()> = pool.run(Lane::Short, &t, || panic!("boom")).await;
        assert!(
            matches!(&r, Err(Error::Panicked(m)) if m == "boom"),
            "{r:?}"
        );
        assert_eq!(pool.run(Lane::Short, &t, || Ok(7)).await.unwrap(), 7);
    });
}

#[test]
fn a_closed_pool_refuses_work() {
    let pool = BlockingPool::new(1, 1).unwrap();
    pool.close();
    rt().block_on(async {
        let r = pool
            .run(Lane::Short, &CancellationToken::new(), || Ok(()))
            .await;
        assert!(matches!(r, Err(Error::PoolClosed)), "{r:?}");
    });
}
