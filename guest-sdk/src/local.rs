//! Process-wide state. A process is one wasm instance with one thread, so its state needs
//! no lock: with `std` it lives in thread-locals (sound wherever the SDK is built); without
//! `std`, which the SDK supports on single-threaded wasm32 only, in plain statics.

/// Declares process-wide statics, read and changed through `NAME.with(|value| ...)` as with
/// `thread_local!`. Initialisers must be const.
macro_rules! process_local {
    ($($(#[$attr:meta])* static $name:ident: $ty:ty = $init:expr;)+) => {
        $(
            #[cfg(feature = "std")]
            std::thread_local! { $(#[$attr])* static $name: $ty = const { $init }; }
            #[cfg(not(feature = "std"))]
            $(#[$attr])* static $name: $crate::local::Local<$ty> = $crate::local::Local::new($init);
        )+
    };
}

#[cfg(all(not(feature = "std"), not(all(target_family = "wasm", not(target_feature = "atomics")))))]
compile_error!("spore-guest without its `std` feature builds for single-threaded wasm32 guests only");

/// A process-wide value without `std`: see the module documentation.
#[cfg(not(feature = "std"))]
pub(crate) struct Local<T>(T);

// SAFETY: without `std` the SDK builds only for wasm32 without threads (the compile_error
// above), where the one thread of the process is the only one that can reach the value.
#[cfg(not(feature = "std"))]
unsafe impl<T> Sync for Local<T> {}

#[cfg(not(feature = "std"))]
impl<T> Local<T> {
    /// Wraps `value`.
    pub(crate) const fn new(value: T) -> Self {
        Self(value)
    }

    /// Runs `f` on the value, like `LocalKey::with`.
    pub(crate) fn with<R>(&'static self, f: impl FnOnce(&T) -> R) -> R {
        f(&self.0)
    }
}
