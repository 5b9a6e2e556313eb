//! A client `Conn` (from `isosock::fuzz::client_conn`) with any read limit, reading frames of
//! every kind, length encoding and fragmentation, checked against the model in `conn_model`.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "conn_model/mod.rs"]
mod conn_model;

fuzz_target!(|input: conn_model::Input| {
    conn_model::run(conn_model::Role::Client, &input);
});
