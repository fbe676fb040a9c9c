//! Two createrepo_c behaviours the header-to-package conversion does not have on its own:
//!
//! - Old RPMs (no `RPMTAG_ENCODING`) may carry ISO-8859 text. The rpm crate decodes invalid
//!   UTF-8 lossily (U+FFFD); createrepo_c reads such strings as latin1 (dropping bytes
//!   0x80-0xBF). We re-read the raw header strings and put that text back.
//! - When consecutive changelog entries share a timestamp, createrepo_c bumps the earlier-
//!   processed ones by one second each, so dates stay distinct (a compatibility quirk dnf
//!   and its tools rely on for ordering).

use std::collections::HashMap;

use rpmrepo_metadata::{FileType, Package, Requirement};

const STRING: u32 = 6;
const STRING_ARRAY: u32 = 8;
const I18N_STRING: u32 = 9;

/// Map from the lossy decoding of every non-UTF-8 header string to its latin1 decoding.
fn latin1_replacements(header: &rpm::PackageMetadata) -> HashMap<String, String> {
    let mut out = HashMap::new();
    if header
        .header
        .get_entry_data_as_string(rpm::IndexTag::RPMTAG_ENCODING)
        .is_ok()
    {
        return out; // rpm guarantees UTF-8 for these headers
    }
    let Ok(bytes) = header.header_bytes() else {
        return out;
    };
    let be32 = |at: usize| -> Option<u32> {
        Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
    };
    let (Some(entries), Some(store_len)) = (be32(8), be32(12)) else {
        return out;
    };
    let store_start = 16 + entries as usize * 16;
    let Some(store) = bytes.get(store_start..store_start + store_len as usize) else {
        return out;
    };
    for i in 0..entries as usize {
        let at = 16 + i * 16;
        let (Some(kind), Some(offset), Some(count)) = (be32(at + 4), be32(at + 8), be32(at + 12))
        else {
            continue;
        };
        let count = match kind {
            STRING => 1,
            STRING_ARRAY | I18N_STRING => count,
            _ => continue,
        };
        let mut rest = store.get(offset as usize..).unwrap_or_default();
        for _ in 0..count {
            let Some(nul) = rest.iter().position(|&b| b == 0) else {
                break;
            };
            let raw = &rest[..nul];
            if std::str::from_utf8(raw).is_err() {
                // Like createrepo_c: bytes 0x80..=0xBF are C1 controls or, far more likely,
                // misencoded cp1252/ISO-8859-2, and are dropped rather than guessed at.
                let latin1: String = raw
                    .iter()
                    .filter(|&&b| !(0x80..0xC0).contains(&b))
                    .map(|&b| char::from(b))
                    .collect();
                out.insert(String::from_utf8_lossy(raw).into_owned(), latin1);
            }
            rest = &rest[nul + 1..];
        }
    }
    out
}

fn fix(text: &str, replacements: &HashMap<String, String>) -> Option<String> {
    if !text.contains('\u{FFFD}') {
        return None;
    }
    if let Some(exact) = replacements.get(text) {
        return Some(exact.clone());
    }
    let mut fixed = text.to_owned();
    for (lossy, latin1) in replacements {
        if fixed.contains(lossy.as_str()) {
            fixed = fixed.replace(lossy.as_str(), latin1);
        }
    }
    Some(fixed)
}

fn fix_requirements(
    list: &[Requirement],
    replacements: &HashMap<String, String>,
) -> Option<Vec<Requirement>> {
    if !list.iter().any(|r| r.name().contains('\u{FFFD}')) {
        return None;
    }
    Some(
        list.iter()
            .map(|r| match fix(r.name(), replacements) {
                Some(name) => r.clone().set_name(name),
                None => r.clone(),
            })
            .collect(),
    )
}

/// Put latin1 text back where the header held non-UTF-8 strings.
pub(crate) fn restore_latin1(package: &mut Package, header: &rpm::PackageMetadata) {
    let replacements = latin1_replacements(header);
    if replacements.is_empty() {
        return;
    }
    let r = &replacements;
    if let Some(v) = fix(package.summary(), r) {
        package.set_summary(v);
    }
    if let Some(v) = fix(package.description(), r) {
        package.set_description(v);
    }
    if let Some(v) = fix(package.packager(), r) {
        package.set_packager(v);
    }
    if let Some(v) = fix(package.url(), r) {
        package.set_url(v);
    }
    if let Some(v) = fix(package.rpm_license(), r) {
        package.set_rpm_license(v);
    }
    if let Some(v) = fix(package.rpm_vendor(), r) {
        package.set_rpm_vendor(v);
    }
    if let Some(v) = fix(package.rpm_group(), r) {
        package.set_rpm_group(v);
    }
    if let Some(v) = fix(package.rpm_buildhost(), r) {
        package.set_rpm_buildhost(v);
    }
    if let Some(v) = fix_requirements(package.provides(), r) {
        package.set_provides(v);
    }
    if let Some(v) = fix_requirements(package.requires(), r) {
        package.set_requires(v);
    }
    if let Some(v) = fix_requirements(package.conflicts(), r) {
        package.set_conflicts(v);
    }
    if let Some(v) = fix_requirements(package.obsoletes(), r) {
        package.set_obsoletes(v);
    }
    if let Some(v) = fix_requirements(package.suggests(), r) {
        package.set_suggests(v);
    }
    if let Some(v) = fix_requirements(package.enhances(), r) {
        package.set_enhances(v);
    }
    if let Some(v) = fix_requirements(package.recommends(), r) {
        package.set_recommends(v);
    }
    if let Some(v) = fix_requirements(package.supplements(), r) {
        package.set_supplements(v);
    }
    let mut changelogs = package.changelogs().to_vec();
    let mut changed = false;
    for entry in &mut changelogs {
        if let Some(v) = fix(&entry.author, r) {
            entry.author = v;
            changed = true;
        }
        if let Some(v) = fix(&entry.description, r) {
            entry.description = v;
            changed = true;
        }
    }
    if changed {
        package.set_changelogs(changelogs);
    }
    let mut files: Vec<(FileType, String)> = Vec::new();
    package.for_each_file(|kind, path| files.push((kind, path.to_owned())));
    if files.iter().any(|(_, path)| path.contains('\u{FFFD}')) {
        package.clear_files();
        for (kind, path) in files {
            let path = fix(&path, r).unwrap_or(path);
            package.add_file(kind, &path);
        }
    }
}

/// createrepo_c's same-timestamp changelog bump (see the module docs).
pub(crate) fn bump_equal_changelog_times(package: &mut Package) {
    let changelogs = package.changelogs();
    if changelogs
        .windows(2)
        .all(|w| w[0].timestamp != w[1].timestamp)
    {
        return;
    }
    // createrepo_c processes header order (newest first); ours is stored oldest first.
    let mut processed: Vec<_> = changelogs.iter().rev().cloned().collect();
    let mut last_time = 0u64;
    for k in 0..processed.len() {
        let time = processed[k].timestamp;
        if k > 0 && last_time == time {
            for (expected, earlier) in (time..).zip(processed[..k].iter_mut().rev()) {
                if earlier.timestamp != expected {
                    break;
                }
                earlier.timestamp += 1;
            }
        } else {
            last_time = time;
        }
    }
    processed.reverse();
    package.set_changelogs(processed);
}
