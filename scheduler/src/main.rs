//! `cinder-scheduler [--config PATH]`: runs until SIGTERM/SIGINT.

fn main() -> anyhow::Result<()> {
    cinder_common::service::main(
        "cinder-scheduler",
        "",
        |settings: cinder_scheduler::Settings, rest, shutdown| async move {
            cinder_common::service::no_extra_args("cinder-scheduler", &rest)?;
            cinder_scheduler::run(settings, shutdown).await
        },
    )
}
