//! `spore:process/registry`: local names.

use super::spore::process::registry::{self as wit, Host};
use crate::error::RegisterError;
use crate::process::state::ProcState;

impl From<RegisterError> for wit::RegisterError {
    fn from(e: RegisterError) -> Self {
        match e {
            RegisterError::Taken(p) => Self::Taken(p.into()),
            RegisterError::AlreadyNamed(n) => Self::AlreadyNamed(n),
            RegisterError::Noproc => Self::Noproc,
            RegisterError::BadName => Self::BadName,
        }
    }
}

impl Host for ProcState {
    fn register(&mut self, name: String, pid: wit::Pid) -> wasmtime::Result<Result<(), wit::RegisterError>> {
        Ok(self.node.table.register(&name, pid.into()).map_err(Into::into))
    }

    fn unregister(&mut self, name: String) -> wasmtime::Result<bool> {
        Ok(self.node.table.unregister(&name))
    }

    fn whereis(&mut self, name: String) -> wasmtime::Result<Option<wit::Pid>> {
        Ok(self.node.table.whereis(&name).map(Into::into))
    }

    fn registered(&mut self) -> wasmtime::Result<Vec<String>> {
        Ok(self.node.table.registered())
    }
}
