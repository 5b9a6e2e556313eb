//! The example servers under load: a small file-descriptor limit, slow and idle clients.
