//! AFL entry point for [`fuzz::site_toml`]; see scripts/fuzz.

fn main() {
    afl::fuzz!(|data: &[u8]| fuzz::site_toml(data));
}
