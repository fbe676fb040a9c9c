//! Rewrites createrepo_c output the way Rocky's Peridot build system publishes it: metadata
//! files named `<uuid>-PRIMARY.xml.gz` instead of `<checksum>-primary.xml.gz`, and empty
//! elements (`<rpm:vendor/>`, `<url/>` ...) left out of primary. A mirror reader that assumes
//! createrepo_c's names or a full element set breaks on this; the generated AppStream repo
//! uses it so every test meets it.

use std::io::{Read, Write};
use std::path::Path;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use crate::rpmgen::SplitMix;

/// One `<data>` record of repomd.xml, as far as this rewrite needs it.
struct Record {
    kind: String,
    href: String,
}

fn records(repomd: &str) -> Result<Vec<Record>> {
    let mut out = Vec::new();
    for block in repomd.split("<data type=\"").skip(1) {
        let kind = block.split('"').next().unwrap_or_default().to_string();
        let Some(start) = block.find("<location href=\"") else {
            bail!("repomd record {kind} has no location");
        };
        let rest = &block[start + "<location href=\"".len()..];
        let href = rest.split('"').next().unwrap_or_default().to_string();
        out.push(Record { kind, href });
    }
    Ok(out)
}

fn uuid(rng: &mut SplitMix) -> String {
    let a = rng.next_u64();
    let b = rng.next_u64();
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        (b >> 48) & 0x3fff | 0x8000,
        b & 0xffff_ffff_ffff
    )
}

/// Drop lines that hold only an empty element without attributes, e.g. `<rpm:vendor/>` or
/// `<url></url>`: Peridot's writer omits them.
fn omit_empty_elements(xml: &str) -> String {
    let mut out = String::with_capacity(xml.len());
    for line in xml.lines() {
        let t = line.trim();
        let self_closed =
            t.starts_with('<') && t.ends_with("/>") && !t.contains(' ') && !t.starts_with("</");
        let open_close = t.starts_with('<') && !t.contains(' ') && {
            let name = t
                .trim_start_matches('<')
                .split('>')
                .next()
                .unwrap_or_default();
            !name.is_empty() && t == format!("<{name}></{name}>")
        };
        if self_closed || open_close {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Rewrite `repodata` in place: rename every record to `<uuid>-<TYPE>.<ext>`, strip empty
/// elements from primary, and write a new repomd.xml with matching checksums and sizes.
pub fn rewrite_peridot_style(repodata: &Path, timestamp: u64) -> Result<()> {
    let repomd_path = repodata.join("repomd.xml");
    let repomd = fs_err::read_to_string(&repomd_path)?;
    let revision = repomd
        .split("<revision>")
        .nth(1)
        .and_then(|r| r.split("</revision>").next())
        .unwrap_or("0")
        .to_string();
    let repo_root = repodata.parent().expect("repodata has a parent");
    let mut rng = SplitMix::new(timestamp ^ repodata.as_os_str().len() as u64);
    let mut blocks = String::new();
    for record in records(&repomd)? {
        let old = repo_root.join(&record.href);
        let stored = fs_err::read(&old)?;
        let gz = record.href.ends_with(".gz");
        let (stored, open) = if record.kind == "primary" {
            if !gz {
                bail!("Peridot rewrite expects gzip primary, got {}", record.href);
            }
            let mut xml = String::new();
            flate2::read::GzDecoder::new(&stored[..])
                .read_to_string(&mut xml)
                .with_context(|| format!("decompressing {}", old.display()))?;
            let xml = omit_empty_elements(&xml).into_bytes();
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(&xml)?;
            (enc.finish()?, Some(xml))
        } else if gz {
            let mut xml = Vec::new();
            flate2::read::GzDecoder::new(&stored[..]).read_to_end(&mut xml)?;
            (stored, Some(xml))
        } else {
            (stored, None)
        };
        let base = record.href.rsplit('/').next().unwrap_or_default();
        let ext = base.split_once('.').map(|(_, e)| e).unwrap_or("xml");
        let new_name = format!("{}-{}.{ext}", uuid(&mut rng), record.kind.to_uppercase());
        fs_err::remove_file(&old)?;
        fs_err::write(repodata.join(&new_name), &stored)?;
        blocks.push_str(&format!(
            "  <data type=\"{}\">\n    <checksum type=\"sha256\">{}</checksum>\n",
            record.kind,
            sha256_hex(&stored)
        ));
        if let Some(open) = &open {
            blocks.push_str(&format!(
                "    <open-checksum type=\"sha256\">{}</open-checksum>\n",
                sha256_hex(open)
            ));
        }
        blocks.push_str(&format!(
            "    <location href=\"repodata/{new_name}\"/>\n    <timestamp>{timestamp}</timestamp>\n    <size>{}</size>\n",
            stored.len()
        ));
        if let Some(open) = &open {
            blocks.push_str(&format!("    <open-size>{}</open-size>\n", open.len()));
        }
        blocks.push_str("  </data>\n");
    }
    let new_repomd = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<repomd xmlns=\"http://linux.duke.edu/metadata/repo\" xmlns:rpm=\"http://linux.duke.edu/metadata/rpm\">\n  <revision>{revision}</revision>\n{blocks}</repomd>\n"
    );
    fs_err::write(&repomd_path, new_repomd)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_elements_are_dropped_and_others_kept() {
        let xml = "<package>\n  <url/>\n  <rpm:vendor></rpm:vendor>\n  <rpm:entry name=\"a\"/>\n  <name>x</name>\n  <rpm:provides>\n  </rpm:provides>\n</package>\n";
        let out = omit_empty_elements(xml);
        assert!(!out.contains("<url/>"));
        assert!(!out.contains("rpm:vendor"));
        assert!(out.contains("<rpm:entry name=\"a\"/>"));
        assert!(out.contains("<name>x</name>"));
        assert!(out.contains("<rpm:provides>"));
    }
}
