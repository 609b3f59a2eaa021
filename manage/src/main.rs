//! `cinder-manage [--config PATH] db sync|version`.

use anyhow::Context;

fn main() -> anyhow::Result<()> {
    let args = cinder_common::cli::from_env("cinder-manage", "db sync|version");
    let settings: cinder_manage::Settings =
        cinder_common::config::load(args.config.as_deref()).context("loading the configuration")?;
    cinder_common::telemetry::init(&settings.logging);
    std::process::exit(cinder_manage::run(&settings, &args.rest)?)
}
