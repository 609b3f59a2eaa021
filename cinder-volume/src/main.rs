//! `cinder-volume [--config PATH] [--backend NAME]...`: serves the enabled backends (or
//! only the named ones, one process per backend) until SIGTERM/SIGINT.

use anyhow::{bail, Context};

fn main() -> anyhow::Result<()> {
    let args = cinder_common::cli::from_env("cinder-volume", "[--backend NAME]...");
    let mut backends = Vec::new();
    let mut rest = args.rest.into_iter();
    while let Some(a) = rest.next() {
        match a.as_str() {
            "--backend" => backends.push(rest.next().context("--backend needs a name")?),
            other => bail!("unknown argument {other} (see --help)"),
        }
    }
    let settings: cinder_volume::Settings =
        cinder_common::config::load(args.config.as_deref()).context("loading the configuration")?;
    cinder_common::telemetry::init(&settings.logging);
    cinder_common::shutdown::abort_on_panic();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let shutdown = cinder_common::shutdown::on_signal();
        cinder_volume::run(settings, backends, shutdown).await
    })
}
