//! PEP 503 project pages: the HTML fallback for indexes that do not speak PEP 691 JSON.
//! Only anchors matter; each one is a file with optional `data-requires-python`,
//! `data-yanked` and `data-core-metadata` / `data-dist-info-metadata` attributes.

/// One `<a>` of a project page, attribute values already HTML-unescaped.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Anchor {
    pub href: String,
    pub text: String,
    pub requires_python: Option<String>,
    /// `Some(reason)` (possibly empty) when `data-yanked` is present.
    pub yanked: Option<String>,
    /// `data-core-metadata` (or the legacy `data-dist-info-metadata`) value, when present.
    pub core_metadata: Option<String>,
}

/// Extracts the anchors of a project page; also returns `<base href>` when there is one.
pub fn parse_anchors(html: &str) -> (Vec<Anchor>, Option<String>) {
    let mut anchors = Vec::new();
    let mut base = None;
    let lower = html.to_ascii_lowercase();
    let mut cursor = 0;
    while let Some(found) = lower[cursor..].find('<') {
        let start = cursor + found;
        let Some(end_rel) = lower[start..].find('>') else {
            break;
        };
        let tag_end = start + end_rel;
        let tag = &html[start + 1..tag_end];
        let tag_lower = &lower[start + 1..tag_end];
        cursor = tag_end + 1;
        let is_tag = |name: &str| {
            tag_lower.starts_with(name)
                && tag_lower[name.len()..]
                    .starts_with(|c: char| c.is_ascii_whitespace() || c == '/')
        };
        if is_tag("base") {
            base = attributes(&tag[4..])
                .into_iter()
                .find(|(k, _)| k == "href")
                .and_then(|(_, v)| v);
        } else if is_tag("a") {
            let attrs = attributes(&tag[1..]);
            let get = |key: &str| {
                attrs
                    .iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| v.clone().unwrap_or_default())
            };
            let Some(href) = get("href") else { continue };
            let text_end = lower[cursor..]
                .find("</a")
                .map_or(lower.len(), |at| cursor + at);
            let text = unescape(html[cursor..text_end].trim());
            cursor = text_end;
            anchors.push(Anchor {
                href,
                text,
                requires_python: get("data-requires-python"),
                yanked: get("data-yanked"),
                core_metadata: get("data-core-metadata").or_else(|| get("data-dist-info-metadata")),
            });
        }
    }
    (anchors, base)
}

/// Attributes of a tag body (`name="v" name='v' name=v name`), names lowercased.
fn attributes(body: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    let bytes = body.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        while i < bytes.len() && (bytes[i].is_ascii_whitespace() || bytes[i] == b'/') {
            i += 1;
        }
        let name_start = i;
        while i < bytes.len()
            && !bytes[i].is_ascii_whitespace()
            && bytes[i] != b'='
            && bytes[i] != b'/'
        {
            i += 1;
        }
        if name_start == i {
            break;
        }
        let name = body[name_start..i].to_ascii_lowercase();
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if i < bytes.len() && bytes[i] == b'=' {
            i += 1;
            while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            let value = if i < bytes.len() && (bytes[i] == b'"' || bytes[i] == b'\'') {
                let quote = bytes[i];
                let start = i + 1;
                let end = body[start..]
                    .find(quote as char)
                    .map_or(body.len(), |at| start + at);
                i = (end + 1).min(bytes.len());
                &body[start..end]
            } else {
                let start = i;
                while i < bytes.len() && !bytes[i].is_ascii_whitespace() {
                    i += 1;
                }
                &body[start..i]
            };
            out.push((name, Some(unescape(value))));
        } else {
            out.push((name, None));
        }
    }
    out
}

/// Decodes the character references an index page uses (named basics and numeric).
pub fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let Some(semi) = rest.find(';').filter(|&semi| semi <= 10) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..semi];
        let decoded = match entity {
            "lt" => Some('<'),
            "gt" => Some('>'),
            "amp" => Some('&'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .or_else(|| entity.strip_prefix("#X"))
                .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|dec| dec.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_with_pep_attributes() {
        let html = r#"<!DOCTYPE html><html><head><base href="https://files.example/"></head><body>
<a href="../../files/a-1.0-py3-none-any.whl#sha256=ab" data-requires-python="&gt;=3.11" data-core-metadata="sha256=cd">a-1.0-py3-none-any.whl</a><br/>
<A HREF='a-0.9.tar.gz' data-yanked>a-0.9.tar.gz</A>
<a href=a-0.8.tar.gz data-yanked="broken &amp; old" data-dist-info-metadata=true>a-0.8.tar.gz</a>
</body></html>"#;
        let (anchors, base) = parse_anchors(html);
        assert_eq!(base.as_deref(), Some("https://files.example/"));
        assert_eq!(anchors.len(), 3);
        assert_eq!(
            anchors[0].href,
            "../../files/a-1.0-py3-none-any.whl#sha256=ab"
        );
        assert_eq!(anchors[0].requires_python.as_deref(), Some(">=3.11"));
        assert_eq!(anchors[0].core_metadata.as_deref(), Some("sha256=cd"));
        assert_eq!(anchors[0].yanked, None);
        assert_eq!(anchors[1].yanked.as_deref(), Some(""));
        assert_eq!(anchors[1].text, "a-0.9.tar.gz");
        assert_eq!(anchors[2].yanked.as_deref(), Some("broken & old"));
        assert_eq!(anchors[2].core_metadata.as_deref(), Some("true"));
    }

    #[test]
    fn unescapes_references() {
        assert_eq!(
            unescape("&lt;4,&#62;=3&#x2c; a&b &bogus;"),
            "<4,>=3, a&b &bogus;"
        );
    }
}
