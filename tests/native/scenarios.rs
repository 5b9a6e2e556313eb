//! The shared scenarios of tests/common, natively, against the in-process echo server.

use crate::common;
use crate::util::{bounded, echo_url};

macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            let url = echo_url().await;
            bounded(common::$name(&url)).await;
        }
    )*};
}

scenarios!(
    echo_text,
    echo_binary,
    echo_empty,
    echo_large,
    streaming_writer_and_reader,
    concurrent_writers,
    peer_close_code_reaches_reader,
    peer_normal_closure,
    client_close_handshake,
    close_while_reading,
    close_arguments_validated,
    read_limit_enforced,
    set_read_limit_lowers,
    subprotocol_negotiated,
    invalid_subprotocol_rejected,
    close_now_is_final,
    close_read_sees_peer_close,
    write_batch_in_order,
);

#[tokio::test]
async fn bad_urls_rejected() {
    bounded(common::bad_urls_rejected()).await;
}

#[tokio::test]
async fn refused_connection() {
    bounded(common::refused_connection()).await;
}

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

macro_rules! helper_scenarios {
    ($($(#[$attr:meta])* $name:ident),* $(,)?) => {$(
        $(#[$attr])*
        #[tokio::test]
        async fn $name() {
            let url = echo_url().await;
            bounded(common::helpers::$name(&url)).await;
        }
    )*};
}

helper_scenarios!(
    #[cfg(feature = "json")]
    json_round_trip_and_errors,
    #[cfg(feature = "protobuf")]
    protobuf_round_trip_and_errors,
    byte_stream_spans_messages_and_ends,
    http_over_byte_stream,
    split_stream_and_sink,
    reconnect_after_drop_once_per_disconnect,
    reconnect_stops_on_a_final_code,
    reconnect_offline_queue,
    heartbeat_message_mode_detects_a_silent_peer,
);
