//! AFL entry point for [`fuzz::wheel`]; see scripts/fuzz.

fn main() {
    afl::fuzz!(|data: &[u8]| fuzz::wheel(data));
}
