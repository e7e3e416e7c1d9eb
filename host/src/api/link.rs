//! `spore:process/link`: links, monitors, trap-exit and exit signals.

use std::sync::atomic::Ordering;

use super::spore::process::link::{self as wit, Host};
use crate::process::state::ProcState;
use crate::process::{ExitReason, Pid};

impl Host for ProcState {
    async fn link(&mut self, pid: wit::Pid) -> wasmtime::Result<()> {
        let pid: Pid = pid.into();
        self.node.link(&self.me, pid);
        self.node.pace_signals(pid.node).await;
        Ok(())
    }

    async fn unlink(&mut self, pid: wit::Pid) -> wasmtime::Result<()> {
        let pid: Pid = pid.into();
        self.node.unlink(&self.me, pid);
        self.node.pace_signals(pid.node).await;
        Ok(())
    }

    async fn monitor(&mut self, pid: wit::Pid) -> wasmtime::Result<u64> {
        let pid: Pid = pid.into();
        let monitor = self.node.monitor(&self.me, pid);
        self.node.pace_signals(pid.node).await;
        Ok(monitor)
    }

    fn demonitor(&mut self, monitor: u64) -> wasmtime::Result<()> {
        self.node.demonitor(&self.me, monitor);
        Ok(())
    }

    fn trap_exit(&mut self, on: bool) -> wasmtime::Result<bool> {
        Ok(self.me.trap_exit.swap(on, Ordering::AcqRel))
    }

    async fn exit(&mut self, pid: wit::Pid, reason: wit::ExitReason) -> wasmtime::Result<()> {
        let pid: Pid = pid.into();
        self.node.exit_signal(self.me.pid, pid, reason.into(), false);
        self.node.pace_signals(pid.node).await;
        Ok(())
    }

    async fn kill(&mut self, pid: wit::Pid) -> wasmtime::Result<()> {
        let pid: Pid = pid.into();
        self.node.exit_signal(self.me.pid, pid, ExitReason::Killed, true);
        self.node.pace_signals(pid.node).await;
        Ok(())
    }
}
