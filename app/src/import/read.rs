//! Reading an export file: unzip, decode (ISO-8859-15 or UTF-8, as the XML
//! declaration says), parse into a small element tree that remembers each
//! element's line. Every failure names the file, the line and, where there
//! is one, the element.

use super::ImportError;
use quick_xml::events::Event;
use quick_xml::Reader;
use std::io::Read as _;

/// One file given to an import (a zip archive's entries become one each).
#[derive(Clone, Debug)]
pub struct Input {
    /// Its name in messages (`archive.zip:ElevesSansAdresses.xml`).
    pub name: String,
    pub bytes: Vec<u8>,
}

/// An element: its name, attributes, text (the concatenated character data
/// directly inside it, trimmed) and children, with the line it starts on.
#[derive(Clone, Debug, Default)]
pub struct Element {
    pub name: String,
    pub attributes: Vec<(String, String)>,
    pub text: String,
    pub children: Vec<Element>,
    pub line: usize,
}

impl Element {
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }
    pub fn children<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }
    /// The trimmed text of child `name`, `None` when absent or blank.
    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name)
            .map(|c| c.text.as_str())
            .filter(|t| !t.is_empty())
    }
    /// Follows a path of child names.
    pub fn path(&self, names: &[&str]) -> Option<&Element> {
        names.iter().try_fold(self, |e, n| e.child(n))
    }
}

/// Expands zip archives (by their signature, whatever their name) into
/// their `.xml` entries; other inputs pass through.
pub fn expand(input: Input) -> Result<Vec<Input>, ImportError> {
    if !input.bytes.starts_with(b"PK\x03\x04") {
        return Ok(vec![input]);
    }
    let bad = |message: String| ImportError::file(&input.name, message);
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(&input.bytes))
        .map_err(|e| bad(format!("not a readable zip archive ({e})")))?;
    let mut out = Vec::new();
    for i in 0..archive.len() {
        let mut entry = archive
            .by_index(i)
            .map_err(|e| bad(format!("zip entry {i} is unreadable ({e})")))?;
        if entry.is_dir() || !entry.name().to_ascii_lowercase().ends_with(".xml") {
            continue;
        }
        let name = format!("{}:{}", input.name, entry.name());
        let mut bytes = Vec::with_capacity(usize::try_from(entry.size()).unwrap_or(0));
        entry.read_to_end(&mut bytes).map_err(|e| {
            ImportError::file(&name, format!("truncated or corrupt zip entry ({e})"))
        })?;
        out.push(Input { name, bytes });
    }
    if out.is_empty() {
        return Err(bad("the zip archive holds no .xml file".into()));
    }
    Ok(out)
}

/// Where the lines of a text start, to turn byte offsets into line numbers.
struct Lines(Vec<usize>);

impl Lines {
    fn of(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Lines(starts)
    }
    fn line(&self, offset: usize) -> usize {
        self.0.partition_point(|&s| s <= offset)
    }
}

/// The encoding the XML declaration names (UTF-8 when it names none).
fn declared_encoding(bytes: &[u8]) -> Option<String> {
    let head = &bytes[..bytes.len().min(200)];
    let end = head.windows(2).position(|w| w == b"?>")?;
    let decl = std::str::from_utf8(&head[..end]).ok()?;
    let at = decl.find("encoding")?;
    let rest = decl[at + "encoding".len()..]
        .trim_start()
        .strip_prefix('=')?;
    let rest = rest.trim_start();
    let quote = rest.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let value = &rest[1..];
    Some(value[..value.find(quote)?].to_owned())
}

/// The element whose start tag comes last before `offset` (for messages).
fn element_before(text: &str, offset: usize) -> Option<String> {
    let before = &text[..offset.min(text.len())];
    let mut from = before.len();
    while let Some(lt) = before[..from].rfind('<') {
        let name: String = before[lt + 1..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
            .collect();
        if !name.is_empty() {
            return Some(name);
        }
        from = lt;
    }
    None
}

/// Decodes the file as its declaration says, refusing what does not decode
/// cleanly: a UTF-8 file must be valid UTF-8, and a file declared
/// ISO-8859-15 must not hold UTF-8 sequences (a file re-encoded by a tool
/// without changing its declaration, which would import "Ã©" for "é").
pub fn decode(input: &Input) -> Result<String, ImportError> {
    let label = declared_encoding(&input.bytes).unwrap_or_else(|| "UTF-8".into());
    let encoding = encoding_rs::Encoding::for_label(label.trim().as_bytes()).ok_or_else(|| {
        ImportError::file(&input.name, format!("unknown encoding {label:?} declared"))
    })?;
    let bytes = input
        .bytes
        .strip_prefix(b"\xEF\xBB\xBF".as_slice())
        .unwrap_or(&input.bytes);
    if encoding == encoding_rs::UTF_8 {
        return match std::str::from_utf8(bytes) {
            Ok(text) => Ok(text.to_owned()),
            Err(e) => {
                let valid = std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or_default();
                let lines = Lines::of(valid);
                Err(ImportError {
                    file: input.name.clone(),
                    line: Some(lines.line(valid.len())),
                    element: element_before(valid, valid.len()),
                    message: "not valid UTF-8 although the file declares UTF-8 \
                              (an ISO-8859-15 file with a wrong declaration?)"
                        .into(),
                })
            }
        };
    }
    if !bytes.is_ascii() {
        if let Ok(text) = std::str::from_utf8(bytes) {
            let first = text
                .char_indices()
                .find(|(_, c)| !c.is_ascii())
                .map_or(0, |(i, _)| i);
            return Err(ImportError {
                file: input.name.clone(),
                line: Some(Lines::of(text).line(first)),
                element: element_before(text, first),
                message: format!(
                    "declared {label} but encoded in UTF-8 (accents would read as \"Ã©\"): \
                     fix the declaration or export again"
                ),
            });
        }
    }
    let (text, had_errors) = encoding.decode_without_bom_handling(bytes);
    if had_errors {
        return Err(ImportError::file(
            &input.name,
            format!("bytes that are not {label}"),
        ));
    }
    Ok(text.into_owned())
}

/// Parses a decoded document into its root element. `progress` is told
/// the byte offset reached, now and then.
pub fn parse(
    name: &str,
    text: &str,
    progress: &mut dyn FnMut(u64),
) -> Result<Element, ImportError> {
    let lines = Lines::of(text);
    let mut reader = Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    // Progress is told every few thousand events, not at each one.
    let mut next_report = 0u64;
    let mut events = 0u64;
    loop {
        let at = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
        let event = reader.read_event().map_err(|e| {
            let offset = usize::try_from(reader.error_position()).unwrap_or(at);
            // Markup that never closes: the file was cut there.
            let cut = !text.get(offset..).unwrap_or_default().contains('>');
            ImportError {
                file: name.to_owned(),
                line: Some(lines.line(offset)),
                element: stack.last().map(|e| e.name.clone()),
                message: if cut {
                    format!("the file ends in the middle of markup: truncated ({e})")
                } else {
                    format!("malformed XML: {e}")
                },
            }
        })?;
        events += 1;
        if events >= next_report {
            next_report = events + 4096;
            progress(at as u64);
        }
        let error = |element: Option<String>, message: String| ImportError {
            file: name.to_owned(),
            line: Some(lines.line(at)),
            element,
            message,
        };
        match event {
            Event::Start(start) | Event::Empty(start) if root.is_some() => {
                return Err(error(
                    Some(String::from_utf8_lossy(start.name().as_ref()).into_owned()),
                    "content after the root element".into(),
                ))
            }
            Event::Start(ref start) | Event::Empty(ref start) => {
                let element_name = String::from_utf8_lossy(start.name().as_ref()).into_owned();
                let mut attributes = Vec::new();
                for attribute in start.attributes() {
                    let attribute = attribute.map_err(|e| {
                        error(
                            Some(element_name.clone()),
                            format!("malformed attribute: {e}"),
                        )
                    })?;
                    let value = attribute.unescape_value().map_err(|e| {
                        error(
                            Some(element_name.clone()),
                            format!("malformed attribute: {e}"),
                        )
                    })?;
                    attributes.push((
                        String::from_utf8_lossy(attribute.key.as_ref()).into_owned(),
                        value.trim().to_owned(),
                    ));
                }
                let element = Element {
                    name: element_name,
                    attributes,
                    line: lines.line(at),
                    ..Element::default()
                };
                if matches!(event, Event::Empty(_)) {
                    close(&mut stack, &mut root, element);
                } else {
                    stack.push(element);
                }
            }
            Event::End(_) => {
                if let Some(mut element) = stack.pop() {
                    element.text = element.text.trim().to_owned();
                    close(&mut stack, &mut root, element);
                }
            }
            Event::Text(t) => {
                let text = t.unescape().map_err(|e| {
                    error(
                        stack.last().map(|e| e.name.clone()),
                        format!("malformed text: {e}"),
                    )
                })?;
                match stack.last_mut() {
                    Some(open) => open.text.push_str(&text),
                    None if text.trim().is_empty() => {}
                    None => return Err(error(None, "text outside the root element".into())),
                }
            }
            Event::CData(c) => {
                if let Some(open) = stack.last_mut() {
                    open.text.push_str(&String::from_utf8_lossy(&c));
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if let Some(open) = stack.last() {
        return Err(ImportError {
            file: name.to_owned(),
            line: Some(open.line),
            element: Some(open.name.clone()),
            message: format!(
                "the file ends before <{}> (opened on this line) is closed: truncated",
                open.name
            ),
        });
    }
    root.ok_or_else(|| ImportError::file(name, "empty file: no root element".into()))
}

fn close(stack: &mut [Element], root: &mut Option<Element>, element: Element) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(element),
        None => *root = Some(element),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(bytes: &[u8]) -> Input {
        Input {
            name: "f.xml".into(),
            bytes: bytes.to_vec(),
        }
    }

    #[test]
    fn latin9_is_decoded_and_utf8_in_disguise_refused() {
        let latin =
            b"<?xml version=\"1.0\" encoding=\"ISO-8859-15\"?>\n<A>\xc9lo\xefse C\xbdur</A>";
        assert_eq!(
            decode(&input(latin)).expect("decodes"),
            "<?xml version=\"1.0\" encoding=\"ISO-8859-15\"?>\n<A>Éloïse Cœur</A>"
        );
        let disguised = "<?xml version=\"1.0\" encoding=\"ISO-8859-15\"?>\n<A>\n<B>Éloïse</B></A>";
        let err = decode(&input(disguised.as_bytes())).expect_err("refused");
        assert_eq!((err.line, err.element.as_deref()), (Some(3), Some("B")));
        let bad_utf8 = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<A>\n<C>\xe9</C></A>";
        let err = decode(&input(bad_utf8)).expect_err("refused");
        assert_eq!((err.line, err.element.as_deref()), (Some(3), Some("C")));
    }

    #[test]
    fn a_truncated_document_names_the_open_element_and_its_line() {
        let err =
            parse("f.xml", "<A>\n <B x=\"1\">\n  <C>t</C>\n", &mut |_| {}).expect_err("truncated");
        assert_eq!((err.line, err.element.as_deref()), (Some(2), Some("B")));
        let err = parse("f.xml", "<A>\n<B></C>\n</A>", &mut |_| {}).expect_err("malformed");
        assert_eq!(err.line, Some(2));
        let root = parse(
            "f.xml",
            "<A>\n <B x=\"é&amp;\"> t </B><B/></A>",
            &mut |_| {},
        )
        .expect("parses");
        assert_eq!(root.children("B").count(), 2);
        let b = root.child("B").expect("a B");
        assert_eq!(
            (b.line, b.text.as_str(), b.attribute("x")),
            (2, "t", Some("é&"))
        );
    }
}
