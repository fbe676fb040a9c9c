//! AFL entry point for [`fuzz::pypi_index`]; see scripts/fuzz.

fn main() {
    afl::fuzz!(|data: &[u8]| fuzz::pypi_index(data));
}
