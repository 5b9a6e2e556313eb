//! What user code handed to isosock's background tasks (reconnect) must be: `Send` natively,
//! where the tasks run on tokio's threads; anything in the browser, where they run on the
//! page's single event loop (so a token provider may await `!Send` JavaScript promises).
//!
//! Each backend's `rt` module defines these; this module only names them for the shared code.

pub use crate::backend::rt::MaybeSend;
pub(crate) use crate::backend::rt::{TaskFn, TaskFuture, TaskPredicate};
