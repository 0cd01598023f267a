//! The hidden `floor` command, for `cargo xtask bench`: empty programs on exactly the hooks a
//! trace would use, until SIGINT or SIGTERM. What no program doing work on those hooks can
//! cost less than.

use anyhow::Result;

use crate::{
    attach,
    driver::Signals,
    plan::{self, Hook, Scope},
    preflight,
};

pub async fn run(hook: Hook, mut signals: Signals) -> Result<()> {
    let ready = preflight::check()?;
    let scope = Scope {
        hook,
        ..Scope::default()
    };
    let plan = plan::for_this_kernel(&ready.tracefs, &scope, ready.cpus)?;
    let mut tracer = attach::attach_floor(&plan)?;
    log::info!(
        "attached empty programs ({} hook); BPF program ids {:?}",
        tracer.hook.name(),
        tracer.program_ids
    );
    signals.next().await;
    tracer.detach();
    Ok(())
}
