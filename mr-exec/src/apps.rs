//! Resolving `--app NAME` or `--lib PATH` to an application.

use crate::plugin::{self, PluginError};
use crate::testapps::{test_app, TEST_APP_NAMES};
use core_mr::apps::{builtin, BUILTIN_NAMES};
use core_mr::App;
use std::path::Path;
use thiserror::Error;

/// Why no application could be found.
#[derive(Debug, Error)]
pub enum AppError {
    /// No built-in application has that name.
    #[error("unknown application `{name}`; built-in applications are: {known}")]
    Unknown {
        /// The name asked for.
        name: String,
        /// Every valid name.
        known: String,
    },
    /// Loading a library failed.
    #[error(transparent)]
    Plugin(#[from] PluginError),
}

/// Every built-in application name (pure ones and the lab's test apps).
pub fn app_names() -> Vec<&'static str> {
    BUILTIN_NAMES
        .iter()
        .chain(TEST_APP_NAMES)
        .copied()
        .collect()
}

/// The built-in application called `name`.
pub fn by_name(name: &str) -> Result<Box<dyn App>, AppError> {
    builtin(name)
        .or_else(|| test_app(name))
        .ok_or_else(|| AppError::Unknown {
            name: name.to_string(),
            known: app_names().join(", "),
        })
}

/// The application exported by the library at `path`.
pub fn from_library(path: &Path) -> Result<Box<dyn App>, AppError> {
    Ok(Box::new(plugin::load(path)?))
}
