//! Entry functions: what a spawn names. [`entries!`](crate::entries) exports a module's
//! entries; each is a plain function whose parameters are decoded from the spawn's
//! arguments.

use crate::prelude::*;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec::{decode_args, split_call};
use crate::pid::{Pid, Ref};
use crate::reason::ExitReason;
use crate::rpc::{Reply, answer};

/// What an entry function may return: `()` (normal exit), a `Result` whose error ends the
/// process with that error as reason, or a [`Reply`] (also inside `Ok`) whose value answers
/// a call ([`rpc`](crate::rpc)). `()` and `Ok(())` answer a call with null.
pub trait EntryResult {
    /// Answers the caller of a call, when the process runs one, and returns the exit
    /// reason, if not normal.
    fn finish(self, caller: Option<(Pid, Ref)>) -> Option<ExitReason>;
}

impl EntryResult for () {
    fn finish(self, caller: Option<(Pid, Ref)>) -> Option<ExitReason> {
        answer(caller, &());
        None
    }
}

impl<T: Serialize> EntryResult for Reply<T> {
    fn finish(self, caller: Option<(Pid, Ref)>) -> Option<ExitReason> {
        answer(caller, &self.0);
        None
    }
}

impl<T: EntryResult, E: core::fmt::Display> EntryResult for Result<T, E> {
    fn finish(self, caller: Option<(Pid, Ref)>) -> Option<ExitReason> {
        match self {
            Ok(value) => value.finish(caller),
            Err(e) => Some(ExitReason::Error(e.to_string())),
        }
    }
}

/// A function usable as an entry, with parameters `Args` (a tuple).
pub trait Entry<Args> {
    /// Decodes `args`, runs the function, and answers `caller` if a call spawned it.
    fn run(self, args: &[u8], caller: Option<(Pid, Ref)>) -> Option<ExitReason>;
}

impl<F: FnOnce() -> R, R: EntryResult> Entry<()> for F {
    fn run(self, _args: &[u8], caller: Option<(Pid, Ref)>) -> Option<ExitReason> {
        self().finish(caller)
    }
}

macro_rules! entry_arity {
    ($($a:ident),+) => {
        impl<F, R, $($a),+> Entry<($($a,)+)> for F
        where
            F: FnOnce($($a),+) -> R,
            R: EntryResult,
            $($a: DeserializeOwned),+
        {
            #[allow(non_snake_case)]
            fn run(self, args: &[u8], caller: Option<(Pid, Ref)>) -> Option<ExitReason> {
                match decode_args::<($($a,)+)>(args) {
                    Ok(($($a,)+)) => self($($a),+).finish(caller),
                    Err(e) => Some(ExitReason::Error(e.to_string())),
                }
            }
        }
    };
}

entry_arity!(A);
entry_arity!(A, B);
entry_arity!(A, B, C);
entry_arity!(A, B, C, D);
entry_arity!(A, B, C, D, E);
entry_arity!(A, B, C, D, E, G);

/// Runs `f` as the process's entry: installs the panic hook, decodes the arguments (taking
/// a call's caller out of them), answers a call, and turns the result into the process's
/// exit.
#[doc(hidden)]
pub fn run_entry<Args, F: Entry<Args>>(name: &str, f: F, args: &[u8]) {
    #[cfg(feature = "std")]
    install_panic_hook();
    let (caller, args) = match split_call(args) {
        Some((caller, reference, args)) => (Some((caller, reference)), args),
        None => (None, args),
    };
    let reason = match f.run(args, caller) {
        None => return,
        // `strip_prefix`, not slicing: a slice of a `str` brings ~4 KB of panic formatting.
        Some(ExitReason::Error(e)) => match e.strip_prefix(BAD_ARGUMENTS) {
            Some(rest) => ExitReason::Error(format!("{BAD_ARGUMENTS} for entry `{name}`{rest}")),
            None => ExitReason::Error(e),
        },
        Some(reason) => reason,
    };
    crate::process::exit(reason)
}

/// How argument errors start.
const BAD_ARGUMENTS: &str = "bad arguments";

/// Ends the process with an `unknown entry` error.
#[doc(hidden)]
pub fn unknown_entry(entry: &str, known: &[&str]) -> ! {
    crate::process::exit(ExitReason::Error(format!(
        "unknown entry `{entry}`; the module exports: {}",
        known.join(", ")
    )))
}

/// Prints the panic like Rust does, then ends the process with reason `panic`. (Without
/// `std`, the SDK's panic handler does the same, less the printing.)
#[cfg(feature = "std")]
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let message = match info.payload().downcast_ref::<&str>() {
            Some(s) => (*s).to_owned(),
            None => info.payload().downcast_ref::<String>().cloned().unwrap_or_else(|| "panic".to_owned()),
        };
        let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        std::eprintln!("process {} panicked{at}: {message}", crate::process::self_pid());
        crate::process::exit(ExitReason::Panic(format!("{message}{at}")));
    }));
}
