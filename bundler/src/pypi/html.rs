//! PEP 503 project pages: the HTML fallback for indexes that do not speak PEP 691 JSON.
//! Only anchors matter; each one is a file with optional `data-requires-python`,
//! `data-yanked` and `data-core-metadata` / `data-dist-info-metadata` attributes. The page is
//! read by html5gum, a WHATWG tokenizer (character references, quoting, case and repeated
//! attributes as a browser reads them), so only the choice of what to keep is ours.

use html5gum::{DefaultEmitter, Token, Tokenizer};

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
    // The text of `<script>`, `<style>` and `<title>` is not markup: an `<a` inside is no anchor.
    let mut emitter = DefaultEmitter::default();
    emitter.naively_switch_states(true);
    let mut anchors = Vec::new();
    let mut base = None;
    // The anchor whose text is being read; an `<a>` never closed ends at the next one.
    let mut open: Option<Anchor> = None;
    for Ok(token) in Tokenizer::new_with_emitter(html, emitter) {
        match token {
            Token::StartTag(tag) => {
                let attribute = |name: &str| {
                    tag.attributes
                        .get(name.as_bytes())
                        .map(|value| String::from_utf8_lossy(value).into_owned())
                };
                match tag.name.as_slice() {
                    b"base" if base.is_none() => base = attribute("href"),
                    b"a" => {
                        anchors.extend(open.take().map(finish));
                        open = attribute("href").map(|href| Anchor {
                            href,
                            text: String::new(),
                            requires_python: attribute("data-requires-python"),
                            yanked: attribute("data-yanked"),
                            core_metadata: attribute("data-core-metadata")
                                .or_else(|| attribute("data-dist-info-metadata")),
                        });
                    }
                    _ => {}
                }
            }
            Token::EndTag(tag) if tag.name.as_slice() == b"a" => {
                anchors.extend(open.take().map(finish));
            }
            Token::String(text) => {
                if let Some(anchor) = open.as_mut() {
                    anchor.text.push_str(&String::from_utf8_lossy(&text));
                }
            }
            _ => {}
        }
    }
    anchors.extend(open.map(finish));
    (anchors, base)
}

fn finish(mut anchor: Anchor) -> Anchor {
    anchor.text = anchor.text.trim().to_string();
    anchor
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
    fn character_references_and_markup_inside_anchors() {
        let html = "<a href=\"a-1.0.tar.gz#sha256=ff\" data-requires-python=\"&lt;4,&#62;=3&#x2c;\">\
<b>a-1.0</b>.tar.gz &amp; more</a><a href=x.whl>unclosed";
        let (anchors, base) = parse_anchors(html);
        assert_eq!(base, None);
        assert_eq!(anchors.len(), 2);
        assert_eq!(anchors[0].requires_python.as_deref(), Some("<4,>=3,"));
        assert_eq!(anchors[0].text, "a-1.0.tar.gz & more");
        assert_eq!(anchors[1].href, "x.whl");
        assert_eq!(anchors[1].text, "unclosed");
    }
}
