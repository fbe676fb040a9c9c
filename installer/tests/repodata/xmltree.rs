//! A tool-neutral view of repodata for oracle comparisons: every `<package>` element becomes a
//! tree of (name, attributes, trimmed text, children), so two generators' outputs compare
//! semantically (attribute order, indentation and empty-element style do not matter).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use quick_xml::Reader;
use quick_xml::events::Event;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub attrs: BTreeMap<String, String>,
    pub text: String,
    pub children: Vec<Node>,
}

impl Node {
    pub fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }
    pub fn child_mut(&mut self, name: &str) -> Option<&mut Node> {
        self.children.iter_mut().find(|c| c.name == name)
    }
}

/// Decompress by magic bytes (gzip, zstd, or plain).
pub fn read_maybe_compressed(path: &Path) -> Vec<u8> {
    let raw = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = Vec::new();
    if raw.starts_with(&[0x1f, 0x8b]) {
        flate2::read::MultiGzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .unwrap();
    } else if raw.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        zstd::Decoder::new(&raw[..])
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
    } else {
        out = raw;
    }
    out
}

/// The document's root element as a tree.
pub fn parse(xml: &[u8]) -> Node {
    let mut reader = Reader::from_reader(xml);
    let mut stack: Vec<Node> = vec![Node {
        name: "#document".into(),
        attrs: BTreeMap::new(),
        text: String::new(),
        children: Vec::new(),
    }];
    let mut buf = Vec::new();
    loop {
        let event = reader.read_event_into(&mut buf).expect("well-formed XML");
        match event {
            Event::Start(e) => stack.push(node_from(&e)),
            Event::Empty(e) => {
                let node = node_from(&e);
                stack.last_mut().unwrap().children.push(node);
            }
            Event::End(_) => {
                let mut node = stack.pop().unwrap();
                node.text = node.text.trim().to_owned();
                stack.last_mut().unwrap().children.push(node);
            }
            Event::Text(t) => {
                let text = t.decode().unwrap();
                let text = quick_xml::escape::unescape(&text).unwrap().into_owned();
                stack.last_mut().unwrap().text.push_str(&text);
            }
            Event::GeneralRef(r) => {
                let name = r.decode().unwrap();
                let resolved = match name.as_ref() {
                    "lt" => "<".to_owned(),
                    "gt" => ">".to_owned(),
                    "amp" => "&".to_owned(),
                    "quot" => "\"".to_owned(),
                    "apos" => "'".to_owned(),
                    other => match r.resolve_char_ref().unwrap() {
                        Some(c) => c.to_string(),
                        None => panic!("unknown entity &{other};"),
                    },
                };
                stack.last_mut().unwrap().text.push_str(&resolved);
            }
            Event::CData(c) => {
                let text = String::from_utf8(c.into_inner().into_owned()).unwrap();
                stack.last_mut().unwrap().text.push_str(&text);
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    let mut document = stack.pop().unwrap();
    document.children.remove(0)
}

fn node_from(e: &quick_xml::events::BytesStart<'_>) -> Node {
    let name = String::from_utf8(e.name().as_ref().to_vec()).unwrap();
    let attrs = e
        .attributes()
        .map(|a| {
            let a = a.unwrap();
            (
                String::from_utf8(a.key.as_ref().to_vec()).unwrap(),
                a.unescape_value().unwrap().into_owned(),
            )
        })
        .collect();
    Node {
        name,
        attrs,
        text: String::new(),
        children: Vec::new(),
    }
}

/// `location href` of each `<data type=...>` in a repomd.xml.
pub fn repomd_locations(repo_dir: &Path) -> BTreeMap<String, String> {
    let repomd = parse(&std::fs::read(repo_dir.join("repodata/repomd.xml")).unwrap());
    repomd
        .children
        .iter()
        .filter(|c| c.name == "data")
        .map(|d| {
            (
                d.attrs["type"].clone(),
                d.child("location").unwrap().attrs["href"].clone(),
            )
        })
        .collect()
}

/// The packages of one metadata kind (`primary`, `filelists`, `other`) keyed by pkgid (plus
/// the location for primary, so a file present twice would still be told apart).
pub fn packages(metadata_root: &Path, kind: &str) -> (usize, BTreeMap<String, Node>) {
    let locations = repomd_locations(metadata_root);
    let href = locations
        .get(kind)
        .unwrap_or_else(|| panic!("no {kind} record in {}", metadata_root.display()));
    let root = parse(&read_maybe_compressed(&metadata_root.join(href)));
    let declared: usize = root.attrs["packages"].parse().unwrap();
    let mut out = BTreeMap::new();
    for package in root.children.into_iter().filter(|c| c.name == "package") {
        let key = match kind {
            "primary" => format!(
                "{} {}",
                package.child("checksum").unwrap().text,
                package.child("location").unwrap().attrs["href"]
            ),
            _ => package.attrs["pkgid"].clone(),
        };
        assert!(
            out.insert(key.clone(), package).is_none(),
            "duplicate {key}"
        );
    }
    (declared, out)
}
