//! `repomd.xml`: the index of a repository's metadata files, and the decompression of those
//! files by magic bytes (gzip, xz, zstd, bzip2, or plain), never by file name: Peridot names
//! its files `<uuid>-PRIMARY.xml.gz`, and other tools name them anything.

use std::io::{BufRead, BufReader, Read};

use quick_xml::events::Event;

use super::RpmMetaError;

/// One `<data>` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MdRecord {
    /// The `type` attribute: primary, filelists, other, group, group_gz, updateinfo, modules...
    pub kind: String,
    /// `location href`, relative to the repo base URL.
    pub href: String,
    /// sha256 of the file as stored, when repomd gives a sha256 checksum.
    pub sha256: Option<String>,
    pub size: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoMd {
    pub revision: Option<String>,
    pub records: Vec<MdRecord>,
}

impl RepoMd {
    pub fn record(&self, kind: &str) -> Option<&MdRecord> {
        self.records.iter().find(|r| r.kind == kind)
    }
}

/// Text content of an element, with the XML entity references quick-xml reports separately.
pub(crate) fn push_text(out: &mut String, event: &Event<'_>) {
    match event {
        Event::Text(t) => out.push_str(&t.xml_content().unwrap_or_default()),
        Event::CData(t) => out.push_str(&String::from_utf8_lossy(t)),
        Event::GeneralRef(r) => {
            let name = r.decode().unwrap_or_default();
            match name.as_ref() {
                "amp" => out.push('&'),
                "lt" => out.push('<'),
                "gt" => out.push('>'),
                "quot" => out.push('"'),
                "apos" => out.push('\''),
                _ => {
                    if let Ok(Some(c)) = r.resolve_char_ref() {
                        out.push(c);
                    }
                }
            }
        }
        _ => {}
    }
}

pub(crate) fn attr(e: &quick_xml::events::BytesStart<'_>, name: &str) -> Option<String> {
    e.try_get_attribute(name)
        .ok()
        .flatten()
        .and_then(|a| a.unescape_value().ok().map(|v| v.into_owned()))
}

/// One step of [`walk_xml`].
pub(crate) enum XmlStep<'a> {
    /// An element opens; `empty` for `<x/>`, which gets no [`XmlStep::Close`].
    Open {
        element: &'a quick_xml::events::BytesStart<'a>,
        empty: bool,
    },
    /// An element closes: its local name, and the text it held since the last element began
    /// (entity references resolved, not trimmed).
    Close { name: &'a [u8], text: &'a str },
}

/// Streams the metadata document `input` (repomd, primary, filelists) and hands every element's
/// opening and closing to `on`, which returns an error to stop. Bad XML, or no `<root>` element
/// anywhere, is a [`RpmMetaError::Malformed`] naming `url`.
pub(crate) fn walk_xml(
    input: impl BufRead,
    url: &str,
    root: &str,
    mut on: impl FnMut(XmlStep<'_>) -> Result<(), RpmMetaError>,
) -> Result<(), RpmMetaError> {
    let malformed = |reason: String| RpmMetaError::Malformed {
        url: url.to_string(),
        reason,
    };
    let mut reader = quick_xml::Reader::from_reader(input);
    let mut buf = Vec::new();
    let mut text = String::new();
    let mut saw_root = false;
    loop {
        let event = reader.read_event_into(&mut buf).map_err(|e| {
            malformed(format!(
                "XML error at byte {}: {e}",
                reader.buffer_position()
            ))
        })?;
        match &event {
            Event::Start(e) | Event::Empty(e) => {
                saw_root |= e.local_name().as_ref() == root.as_bytes();
                text.clear();
                let empty = matches!(event, Event::Empty(_));
                on(XmlStep::Open { element: e, empty })?;
            }
            Event::Text(_) | Event::GeneralRef(_) | Event::CData(_) => push_text(&mut text, &event),
            Event::End(e) => {
                let name = e.local_name();
                on(XmlStep::Close {
                    name: name.as_ref(),
                    text: &text,
                })?;
                text.clear();
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if !saw_root {
        return Err(malformed(format!("no <{root}> element")));
    }
    Ok(())
}

pub fn parse_repomd(bytes: &[u8], url: &str) -> Result<RepoMd, RpmMetaError> {
    let mut revision = None;
    let mut records = Vec::new();
    let mut current: Option<MdRecord> = None;
    let mut checksum_is_sha256 = false;
    let mut path: Vec<Vec<u8>> = Vec::new();
    walk_xml(bytes, url, "repomd", |step| {
        match step {
            XmlStep::Open { element: e, empty } => {
                let local = e.local_name();
                let name = local.as_ref();
                match name {
                    b"data" => {
                        current = Some(MdRecord {
                            kind: attr(e, "type").unwrap_or_default(),
                            href: String::new(),
                            sha256: None,
                            size: None,
                        })
                    }
                    b"location" => {
                        if let Some(rec) = current.as_mut() {
                            rec.href = attr(e, "href").unwrap_or_default();
                        }
                    }
                    b"checksum" => {
                        checksum_is_sha256 = attr(e, "type").as_deref() == Some("sha256")
                    }
                    _ => {}
                }
                if !empty {
                    path.push(name.to_vec());
                }
            }
            XmlStep::Close { text, .. } => {
                let name = path.pop().unwrap_or_default();
                let parent = path.last().map(Vec::as_slice);
                match (name.as_slice(), parent, current.as_mut()) {
                    (b"revision", Some(b"repomd"), _) => revision = Some(text.trim().to_string()),
                    (b"checksum", Some(b"data"), Some(rec)) if checksum_is_sha256 => {
                        rec.sha256 = Some(text.trim().to_ascii_lowercase())
                    }
                    (b"size", Some(b"data"), Some(rec)) => rec.size = text.trim().parse().ok(),
                    (b"data", _, _) => {
                        // A `<data>` nested in another closes twice (found by fuzzing).
                        let Some(rec) = current.take() else {
                            return Err(RpmMetaError::Malformed {
                                url: url.to_string(),
                                reason: "a <data> record inside another".into(),
                            });
                        };
                        if rec.href.is_empty() {
                            return Err(RpmMetaError::Malformed {
                                url: url.to_string(),
                                reason: format!("record {} has no location", rec.kind),
                            });
                        }
                        records.push(rec);
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    })?;
    Ok(RepoMd { revision, records })
}

/// A reader that decompresses `input` according to its first bytes.
pub fn decompress<'a>(input: impl Read + 'a) -> std::io::Result<Box<dyn BufRead + 'a>> {
    let mut input = BufReader::with_capacity(1 << 16, input);
    let magic = input.fill_buf()?.to_vec();
    let reader: Box<dyn Read + 'a> = if magic.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::bufread::MultiGzDecoder::new(input))
    } else if magic.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Box::new(liblzma::bufread::XzDecoder::new(input))
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::with_buffer(input)?)
    } else if magic.starts_with(b"BZh") {
        Box::new(bzip2::bufread::BzDecoder::new(input))
    } else {
        return Ok(Box::new(input));
    };
    Ok(Box::new(BufReader::with_capacity(1 << 16, reader)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixtures() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
    }

    #[test]
    fn every_record_type_is_kept_public_fixture() {
        let path = fixtures().join("repodata/all-record-types/repodata/repomd.xml");
        let bytes = fs_err::read(&path).expect("public fixtures present (tests/fixtures)");
        let md = parse_repomd(&bytes, "fixture").unwrap();
        let kinds: Vec<_> = md.records.iter().map(|r| r.kind.as_str()).collect();
        for kind in [
            "primary",
            "filelists",
            "other",
            "group",
            "updateinfo",
            "modules",
        ] {
            assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
        }
        assert!(md.records.iter().all(|r| !r.href.is_empty()));
        assert!(md.record("primary").unwrap().sha256.is_some());
    }

    #[test]
    fn not_repomd_is_rejected() {
        let err = parse_repomd(
            b"<html><body>mirror error</body></html>",
            "http://x/repomd.xml",
        )
        .unwrap_err();
        assert!(err.to_string().contains("http://x/repomd.xml"), "{err}");
    }

    #[test]
    fn compression_is_detected_by_magic() {
        let text = b"<metadata packages=\"0\"/>";
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, text).unwrap();
        let zst = zstd::encode_all(&text[..], 1).unwrap();
        let mut xz = Vec::new();
        liblzma::read::XzEncoder::new(&text[..], 1)
            .read_to_end(&mut xz)
            .unwrap();
        let mut bz = Vec::new();
        bzip2::read::BzEncoder::new(&text[..], bzip2::Compression::fast())
            .read_to_end(&mut bz)
            .unwrap();
        for data in [gz.finish().unwrap(), zst, xz, bz, text.to_vec()] {
            let mut out = Vec::new();
            decompress(&data[..])
                .unwrap()
                .read_to_end(&mut out)
                .unwrap();
            assert_eq!(out, text);
        }
    }
}
