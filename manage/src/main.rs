//! `cinder-manage [--config PATH] [--database-url URL] db sync|version`.

use anyhow::Context;

fn main() -> anyhow::Result<()> {
    let args = cinder_common::cli::from_env("cinder-manage", cinder_manage::USAGE);
    let settings: cinder_manage::Settings =
        cinder_common::config::load(args.config.as_deref()).context("loading the configuration")?;
    cinder_common::telemetry::init(&settings.logging);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(cinder_manage::run(&settings, &args.rest))
}
