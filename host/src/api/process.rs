//! `spore:process/process`: identity, spawn, exit.

use std::sync::Arc;

use bytes::Bytes;

use super::spore::process::process::{self as wit, Host};
use crate::cache::ModuleId;
use crate::error::SpawnError;
use crate::node::{Parent, SpawnOpts};
use crate::process::spawn::ExitRequest;
use crate::process::state::ProcState;

impl From<SpawnError> for wit::SpawnError {
    fn from(e: SpawnError) -> Self {
        match e {
            SpawnError::UnknownEntry { entry, available } => {
                Self::UnknownEntry(format!("unknown entry `{entry}`; the module exports: {available}"))
            }
            SpawnError::InvalidModule(m) => Self::InvalidModule(m),
            SpawnError::TooLarge(n) => Self::TooLarge(n),
            SpawnError::Limits(m) => Self::Limits(m),
            SpawnError::Quota(m) => Self::Quota(m),
            SpawnError::Unreachable(m) => Self::Unreachable(m),
            SpawnError::Timeout => Self::Timeout,
        }
    }
}

impl Host for ProcState {
    fn self_(&mut self) -> wasmtime::Result<wit::Pid> {
        Ok(self.me.pid.into())
    }

    fn make_ref(&mut self) -> wasmtime::Result<u64> {
        Ok(self.node.table.make_ref())
    }

    fn module_id(&mut self) -> wasmtime::Result<String> {
        Ok(self.module.id.to_string())
    }

    async fn spawn(
        &mut self,
        node: Option<String>,
        module: wit::ModuleSource,
        entry: String,
        args: Vec<u8>,
        options: wit::SpawnOptions,
    ) -> wasmtime::Result<Result<wit::Spawned, wit::SpawnError>> {
        let grants = self.grants.narrow(
            options.grants.contains(wit::Grants::CLOCK),
            options.grants.contains(wit::Grants::ENV),
            options.grants.contains(wit::Grants::FS),
        );
        let opts = SpawnOpts {
            link: options.link,
            monitor: options.monitor,
            memory_limit: options.memory_limit,
            mailbox_limit: options.mailbox_limit.map(|n| n as usize),
            fuel: options.fuel,
        };
        let args = Bytes::from(args);
        if let Some(node) = node
            && node != self.node.name
        {
            // Another node: send the id, and the bytes only if it asks for them.
            let (id, code) = match module {
                wit::ModuleSource::This => (self.module.id, Some(self.module.bytes.clone())),
                wit::ModuleSource::Id(hex) => match hex.parse::<ModuleId>() {
                    Ok(id) => (id, None),
                    Err(e) => return Ok(Err(wit::SpawnError::InvalidModule(format!("`{hex}`: {e}")))),
                },
                wit::ModuleSource::Bytes(bytes) => (ModuleId::of(&bytes), Some(Bytes::from(bytes))),
            };
            let spawned =
                self.node.spawn_remote(&node, id, code, entry, args, opts, &self.me, grants.clock).await;
            return Ok(spawned
                .map(|(pid, monitor)| wit::Spawned { pid: pid.into(), monitor })
                .map_err(Into::into));
        }
        let module = match module {
            wit::ModuleSource::This => Arc::clone(&self.module),
            wit::ModuleSource::Id(hex) => {
                let found = match hex.parse::<ModuleId>() {
                    Ok(id) => self.node.cache.load_id(&self.node, id).await,
                    Err(_) => None,
                };
                match found {
                    Some(m) => m,
                    None => return Ok(Err(wit::SpawnError::InvalidModule(format!("unknown module {hex}")))),
                }
            }
            wit::ModuleSource::Bytes(bytes) => match self.node.load(Bytes::from(bytes)).await {
                Ok(m) => m,
                Err(e) => return Ok(Err(SpawnError::from(e).into())),
            },
        };
        let leader = Some(self.me.group_leader);
        let spawned = self
            .node
            .prepare(module, entry, args, opts, Parent::Local(&self.me), leader, grants)
            .map(|prepared| prepared.start(&self.node));
        if spawned.is_ok() {
            // The child runs before its parent goes on (see `yield_to_child`).
            crate::process::spawn::yield_to_child().await;
        }
        Ok(spawned.map(|(pid, monitor)| wit::Spawned { pid: pid.into(), monitor }).map_err(Into::into))
    }

    fn exit(&mut self, reason: wit::ExitReason) -> wasmtime::Result<()> {
        Err(wasmtime::Error::new(ExitRequest(reason.into())))
    }
}
