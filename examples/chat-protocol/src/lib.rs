//! The chat demo protocol (placeholder).
