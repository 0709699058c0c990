//! Rewrites the `seed-*` files of the SDK's fuzz targets under
//! `fuzz/corpus/` (fresh signatures and certificate keys; the fixed test
//! keys stay). Run by hand: `cargo run -p rootmark-sdk --example fuzz-seeds`.

#[path = "../tests/support/fuzz_seeds.rs"]
mod fuzz_seeds;

fn main() {
    fuzz_seeds::write_seed_corpus();
    println!(
        "wrote the seed-* files under {}",
        fuzz_seeds::corpus().display()
    );
}
