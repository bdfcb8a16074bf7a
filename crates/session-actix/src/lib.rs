#![doc = include_str!("../README.md")]
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod error;
mod extract;
mod middleware;

pub use error::Error;
pub use extract::Session;
pub use middleware::{ResponseFuture, SessionMiddleware, SessionService};

/// The core crate, for everything not re-exported here (the `Session` handle itself is
/// `session_core::Session`; this crate's [`Session`] is its extractor).
pub use session_core;
pub use session_core::prelude::*;
