//! The commands: `sync` and `copy` in each direction, `check` and `cleanup`. A command sets a
//! source beside a destination with the [`crate::march`], decides per key, and hands the work
//! to [`schedule`], which runs transfers under the cutoffs; each direction contributes only its
//! decisions and the transfer of one item ([`crate::transfer`]).

pub mod check;
pub mod cleanup;
pub mod mirror;
pub mod restore;
pub mod schedule;
pub mod sync;
