//! Regression tests for the native engine's hardening: hostile length headers, fragmented
//! messages against the read limit, mid-frame UTF-8 failure and the bounded write queue.
