//! Entry functions: what a spawn names. [`entries!`](crate::entries) exports a module's
//! entries; each is a plain function whose parameters are decoded from the spawn's
//! arguments.

use serde::de::DeserializeOwned;

use crate::codec::decode_args;
use crate::reason::ExitReason;

/// What an entry function may return: `()` (normal exit) or a `Result` whose error ends the
/// process with that error as reason.
pub trait EntryResult {
    /// The exit reason, if not normal.
    fn into_exit(self) -> Option<ExitReason>;
}

impl EntryResult for () {
    fn into_exit(self) -> Option<ExitReason> {
        None
    }
}

impl<E: std::fmt::Display> EntryResult for Result<(), E> {
    fn into_exit(self) -> Option<ExitReason> {
        self.err().map(|e| ExitReason::Error(e.to_string()))
    }
}

/// A function usable as an entry, with parameters `Args` (a tuple).
pub trait Entry<Args> {
    /// Decodes `args` and runs the function.
    fn run(self, args: &[u8]) -> Option<ExitReason>;
}

impl<F: FnOnce() -> R, R: EntryResult> Entry<()> for F {
    fn run(self, _args: &[u8]) -> Option<ExitReason> {
        self().into_exit()
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
            fn run(self, args: &[u8]) -> Option<ExitReason> {
                match decode_args::<($($a,)+)>(args) {
                    Ok(($($a,)+)) => self($($a),+).into_exit(),
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

/// Runs `f` as the process's entry: installs the panic hook, decodes the arguments, and
/// turns the result into the process's exit.
#[doc(hidden)]
pub fn run_entry<Args, F: Entry<Args>>(name: &str, f: F, args: &[u8]) {
    install_panic_hook();
    match f.run(args) {
        None => {}
        Some(ExitReason::Error(e)) if e.starts_with(BAD_ARGUMENTS) => crate::process::exit(
            ExitReason::Error(format!("{BAD_ARGUMENTS} for entry `{name}`{}", &e[BAD_ARGUMENTS.len()..])),
        ),
        Some(reason) => crate::process::exit(reason),
    }
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

/// Prints the panic like Rust does, then ends the process with reason `panic`.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let message = match info.payload().downcast_ref::<&str>() {
            Some(s) => (*s).to_owned(),
            None => info.payload().downcast_ref::<String>().cloned().unwrap_or_else(|| "panic".to_owned()),
        };
        let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        eprintln!("process {} panicked{at}: {message}", crate::process::self_pid());
        crate::process::exit(ExitReason::Panic(format!("{message}{at}")));
    }));
}
