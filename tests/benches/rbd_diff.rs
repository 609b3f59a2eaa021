//! Benchmark, side by side in one run on the dev cluster (no timing assertions):
//!
//! - export-diff of a 1 GiB image with 256 MiB written, ours
//!   (`RbdDriver::export_diff_to_file`) against `rbd export-diff` into a file;
//! - import of that stream (the CLI's file) into a fresh image, ours
//!   (`import_diff_from_file`) against `rbd import-diff`; then the same for an
//!   incremental stream (64 MiB changed) into an image at its start snapshot;
//! - clone latency of 1, 10 and 100 GiB images (must not grow with size).
//!
//! Run with `scripts/bench.sh` (or `CEPH_CONF=... cargo bench -p cinder-tests --bench rbd_diff`).
//! The CLI figures include starting `rbd` and connecting (tens of ms), as an operator's
//! pipeline would pay them.

use std::time::{Duration, Instant};

use cinder_tests::{
    ceph_conf, create_pool, delete_pool, driver_config, purge, random_bytes, rbd, unique, MIB,
};
use rbd_driver::{CloneOptions, CreateOptions, ImageSpec, OpCtl, RbdDriver};

const ROUNDS: usize = 5;
const IMAGE: u64 = 1 << 30;
const WRITTEN: u64 = 256 * MIB;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn rate(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / MIB as f64 / d.as_secs_f64()
}

async fn bench(conf: &str, pool: &str) {
    let d = RbdDriver::connect(driver_config(conf, pool))
        .await
        .expect("connect");
    let src = ImageSpec::new(pool, "bench-src");
    d.create_image(
        &src,
        &CreateOptions {
            size: IMAGE,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    // 256 MiB of random data in every 4th 4 MiB object.
    for i in 0..(WRITTEN / (4 * MIB)) {
        d.write(&src, i * 16 * MIB, random_bytes(i + 1, (4 * MIB) as usize))
            .await
            .unwrap();
    }
    d.create_snapshot(&src.snap("s1")).await.unwrap();
    // 64 MiB more: 8 objects overwritten, 8 new ones.
    for i in 0..8u64 {
        d.write(
            &src,
            i * 32 * MIB,
            random_bytes(100 + i, (4 * MIB) as usize),
        )
        .await
        .unwrap();
        d.write(
            &src,
            i * 32 * MIB + 4 * MIB,
            random_bytes(200 + i, (4 * MIB) as usize),
        )
        .await
        .unwrap();
    }
    d.create_snapshot(&src.snap("s2")).await.unwrap();
    let dir = std::env::temp_dir().join(unique("cinder-bench"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = |name: &str| dir.join(name);

    // [full export, full import, incremental export, incremental import] x [ours, CLI]
    let mut t_ours: [Vec<Duration>; 4] = Default::default();
    let mut t_cli: [Vec<Duration>; 4] = Default::default();
    let mut lens = [0u64; 2];
    for round in 0..ROUNDS {
        for f in ["ours-full", "cli-full", "ours-inc", "cli-inc"] {
            let _ = std::fs::remove_file(file(f));
        }
        for (step, from, to, ours, cli) in [
            (0, None, "s1", "ours-full", "cli-full"),
            (2, Some("s1"), "s2", "ours-inc", "cli-inc"),
        ] {
            let spec = format!("{src}@{to}");
            let mut args = vec!["export-diff", "--no-progress"];
            if let Some(f) = from {
                args.extend(["--from-snap", f]);
            }
            let path = file(cli);
            args.extend([spec.as_str(), path.to_str().unwrap()]);
            let ours_first = round % 2 == 0;
            for turn in 0..2 {
                let t = Instant::now();
                if (turn == 0) == ours_first {
                    let stats = d
                        .export_diff_to_file(&src, from, Some(to), &file(ours), &OpCtl::new())
                        .await
                        .unwrap();
                    t_ours[step].push(t.elapsed());
                    lens[step / 2] = stats.stream_bytes;
                } else {
                    rbd(conf, &args);
                    t_cli[step].push(t.elapsed());
                }
            }
            if round == 0 {
                let same = std::fs::read(file(ours)).unwrap() == std::fs::read(file(cli)).unwrap();
                println!("{to} streams byte-identical to rbd export-diff: {same}");
            }
        }
        let ours_dst = ImageSpec::new(pool, format!("bench-ours-{round}"));
        let cli_dst = ImageSpec::new(pool, format!("bench-cli-{round}"));
        for img in [&ours_dst, &cli_dst] {
            d.create_image(
                img,
                &CreateOptions {
                    size: IMAGE,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        }
        for (step, stream) in [(1, "cli-full"), (3, "cli-inc")] {
            // Whoever goes second finds the OSD quieter: take turns going first.
            let ours_first = round % 2 == 0;
            for turn in 0..2 {
                let t = Instant::now();
                if (turn == 0) == ours_first {
                    d.import_diff_from_file(&ours_dst, &file(stream), &OpCtl::new())
                        .await
                        .unwrap();
                    t_ours[step].push(t.elapsed());
                } else {
                    let path = file(stream);
                    rbd(
                        conf,
                        &[
                            "import-diff",
                            "--no-progress",
                            path.to_str().unwrap(),
                            &cli_dst.to_string(),
                        ],
                    );
                    t_cli[step].push(t.elapsed());
                }
            }
        }
        purge(&d, &ours_dst).await;
        purge(&d, &cli_dst).await;
        // Let the OSD finish removing objects before the next round is timed.
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    std::fs::remove_dir_all(&dir).unwrap();

    println!(
        "\n1 GiB image: full diff 256 MiB written ({:.1} MiB stream), incremental 64 MiB changed ({:.1} MiB stream)",
        lens[0] as f64 / MIB as f64,
        lens[1] as f64 / MIB as f64
    );
    println!("median of {ROUNDS} rounds, ours and the rbd CLI taking turns going first, file to image and image to file:");
    let names = [
        "export-diff full",
        "import-diff full",
        "export-diff incr",
        "import-diff incr",
    ];
    let bytes = [WRITTEN, WRITTEN, 64 * MIB, 64 * MIB];
    for i in 0..4 {
        let (o, c) = (median(t_ours[i].clone()), median(t_cli[i].clone()));
        println!(
            "  {:<17} ours {:>6.3} s ({:>5.0} MiB/s)   rbd CLI {:>6.3} s ({:>5.0} MiB/s)   CLI/ours {:.2}{}",
            names[i],
            o.as_secs_f64(),
            rate(bytes[i], o),
            c.as_secs_f64(),
            rate(bytes[i], c),
            c.as_secs_f64() / o.as_secs_f64(),
            if o <= c { "" } else { "  <- ours slower" }
        );
    }
    purge(&d, &src).await;

    println!("\nclone latency (snapshot of an image with 4 MiB written, 20 clones each):");
    for gib in [1u64, 10, 100] {
        let parent = ImageSpec::new(pool, format!("bench-parent-{gib}g"));
        d.create_image(
            &parent,
            &CreateOptions {
                size: gib << 30,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        d.write(&parent, 0, random_bytes(gib, (4 * MIB) as usize))
            .await
            .unwrap();
        d.create_snapshot(&parent.snap("s")).await.unwrap();
        let mut lat = Vec::new();
        for i in 0..20 {
            let child = ImageSpec::new(pool, format!("bench-child-{gib}g-{i}"));
            let t = Instant::now();
            d.clone_image(&parent.snap("s"), &child, &CloneOptions::default())
                .await
                .unwrap();
            lat.push(t.elapsed());
            purge(&d, &child).await;
        }
        let max = *lat.iter().max().unwrap();
        println!(
            "  {gib:>3} GiB   p50 {:>6.1} ms   max {:>6.1} ms",
            median(lat).as_secs_f64() * 1e3,
            max.as_secs_f64() * 1e3
        );
        purge(&d, &parent).await;
    }
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` does not run this file.
    let conf = ceph_conf();
    let pool = unique("it-bench");
    create_pool(&conf, &pool);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(bench(&conf, &pool));
    delete_pool(&conf, &pool);
}
