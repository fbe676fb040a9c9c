//! AFL entry point for [`fuzz::rpm_xml`]; see scripts/fuzz.

fn main() {
    afl::fuzz!(|data: &[u8]| fuzz::rpm_xml(data));
}
