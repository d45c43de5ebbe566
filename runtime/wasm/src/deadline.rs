//! Host waits that end at the call's deadline. Owns the shadowed `wasi:io/poll` functions;
//! the deadline itself is set by the instance core when it arms a call.
//!
//! Epoch interruption stops guest code, not the host functions a guest calls. The only WASI
//! functions that wait are `wasi:io/poll`'s `poll` and `pollable.block`: a guest's sleep
//! (`wasi:clocks/monotonic-clock`'s `subscribe-duration` or `subscribe-instant`, then `block` or
//! `poll`; wasi-libc's `nanosleep` and `poll_oneoff` come to the same) waits in one of them. The
//! linker's versions are replaced by ones that give up at the deadline of the call in progress
//! and trap with [`DeadlineExceeded`], which is reported as a timeout like an epoch interruption.
//! The clock subscriptions themselves only make pollables, and every other WASI function returns
//! at once with what this host grants (an empty stdin, a stdout and stderr that discard, no
//! files, no network); the watchdog reports a call that overruns anyway.

use std::future::Future;
use std::time::{Duration, Instant};

use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use wasmtime_wasi::p2::DynPollable;
use wasmtime_wasi::p2::bindings::io::poll as async_poll;
use wasmtime_wasi::p2::bindings::sync::io::poll as sync_poll;
use wasmtime_wasi::runtime::in_tokio;

/// The trap of a guest that was still waiting in a WASI poll when its call's time ran out.
#[derive(Debug, thiserror::Error)]
#[error("the call's deadline passed while the module waited in a WASI poll or sleep")]
pub(crate) struct DeadlineExceeded;

/// What the replaced poll functions see of the store.
pub(crate) struct DeadlinePoll<'a> {
    pub table: &'a mut ResourceTable,
    pub deadline: Instant,
}

impl DeadlinePoll<'_> {
    /// Runs the wait `f` until it ends or the deadline passes, whichever comes first.
    fn wait<T>(
        &mut self,
        f: impl FnOnce(&mut ResourceTable) -> Box<dyn Future<Output = wasmtime::Result<T>> + '_>,
    ) -> wasmtime::Result<T> {
        let deadline = self.deadline;
        if Instant::now() >= deadline {
            return Err(DeadlineExceeded.into());
        }
        let wait = Box::into_pin(f(self.table));
        in_tokio(async move {
            tokio::time::timeout_at(deadline.into(), wait)
                .await
                .unwrap_or_else(|_elapsed| Err(DeadlineExceeded.into()))
        })
    }
}

impl sync_poll::Host for DeadlinePoll<'_> {
    fn poll(&mut self, pollables: Vec<Resource<DynPollable>>) -> wasmtime::Result<Vec<u32>> {
        self.wait(|table| Box::new(async_poll::Host::poll(table, pollables)))
    }
}

impl sync_poll::HostPollable for DeadlinePoll<'_> {
    fn ready(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<bool> {
        // Never waits: it only asks whether the pollable is ready now.
        in_tokio(async_poll::HostPollable::ready(self.table, pollable))
    }

    fn block(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<()> {
        self.wait(|table| Box::new(async_poll::HostPollable::block(table, pollable)))
    }

    fn drop(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<()> {
        async_poll::HostPollable::drop(self.table, pollable)
    }
}

struct HasDeadlinePoll;

impl HasData for HasDeadlinePoll {
    type Data<'a> = DeadlinePoll<'a>;
}

/// Replaces `wasi:io/poll` in `linker` (which has WASI already) by the version that ends at the
/// call's deadline; `poll` finds the call's [`DeadlinePoll`] in a store's data.
pub(crate) fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    poll: fn(&mut T) -> DeadlinePoll<'_>,
) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let added = sync_poll::add_to_linker::<T, HasDeadlinePoll>(linker, poll);
    linker.allow_shadowing(false);
    added
}

/// The deadline of a call that starts at `now` with a budget of `timeout` (a budget too large to
/// represent is taken as a century).
pub(crate) fn deadline_after(now: Instant, timeout: Duration) -> Instant {
    now.checked_add(timeout)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600))
}
