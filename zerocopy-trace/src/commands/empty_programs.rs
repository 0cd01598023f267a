//! The hidden `empty-programs` command, for `cargo xtask bench` (built only with the `bench`
//! feature): empty programs on exactly the hooks a trace would use, until SIGINT or SIGTERM.
//! What no program doing work on those hooks can cost less than: the bench's floor.

use anyhow::Result;

use crate::{
    kernel::{
        attach,
        plan::{self, Hook, Scope},
        preflight,
    },
    session::{driver::Signals, runtime},
};

pub fn run(hook: Hook) -> Result<()> {
    runtime()?.block_on(async {
        let mut signals = Signals::install()?;
        let ready = preflight::check()?;
        let scope = Scope {
            hook,
            ..Scope::default()
        };
        let plan = plan::for_this_kernel(&ready.tracefs, &scope, ready.cpus)?;
        let mut tracer = attach::attach_empty_programs(&plan)?;
        log::info!(
            "attached empty programs ({} hook); BPF program ids {:?}",
            tracer.hook.name(),
            tracer.program_ids
        );
        signals.next().await;
        tracer.detach();
        Ok(())
    })
}
