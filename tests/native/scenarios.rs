//! The shared scenarios of tests/common, natively, against the in-process echo server.

use crate::common;
use crate::util::{bounded, echo_url};

/// Turns each group of `common::for_each_scenario!` into `#[tokio::test]`s, each bounded in
/// time, the URL-taking ones against a fresh in-process echo server (which accepts
/// permessage-deflate), and each dialing with `compression` (see `crate::dial_options`).
macro_rules! tokio_scenarios {
    ($compression:expr; url, $module:path, [$($(#[$attr:meta])* $name:ident),* $(,)?]) => {$(
        $(#[$attr])*
        #[tokio::test]
        async fn $name() {
            use $module as shared;
            let url = echo_url().await;
            crate::COMPRESSION.scope($compression, bounded(shared::$name(&url))).await;
        }
    )*};
    ($compression:expr; no_url, $module:path, [$($(#[$attr:meta])* $name:ident),* $(,)?]) => {$(
        $(#[$attr])*
        #[tokio::test]
        async fn $name() {
            use $module as shared;
            crate::COMPRESSION.scope($compression, bounded(shared::$name())).await;
        }
    )*};
}

/// Every scenario without compression.
mod plain {
    use super::*;
    macro_rules! scenarios {
        ($($t:tt)*) => { tokio_scenarios!(isosock::Compression::Disabled; $($t)*); };
    }
    common::for_each_scenario!(scenarios);
}

/// Every scenario again with permessage-deflate, no context kept between messages, every
/// message compressed (threshold 0).
mod deflate_no_context {
    use super::*;
    macro_rules! scenarios {
        ($($t:tt)*) => { tokio_scenarios!(isosock::Compression::NoContextTakeover; $($t)*); };
    }
    common::for_each_scenario!(scenarios);
}

/// And with the window kept from message to message in both directions.
mod deflate_context {
    use super::*;
    macro_rules! scenarios {
        ($($t:tt)*) => { tokio_scenarios!(isosock::Compression::ContextTakeover; $($t)*); };
    }
    common::for_each_scenario!(scenarios);
}

// ---- native-only ----------------------------------------------------------------------------
// The targets differ here, so this case is not in the shared list; its browser counterpart is
// `chromium_refuses_when_no_offered_subprotocol_is_picked` in tests/wasm/main.rs.

/// RFC 6455 lets a server select none of the offered subprotocols; natively that is a
/// successful dial without one. (Chromium refuses such a handshake: see tests/wasm.)
#[tokio::test]
async fn no_common_subprotocol_is_accepted() {
    bounded(async {
        let url = echo_url().await;
        let (conn, resp) =
            isosock::dial(&url, &isosock::DialOptions::new().subprotocols(["nope.v9"]))
                .await
                .expect("dial with no common protocol");
        assert_eq!(conn.subprotocol(), None);
        assert_eq!(resp.subprotocol(), None);
    })
    .await;
}
