//! The interface between the framework and a user's map and reduce
//! functions, and the hook a shared library uses to export an application.

/// A MapReduce application: a map function, a reduce function and an
/// optional combiner.
///
/// Implementations must be deterministic for a given input (the framework may
/// run a task more than once and keeps whichever attempt finishes first) and
/// must not rely on the order of the values handed to `reduce`.
pub trait App: Send + Sync {
    /// Called once per input file with its name (exactly as passed to the
    /// coordinator) and its contents; calls `emit(key, value)` for every
    /// intermediate pair.
    fn map(&self, filename: &str, contents: &str, emit: &mut dyn FnMut(&str, &str));

    /// Called once per distinct key with all its values (streamed, so a key
    /// with more values than fit in memory is fine); returns the output value
    /// written as the line `key value`.
    fn reduce(&self, key: &str, values: &mut dyn Iterator<Item = String>) -> String;

    /// Optionally pre-reduces the values of one key inside a map task,
    /// replacing them with a single value. It must satisfy
    /// `reduce(k, [combine(k, vs)] ++ rest) == reduce(k, vs ++ rest)`.
    /// The default returns `None`: no combining.
    fn combine(&self, key: &str, values: &[String]) -> Option<String> {
        let _ = (key, values);
        None
    }
}

/// Version of the shared-library interface. A library exported with
/// [`export_app!`](crate::export_app) records the version it was built
/// against, and loaders refuse a mismatch.
///
/// The interface passes a `Box<dyn App>` with the Rust ABI, so the library
/// must also be built by the same `rustc` as the program that loads it.
pub const PLUGIN_ABI_VERSION: u32 = 1;

/// Name of the symbol holding the library's [`PLUGIN_ABI_VERSION`] (a `u32`).
pub const PLUGIN_ABI_SYMBOL: &str = "MR_PLUGIN_ABI_VERSION";

/// Name of the constructor symbol (`fn() -> Box<dyn App>`).
pub const PLUGIN_CREATE_SYMBOL: &str = "mr_plugin_create";

/// Exports an application from a `cdylib` so that `mr worker --lib PATH`
/// and `mr sequential --lib PATH` can load it.
///
/// ```ignore
/// struct MyApp;
/// impl core_mr::App for MyApp { /* ... */ }
/// core_mr::export_app!(MyApp);
/// ```
///
/// The expression must build a value implementing [`App`].
#[macro_export]
macro_rules! export_app {
    ($make:expr) => {
        /// The core-mr plugin ABI this library was built against.
        #[no_mangle]
        pub static MR_PLUGIN_ABI_VERSION: u32 = $crate::PLUGIN_ABI_VERSION;

        /// Builds the exported application (Rust ABI: same rustc required).
        #[no_mangle]
        pub fn mr_plugin_create() -> ::std::boxed::Box<dyn $crate::App> {
            ::std::boxed::Box::new($make)
        }
    };
}
