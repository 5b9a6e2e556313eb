//! What user code handed to isosock's background tasks (reconnect) must be: `Send` natively,
//! where the tasks run on tokio's threads; anything in the browser, where they run on the
//! page's single event loop (so a token provider may await `!Send` JavaScript promises).

use std::future::Future;
use std::pin::Pin;

/// `Send` natively; implemented by every type on `wasm32`.
///
/// Bounds on closures and futures that isosock runs in a background task (such as a
/// [`ReconnectOptions::provider`](crate::ReconnectOptions::provider)) use it, so the same code
/// compiles on both targets while browser code may hold JavaScript values.
#[cfg(not(target_arch = "wasm32"))]
pub trait MaybeSend: Send {}
#[cfg(not(target_arch = "wasm32"))]
impl<T: Send + ?Sized> MaybeSend for T {}

/// `Send` natively; implemented by every type on `wasm32`.
///
/// Bounds on closures and futures that isosock runs in a background task (such as a
/// [`ReconnectOptions::provider`](crate::ReconnectOptions::provider)) use it, so the same code
/// compiles on both targets while browser code may hold JavaScript values.
#[cfg(target_arch = "wasm32")]
pub trait MaybeSend {}
#[cfg(target_arch = "wasm32")]
impl<T: ?Sized> MaybeSend for T {}

/// A boxed future that is `Send` natively.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) type TaskFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;
/// A boxed future that is `Send` natively.
#[cfg(target_arch = "wasm32")]
pub(crate) type TaskFuture<T> = Pin<Box<dyn Future<Output = T> + 'static>>;

/// A boxed closure that is `Send` natively.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) type TaskFn<A, R> = Box<dyn FnMut(A) -> R + Send + 'static>;
/// A boxed closure that is `Send` natively.
#[cfg(target_arch = "wasm32")]
pub(crate) type TaskFn<A, R> = Box<dyn FnMut(A) -> R + 'static>;

/// A boxed predicate on errors that is `Send` natively.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) type TaskPredicate = Box<dyn FnMut(&crate::Error) -> bool + Send + 'static>;
/// A boxed predicate on errors that is `Send` natively.
#[cfg(target_arch = "wasm32")]
pub(crate) type TaskPredicate = Box<dyn FnMut(&crate::Error) -> bool + 'static>;
