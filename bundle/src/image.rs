//! The names an image registry serves, as the OCI distribution spec writes them: repository
//! names, tags and digests. Both sides hold a bundle's images to this grammar: the bundler
//! before it pulls (a name from a list), the installer before it serves (a name from a
//! bundle), so that no name can step outside the registry tree.

/// One repository name component: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*` (distribution spec).
fn check_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// A repository name as the distribution spec allows it: lowercase components separated by
/// `/`, nothing that could leave the tree (`..`, a leading `/`).
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 255 {
        return Err(format!("name {name:?} must be 1 to 255 characters"));
    }
    if !name.split('/').all(check_component) {
        return Err(format!(
            "name {name:?} is outside the distribution spec's grammar (lowercase letters, digits and single separators . _ __ - between them, components joined by /)"
        ));
    }
    Ok(())
}

/// A tag: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
pub fn check_tag(tag: &str) -> Result<(), String> {
    let b = tag.as_bytes();
    let first = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
    let rest = |x: u8| first(x) || x == b'.' || x == b'-';
    if b.is_empty() || b.len() > 128 || !first(b[0]) || !b[1..].iter().all(|&x| rest(x)) {
        return Err(format!(
            "tag {tag:?} is outside the distribution spec's grammar ([A-Za-z0-9_][A-Za-z0-9._-], at most 128 characters)"
        ));
    }
    Ok(())
}

/// The hex part of a `sha256:<64 lowercase hex>` digest.
pub fn digest_hex(digest: &str) -> Result<&str, String> {
    match digest.strip_prefix("sha256:") {
        Some(hex) if crate::paths::is_sha256_hex(hex) => Ok(hex),
        _ => Err(format!(
            "digest {digest:?} is not sha256:<64 lowercase hex digits>"
        )),
    }
}
