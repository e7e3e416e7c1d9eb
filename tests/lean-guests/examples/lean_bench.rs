//! The bench guest's W4a and W4b drivers on the SDK without std (see
//! tests/guests/examples/bench.rs and `spore_lean_guests::w4`): the same spawns of smaller
//! processes.

#![no_std]

use spore_lean_guests::w4::{idle, nop, w4a, w4b};

spore_guest::entries!(w4a, nop, w4b, idle);
