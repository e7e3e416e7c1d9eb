//! `spore:process/link`: links, monitors, trap-exit and exit signals.

use std::sync::atomic::Ordering;

use super::spore::process::link::{self as wit, Host};
use crate::process::ExitReason;
use crate::process::state::ProcState;

impl Host for ProcState {
    fn link(&mut self, pid: wit::Pid) -> wasmtime::Result<()> {
        self.node.link(&self.me, pid.into());
        Ok(())
    }

    fn unlink(&mut self, pid: wit::Pid) -> wasmtime::Result<()> {
        self.node.unlink(&self.me, pid.into());
        Ok(())
    }

    fn monitor(&mut self, pid: wit::Pid) -> wasmtime::Result<u64> {
        Ok(self.node.monitor(&self.me, pid.into()))
    }

    fn demonitor(&mut self, monitor: u64) -> wasmtime::Result<()> {
        self.node.demonitor(&self.me, monitor);
        Ok(())
    }

    fn trap_exit(&mut self, on: bool) -> wasmtime::Result<bool> {
        Ok(self.me.trap_exit.swap(on, Ordering::AcqRel))
    }

    fn exit(&mut self, pid: wit::Pid, reason: wit::ExitReason) -> wasmtime::Result<()> {
        self.node.exit_signal(self.me.pid, pid.into(), reason.into(), false);
        Ok(())
    }

    fn kill(&mut self, pid: wit::Pid) -> wasmtime::Result<()> {
        self.node.exit_signal(self.me.pid, pid.into(), ExitReason::Killed, true);
        Ok(())
    }
}
