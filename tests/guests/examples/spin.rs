//! Spin: an infinite loop that never calls the host.

/// Loops forever.
fn spin() {
    let mut x: u64 = 1;
    loop {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
}

spore_guest::entries!(spin);
