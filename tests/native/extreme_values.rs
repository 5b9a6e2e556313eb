//! Every public option and constructor at the edges of its type (0, 1, `usize::MAX`,
//! `Duration::ZERO`, `Duration::MAX`, NaN and infinite rates): a typed error or a documented
//! meaning, never a panic.
