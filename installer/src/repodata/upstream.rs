//! Upstream metadata carried into our repodata: comps (`group` plain + `group_gz`), updateinfo
//! and modules, merged across the per-arch inputs of a multi-arch repo.
//!
//! A single input is carried byte for byte (only recompressed); merging parses only what must
//! be merged: updateinfo by advisory id (on the raw elements), modules by YAML document.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use super::write::{Record, write_compressed, write_plain};
use super::{Compression, Options, RepodataError, UpstreamRecords};

/// Read a metadata file in any of plain/gzip/zstd/xz/bzip2, detected by its magic bytes.
pub(crate) fn read_maybe_compressed(path: &Path) -> Result<Vec<u8>, RepodataError> {
    let raw = fs_err::read(path)?;
    let mut out = Vec::new();
    let result = if raw.starts_with(&[0x1f, 0x8b]) {
        flate2::read::MultiGzDecoder::new(&raw[..]).read_to_end(&mut out)
    } else if raw.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        zstd::Decoder::new(&raw[..]).and_then(|mut d| d.read_to_end(&mut out))
    } else if raw.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        liblzma::read::XzDecoder::new(&raw[..]).read_to_end(&mut out)
    } else if raw.starts_with(b"BZh") {
        bzip2::read::MultiBzDecoder::new(&raw[..]).read_to_end(&mut out)
    } else {
        return Ok(raw);
    };
    result.map_err(|e| RepodataError::Upstream {
        kind: "metadata",
        path: path.to_owned(),
        message: format!("cannot decompress: {e}"),
    })?;
    Ok(out)
}

/// Write the merged upstream records into `dir`.
pub(crate) fn write_upstream_records(
    dir: &Path,
    upstream: &[UpstreamRecords],
    options: &Options,
) -> Result<Vec<Record>, RepodataError> {
    let mut records = Vec::new();

    if let Some(comps) = upstream.iter().find_map(|u| u.comps.as_ref()) {
        let content = read_maybe_compressed(comps)?;
        records.push(write_plain(dir, "group", "comps.xml", &content, options)?);
        let gzip = Options {
            compression: Compression::Gzip,
            ..options.clone()
        };
        records.push(write_compressed(
            dir,
            "group_gz",
            "comps.xml",
            &gzip,
            |out| Ok(out.write_all(&content)?),
        )?);
    }

    let updateinfo: Vec<&Path> = upstream
        .iter()
        .filter_map(|u| u.updateinfo.as_deref())
        .collect();
    if !updateinfo.is_empty() {
        let content = merged_updateinfo(&updateinfo)?;
        records.push(write_compressed(
            dir,
            "updateinfo",
            "updateinfo.xml",
            options,
            |out| Ok(out.write_all(&content)?),
        )?);
    }

    let modules: Vec<&Path> = upstream
        .iter()
        .filter_map(|u| u.modules.as_deref())
        .collect();
    if !modules.is_empty() {
        let content = merged_modules(&modules)?;
        records.push(write_compressed(
            dir,
            "modules",
            "modules.yaml",
            options,
            |out| Ok(out.write_all(&content)?),
        )?);
    }
    Ok(records)
}

fn updateinfo_error(path: &Path, e: impl std::fmt::Display) -> RepodataError {
    RepodataError::Upstream {
        kind: "updateinfo",
        path: path.to_owned(),
        message: e.to_string(),
    }
}

/// One input: verbatim. Several: the union by advisory id, package lists merged.
///
/// Works on the raw text of each `<update>` element rather than a parsed model, so every
/// element and attribute upstream wrote survives (real updateinfo files vary widely and a
/// strict parser would turn a harmless quirk into a failed apply).
fn merged_updateinfo(paths: &[&Path]) -> Result<Vec<u8>, RepodataError> {
    if let [single] = paths {
        return read_maybe_compressed(single);
    }
    let mut updates: Vec<String> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for path in paths {
        let content = read_maybe_compressed(path)?;
        let text = String::from_utf8(content).map_err(|e| updateinfo_error(path, e))?;
        for update in update_elements(&text) {
            let id = element_text(update, "id")
                .ok_or_else(|| updateinfo_error(path, "an <update> without <id>"))?;
            match index.get(id) {
                Some(&i) => merge_update(&mut updates[i], update),
                None => {
                    index.insert(id.to_owned(), updates.len());
                    updates.push(update.to_owned());
                }
            }
        }
    }
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<updates>\n");
    for update in updates {
        out.push_str("  ");
        out.push_str(&update);
        out.push('\n');
    }
    out.push_str("</updates>\n");
    Ok(out.into_bytes())
}

/// The raw `<update ...>...</update>` elements of an updateinfo document.
fn update_elements(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = find_start_tag(rest, "update") {
        let Some(end) = rest[start..].find("</update>") else {
            break;
        };
        let end = start + end + "</update>".len();
        out.push(&rest[start..end]);
        rest = &rest[end..];
    }
    out
}

/// Offset of the next `<name>` or `<name ...>` start tag (not `<names...>`).
fn find_start_tag(text: &str, name: &str) -> Option<usize> {
    let open = format!("<{name}");
    let mut from = 0;
    while let Some(found) = text[from..].find(&open) {
        let at = from + found;
        match text[at + open.len()..].chars().next() {
            Some(c) if c == '>' || c == '/' || c.is_whitespace() => return Some(at),
            _ => from = at + open.len(),
        }
    }
    None
}

fn element_text<'a>(element: &'a str, name: &str) -> Option<&'a str> {
    let start = element.find(&format!("<{name}>"))? + name.len() + 2;
    let end = element[start..].find(&format!("</{name}>"))?;
    Some(element[start..start + end].trim())
}

/// The raw `<package ...>...</package>` elements of an update.
fn package_elements(update: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = update;
    while let Some(start) = find_start_tag(rest, "package") {
        let tail = &rest[start..];
        let end = match (tail.find("/>"), tail.find('>'), tail.find("</package>")) {
            // `<package .../>`: the first `>` closes an empty element.
            (Some(empty), Some(close), _) if empty + 1 == close => empty + 2,
            (_, _, Some(end)) => end + "</package>".len(),
            _ => break,
        };
        out.push(&tail[..end]);
        rest = &tail[end..];
    }
    out
}

/// Add the packages of `other` (same advisory id) that `into` does not list yet, into the
/// last collection of `into`.
fn merge_update(into: &mut String, other: &str) {
    let missing: Vec<&str> = package_elements(other)
        .into_iter()
        .filter(|package| {
            !package_elements(into)
                .iter()
                .any(|p| p.trim() == package.trim())
        })
        .collect();
    if missing.is_empty() {
        return;
    }
    let Some(at) = into.rfind("</collection>") else {
        return;
    };
    let mut insert = String::new();
    for package in missing {
        insert.push_str(package);
        insert.push_str("\n        ");
    }
    into.insert_str(at, &insert);
}

/// One input: verbatim. Several: all YAML documents in input order, identical ones once.
fn merged_modules(paths: &[&Path]) -> Result<Vec<u8>, RepodataError> {
    if let [single] = paths {
        return read_maybe_compressed(single);
    }
    let mut documents: Vec<String> = Vec::new();
    for path in paths {
        let content = read_maybe_compressed(path)?;
        let text = String::from_utf8(content).map_err(|e| RepodataError::Upstream {
            kind: "modules",
            path: path.to_path_buf(),
            message: format!("not UTF-8: {e}"),
        })?;
        for document in yaml_documents(&text) {
            if !documents.contains(&document) {
                documents.push(document);
            }
        }
    }
    let mut out = String::new();
    for document in documents {
        out.push_str(&document);
        out.push_str("\n...\n");
    }
    Ok(out.into_bytes())
}

/// Split a YAML stream into documents, each starting with its `---` line (with any tag it
/// carries) and without the `...` end marker.
pub(crate) fn yaml_documents(text: &str) -> Vec<String> {
    let mut documents = Vec::new();
    let mut marker = "---";
    let mut body: Vec<&str> = Vec::new();
    let mut flush = |marker: &str, body: &mut Vec<&str>| {
        let text = body.join("\n");
        if !text.trim().is_empty() {
            documents.push(format!("{marker}\n{}", text.trim_end()));
        }
        body.clear();
    };
    for line in text.lines() {
        if line == "---" || line.starts_with("--- ") {
            flush(marker, &mut body);
            marker = line;
        } else if line == "..." {
            flush(marker, &mut body);
            marker = "---";
        } else {
            body.push(line);
        }
    }
    flush(marker, &mut body);
    documents
}
