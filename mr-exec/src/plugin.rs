//! Loading an application from a shared library at run time, like the
//! lab's Go plugins.
//!
//! A library exports an app with `core_mr::export_app!` (see the
//! `mr-wordlen` example crate). Loading runs the library's initialisers and
//! calls a Rust-ABI constructor, which is only sound when:
//!
//! 1. the library was built from the same `core-mr` (same
//!    [`core_mr::PLUGIN_ABI_VERSION`], checked here) and by the same `rustc`
//!    as this program (not checkable; the `App` vtable and `String` layout
//!    must match);
//! 2. the library's exported symbols have the types `export_app!` gives
//!    them;
//! 3. the library's static initialisers are benign.
//!
//! The `Library` is kept alive as long as the `App` it produced.

use core_mr::{App, PLUGIN_ABI_SYMBOL, PLUGIN_ABI_VERSION, PLUGIN_CREATE_SYMBOL};
use libloading::{Library, Symbol};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Why a library could not be used.
#[derive(Debug, Error)]
pub enum PluginError {
    /// The file does not exist.
    #[error("application library {0} does not exist")]
    Missing(PathBuf),
    /// The dynamic loader refused the file.
    #[error("cannot load application library {path}: {source}")]
    Load {
        /// The file.
        path: PathBuf,
        /// The loader's message.
        source: libloading::Error,
    },
    /// A required symbol is absent.
    #[error("{path} does not export `{symbol}`; build it as a cdylib that calls core_mr::export_app!(..)")]
    MissingSymbol {
        /// The file.
        path: PathBuf,
        /// The symbol.
        symbol: &'static str,
    },
    /// It was built against another plugin interface.
    #[error("{path} was built for plugin ABI {theirs}, this program speaks {ours}; rebuild it against this core-mr")]
    AbiMismatch {
        /// The file.
        path: PathBuf,
        /// The library's version.
        theirs: u32,
        /// Ours.
        ours: u32,
    },
}

/// An application loaded from a library; derefs to the `App`.
pub struct LoadedApp {
    // Field order matters: the app (whose code lives in the library) is
    // dropped before the library is unloaded.
    app: Box<dyn App>,
    _lib: Library,
}

impl App for LoadedApp {
    fn map(&self, filename: &str, contents: &str, emit: &mut dyn FnMut(&str, &str)) {
        self.app.map(filename, contents, emit)
    }
    fn reduce(&self, key: &str, values: &mut dyn Iterator<Item = String>) -> String {
        self.app.reduce(key, values)
    }
    fn combine(&self, key: &str, values: &[String]) -> Option<String> {
        self.app.combine(key, values)
    }
}

/// Loads the application exported by the library at `path`.
pub fn load(path: &Path) -> Result<LoadedApp, PluginError> {
    if !path.exists() {
        return Err(PluginError::Missing(path.to_path_buf()));
    }
    // SAFETY: loading runs the library's initialisers; the caller chose
    // this library to run its code (contract point 3 above).
    let lib = unsafe { Library::new(path) }.map_err(|source| PluginError::Load {
        path: path.to_path_buf(),
        source,
    })?;
    let missing = |symbol| PluginError::MissingSymbol {
        path: path.to_path_buf(),
        symbol,
    };
    // SAFETY: `export_app!` defines this symbol as a `static u32`
    // (contract point 2); we read it through a pointer to u32.
    let theirs = unsafe {
        let sym: Symbol<*const u32> = lib
            .get(PLUGIN_ABI_SYMBOL.as_bytes())
            .map_err(|_| missing(PLUGIN_ABI_SYMBOL))?;
        **sym
    };
    if theirs != PLUGIN_ABI_VERSION {
        return Err(PluginError::AbiMismatch {
            path: path.to_path_buf(),
            theirs,
            ours: PLUGIN_ABI_VERSION,
        });
    }
    // SAFETY: `export_app!` defines this symbol as
    // `fn() -> Box<dyn core_mr::App>`; with the same core-mr (checked
    // above) and the same rustc (contract point 1) the types agree.
    let app = unsafe {
        let create: Symbol<fn() -> Box<dyn App>> = lib
            .get(PLUGIN_CREATE_SYMBOL.as_bytes())
            .map_err(|_| missing(PLUGIN_CREATE_SYMBOL))?;
        create()
    };
    Ok(LoadedApp { app, _lib: lib })
}
