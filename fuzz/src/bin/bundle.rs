//! AFL entry point for [`fuzz::bundle`]; see scripts/fuzz.

fn main() {
    afl::fuzz!(|data: &[u8]| fuzz::bundle(data));
}
