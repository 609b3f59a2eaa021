//! `cinder-backup`: loads its configuration and runs until SIGTERM/SIGINT.

use anyhow::Context;

fn main() -> anyhow::Result<()> {
    let args = cinder_common::cli::from_env("cinder-backup", "");
    let settings: cinder_backup::Settings =
        cinder_common::config::load(args.config.as_deref()).context("loading the configuration")?;
    cinder_common::telemetry::init(&settings.logging);
    cinder_common::shutdown::abort_on_panic();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let shutdown = cinder_common::shutdown::on_signal();
        cinder_backup::run(settings, shutdown).await
    })
}
