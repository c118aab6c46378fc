//! Just enough of AWS's wire formats for the strict layer: query-protocol
//! form bodies and the XML moto answers with. A small reader of our own
//! keeps testkit free of an XML dependency.

/// The `key=value` pairs of a form body, decoded, in order.
pub(super) fn parse_form(body: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key), percent_decode(value))
        })
        .collect()
}

/// A form body for `pairs`, percent-encoded.
pub(super) fn encode_form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(key, value)| format!("{}={}", percent_encode(key), percent_encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let hex = |byte: u8| (byte as char).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(high), Some(low)) => {
                    out.push((high * 16 + low) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// Escapes text for the content of an XML element (quotes need no escape
/// there, and AWS leaves them as they are).
pub(super) fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn xml_unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// One XML element: its name, its text, its child elements.
#[derive(Debug, Default)]
pub(super) struct Element {
    pub name: String,
    pub text: String,
    pub children: Vec<Element>,
}

impl Element {
    /// The document element of `xml`, or `None` when it is not well formed.
    pub fn parse(xml: &str) -> Option<Element> {
        // The bottom of the stack holds the document element once done.
        let mut stack = vec![Element::default()];
        let mut rest = xml;
        while let Some(open) = rest.find('<') {
            let text = &rest[..open];
            if !text.trim().is_empty() {
                stack.last_mut()?.text.push_str(&xml_unescape(text));
            }
            rest = &rest[open..];
            if let Some(after) = rest.strip_prefix("<?") {
                rest = &after[after.find("?>")? + 2..];
                continue;
            }
            if let Some(after) = rest.strip_prefix("<!--") {
                rest = &after[after.find("-->")? + 3..];
                continue;
            }
            if let Some(after) = rest.strip_prefix("<![CDATA[") {
                let end = after.find("]]>")?;
                stack.last_mut()?.text.push_str(&after[..end]);
                rest = &after[end + 3..];
                continue;
            }
            let close = rest.find('>')?;
            let tag = &rest[1..close];
            rest = &rest[close + 1..];
            if let Some(name) = tag.strip_prefix('/') {
                let done = stack.pop()?;
                if done.name != name.trim() || stack.is_empty() {
                    return None;
                }
                stack.last_mut()?.children.push(done);
            } else {
                let element = Element {
                    name: tag
                        .trim_end_matches('/')
                        .split_whitespace()
                        .next()?
                        .to_string(),
                    ..Element::default()
                };
                if tag.ends_with('/') {
                    stack.last_mut()?.children.push(element);
                } else {
                    stack.push(element);
                }
            }
        }
        let mut document = stack.pop()?;
        if !stack.is_empty() {
            return None;
        }
        document.children.pop()
    }

    /// The direct children named `name`.
    pub fn children<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |child| child.name == name)
    }

    /// The text of the first direct child named `name`.
    pub fn text_of(&self, name: &str) -> Option<&str> {
        self.children
            .iter()
            .find(|child| child.name == name)
            .map(|child| child.text.as_str())
    }

    /// The first element named `name` at any depth, this one included.
    pub fn find(&self, name: &str) -> Option<&Element> {
        if self.name == name {
            return Some(self);
        }
        self.children.iter().find_map(|child| child.find(name))
    }

    /// The texts of every element named `name` at any depth.
    pub fn texts(&self, name: &str) -> Vec<&str> {
        let mut found = Vec::new();
        self.collect_texts(name, &mut found);
        found
    }

    fn collect_texts<'a>(&'a self, name: &str, found: &mut Vec<&'a str>) {
        if self.name == name {
            found.push(self.text.as_str());
        }
        for child in &self.children {
            child.collect_texts(name, found);
        }
    }

    /// The entries of the list element `list` (EC2's `<xSet><item>`, the
    /// query protocol's `<Xs><member>`), wherever it is.
    pub fn entries<'a>(&'a self, list: &str, entry: &'a str) -> Vec<&'a Element> {
        self.find(list)
            .map(|list| list.children(entry).collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_nested_lists_and_self_closing_tags() {
        let xml = "<?xml version=\"1.0\"?><R xmlns=\"x\"><set><item><id>a</id><inner><item><id>b</id></item></inner><state>on</state></item>\
                   <item><id>c</id><empty/><state>off &amp; out</state></item></set></R>";
        let root = Element::parse(xml).expect("well formed");
        let items = root.entries("set", "item");
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].text_of("state"), Some("on"));
        assert_eq!(items[1].text_of("state"), Some("off & out"));
        assert_eq!(root.texts("id"), ["a", "b", "c"]);
    }

    #[test]
    fn form_round_trips() {
        let body = encode_form(&[("Action", "CreateTags"), ("Tag.1.Value", "a b&c/ü")]);
        assert_eq!(
            parse_form(body.as_bytes()),
            [
                ("Action".to_string(), "CreateTags".to_string()),
                ("Tag.1.Value".to_string(), "a b&c/ü".to_string())
            ]
        );
        assert_eq!(parse_form(b"A=x+y%2"), [("A".into(), "x y%2".into())]);
    }
}
