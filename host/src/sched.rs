//! Scheduling of the node's background threads.

/// Puts the calling thread in Linux's idle scheduling class: it runs only on a CPU that
/// has nothing else to run. Elsewhere, or if refused, the thread keeps its priority.
pub(crate) fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: `param` is a valid `sched_param` for the duration of the call; pid 0 is
        // the calling thread, whose policy alone changes.
        let _ = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
    }
}
