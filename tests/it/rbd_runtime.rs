//! The async runtime stays responsive while librbd works: every librbd call runs on the
//! driver's own threads, never on the runtime's workers.

use std::time::Duration;

use cinder_common::shutdown::CancellationToken;
use cinder_tests::MIB;
use rbd_driver::{CloneOptions, CreateOptions, OpCtl, RemoveMode};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::fixtures::{big_clone, ceph, drop_clone};

/// Ticks every 10 ms on the runtime and returns the largest lateness seen.
fn ticker(stop: CancellationToken) -> tokio::task::JoinHandle<Duration> {
    tokio::spawn(async move {
        let period = Duration::from_millis(10);
        let mut next = Instant::now() + period;
        let mut worst = Duration::ZERO;
        while !stop.is_cancelled() {
            tokio::time::sleep_until(next).await;
            worst = worst.max(Instant::now() - next);
            next += period;
        }
        worst
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runtime_never_lags_50ms_while_a_slow_flatten_and_16_operations_run() {
    let c = ceph().await;
    let (parent, child) = big_clone(c, 1024).await;
    let stop = CancellationToken::new();
    let tick = ticker(stop.clone());

    let started = Instant::now();
    let d = c.driver.clone();
    let ch = child.clone();
    let flatten = tokio::spawn(async move {
        d.flatten(&ch, &OpCtl::new()).await.unwrap();
        Instant::now()
    });

    // 16 workers run short operations (create, stat, snapshot, clone, remove) in
    // parallel, round after round, for as long as the flatten runs.
    let mut ops = JoinSet::new();
    // Operations that ended while the flatten still ran.
    let beside = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    for i in 0..16 {
        let d = c.driver.clone();
        let pool = c.pool.clone();
        let flatten_running = flatten.abort_handle();
        let beside = beside.clone();
        let step = move || {
            if !flatten_running.is_finished() {
                beside.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        };
        let flatten_running = flatten.abort_handle();
        ops.spawn(async move {
            let mut done = 0u32;
            loop {
                let img =
                    rbd_driver::ImageSpec::new(&pool, cinder_tests::unique(&format!("par{i}")));
                d.create_image(
                    &img,
                    &CreateOptions {
                        size: 64 * MIB,
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
                step();
                d.image_info(&img).await.unwrap();
                step();
                d.create_snapshot(&img.snap("s")).await.unwrap();
                step();
                let clone = rbd_driver::ImageSpec::new(&img.pool, format!("{}-c", img.name));
                d.clone_image(&img.snap("s"), &clone, &CloneOptions::default())
                    .await
                    .unwrap();
                step();
                d.remove_image(&clone, RemoveMode::PurgeNow, &OpCtl::new())
                    .await
                    .unwrap();
                step();
                d.remove_snapshot(&img.snap("s"), &OpCtl::new())
                    .await
                    .unwrap();
                step();
                d.remove_image(&img, RemoveMode::PurgeNow, &OpCtl::new())
                    .await
                    .unwrap();
                step();
                done += 7;
                if flatten_running.is_finished() {
                    return done;
                }
            }
        });
    }
    let mut operations = 0;
    while let Some(r) = ops.join_next().await {
        operations += r.unwrap();
    }
    let flatten_done = flatten.await.unwrap();
    stop.cancel();
    let worst = tick.await.unwrap();
    println!(
        "runtime lag: worst {worst:?} over {:?}; {operations} operations by 16 workers; flatten of 1 GiB took {:?}; pool {:?}",
        started.elapsed(),
        flatten_done - started,
        c.driver.pool_stats()
    );
    // The window held load: the flatten ran long enough to matter (512 MiB flattened in
    // 0.89 s on a quiet machine, hence 1 GiB) and the workers did rounds beside it.
    assert!(
        flatten_done - started >= Duration::from_secs(1),
        "the flatten took only {:?}",
        flatten_done - started
    );
    let beside = beside.load(std::sync::atomic::Ordering::Relaxed);
    println!("{beside} operations ended while the flatten ran");
    assert!(
        beside >= 16 * 3,
        "only {beside} of {operations} operations ended while the flatten ran"
    );
    assert!(
        worst < Duration::from_millis(50),
        "a tick was {worst:?} late"
    );
    assert!(c.driver.parent(&child).await.unwrap().is_none());
    drop_clone(&c.driver, &parent, &child).await;
}
