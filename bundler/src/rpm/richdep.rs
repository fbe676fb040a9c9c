//! Parser for rpm rich (boolean) dependencies such as `(nginx-filesystem or httpd-filesystem)`
//! or `(git-core-doc if bash)`: `and`, `or`, `with`, `without`, `if`/`unless` with optional
//! `else`, nested parentheses, and versioned terms (`name >= 1.2`).

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RichDep {
    Simple {
        name: String,
        /// EQ, LT, GT, LE, GE (primary.xml's spelling).
        op: Option<String>,
        evr: String,
    },
    And(Vec<RichDep>),
    Or(Vec<RichDep>),
    With(Vec<RichDep>),
    Without(Box<RichDep>, Box<RichDep>),
    /// `then if cond [else otherwise]`, or with `unless` the inverse condition.
    Cond {
        then: Box<RichDep>,
        cond: Box<RichDep>,
        otherwise: Option<Box<RichDep>>,
        unless: bool,
    },
}

fn tokenize(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '(' | ')' => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                out.push(c.to_string());
            }
            c if c.is_whitespace() => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

struct Parser {
    tokens: Vec<String>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&str> {
        self.tokens.get(self.pos).map(String::as_str)
    }

    fn next(&mut self) -> Result<String, String> {
        let t = self.tokens.get(self.pos).cloned().ok_or("unexpected end")?;
        self.pos += 1;
        Ok(t)
    }

    /// `( expr )`
    fn group(&mut self) -> Result<RichDep, String> {
        if self.next()? != "(" {
            return Err("expected (".into());
        }
        let first = self.term()?;
        let result = match self.peek() {
            Some(")") => first,
            Some(op @ ("and" | "or" | "with")) => {
                let op = op.to_string();
                let mut parts = vec![first];
                while self.peek() == Some(op.as_str()) {
                    self.pos += 1;
                    parts.push(self.term()?);
                }
                match op.as_str() {
                    "and" => RichDep::And(parts),
                    "or" => RichDep::Or(parts),
                    _ => RichDep::With(parts),
                }
            }
            Some("without") => {
                self.pos += 1;
                RichDep::Without(Box::new(first), Box::new(self.term()?))
            }
            Some(op @ ("if" | "unless")) => {
                let unless = op == "unless";
                self.pos += 1;
                let cond = self.term()?;
                let otherwise = if self.peek() == Some("else") {
                    self.pos += 1;
                    Some(Box::new(self.term()?))
                } else {
                    None
                };
                RichDep::Cond {
                    then: Box::new(first),
                    cond: Box::new(cond),
                    otherwise,
                    unless,
                }
            }
            other => return Err(format!("unexpected {other:?}")),
        };
        if self.next()? != ")" {
            return Err("expected )".into());
        }
        Ok(result)
    }

    fn term(&mut self) -> Result<RichDep, String> {
        if self.peek() == Some("(") {
            return self.group();
        }
        let name = self.next()?;
        let op = match self.peek() {
            Some("=" | "==") => Some("EQ"),
            Some("<") => Some("LT"),
            Some("<=" | "=<") => Some("LE"),
            Some(">") => Some("GT"),
            Some(">=" | "=>") => Some("GE"),
            _ => None,
        };
        let (op, evr) = match op {
            Some(op) => {
                self.pos += 1;
                (Some(op.to_string()), self.next()?)
            }
            None => (None, String::new()),
        };
        Ok(RichDep::Simple { name, op, evr })
    }
}

/// Parse a rich dependency string (it starts with `(`).
pub fn parse_rich(s: &str) -> Result<RichDep, String> {
    let mut p = Parser {
        tokens: tokenize(s),
        pos: 0,
    };
    let dep = p.group()?;
    if p.pos != p.tokens.len() {
        return Err(format!("trailing input in {s}"));
    }
    Ok(dep)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn simple(n: &str) -> RichDep {
        RichDep::Simple {
            name: n.into(),
            op: None,
            evr: String::new(),
        }
    }

    #[test]
    fn or_and_nested() {
        assert_eq!(
            parse_rich("(a or b)").unwrap(),
            RichDep::Or(vec![simple("a"), simple("b")])
        );
        let dep = parse_rich("(a and (b >= 1.2-3 or c))").unwrap();
        let RichDep::And(parts) = dep else { panic!() };
        assert_eq!(parts[0], simple("a"));
        assert_eq!(
            parts[1],
            RichDep::Or(vec![
                RichDep::Simple {
                    name: "b".into(),
                    op: Some("GE".into()),
                    evr: "1.2-3".into()
                },
                simple("c")
            ])
        );
    }

    #[test]
    fn conditionals() {
        let dep = parse_rich("(doc if bash else minimal)").unwrap();
        assert!(matches!(
            dep,
            RichDep::Cond {
                unless: false,
                otherwise: Some(_),
                ..
            }
        ));
        assert!(matches!(
            parse_rich("(a unless b)").unwrap(),
            RichDep::Cond { unless: true, .. }
        ));
        assert!(parse_rich("(a or").is_err());
    }
}
