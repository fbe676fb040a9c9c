//! AFL entry point for [`fuzz::requirements`]; see scripts/fuzz.

fn main() {
    afl::fuzz!(|data: &[u8]| fuzz::requirements(data));
}
