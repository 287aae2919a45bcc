//! Citations of docs/dialects.md resolve: every section (`§A.3`, `§1b`, bare `A.9`), rule
//! (`rule 10c`, `rules 14 and 15`, `rules 11–12`), finding (`finding 2`) and source label
//! (`[gitlab-1564]`) that a file citing the document names is defined there, as a `§` heading,
//! a bold `**Rule N.**` / `**Finding N.**` item or a `[label]: url` reference.
//!
//! A file cites the document when it mentions `dialects.md`; in such a file every id of those
//! forms is checked, wherever it stands, since the code often cites by id alone
//! (`// A.1 ETag: ...`). Other files (an `RFC 2046 §5.1.1` elsewhere) are not read. The document
//! itself is checked too, for its own cross-references.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

const DOCUMENT: &str = "docs/dialects.md";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Section,
    Rule,
    Finding,
    Label,
}

#[derive(Debug, PartialEq, Eq)]
struct Citation {
    kind: Kind,
    id: String,
    line: usize,
}

impl fmt::Display for Citation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            Kind::Section => write!(f, "§{}", self.id),
            Kind::Rule => write!(f, "rule {}", self.id),
            Kind::Finding => write!(f, "finding {}", self.id),
            Kind::Label => write!(f, "[{}]", self.id),
        }
    }
}

/// The ids docs/dialects.md defines.
#[derive(Default)]
struct Anchors(BTreeSet<(Kind, String)>);

impl Anchors {
    fn read(document: &str) -> Self {
        let mut anchors = Self::default();
        for line in document.lines() {
            let heading = line.trim_start_matches('#');
            if heading.len() < line.len()
                && let Some(rest) = heading.trim_start().strip_prefix('§')
            {
                let id: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '.')
                    .collect();
                anchors.insert(Kind::Section, id.trim_end_matches('.'));
            }
            for (marker, kind) in [("**Rule ", Kind::Rule), ("**Finding ", Kind::Finding)] {
                for (at, _) in line.match_indices(marker) {
                    let rest = &line[at + marker.len()..];
                    if let Some((id, _)) = rest.split_once(".**") {
                        anchors.insert(kind, id);
                    }
                }
            }
            if let Some(rest) = line.strip_prefix('[')
                && let Some((label, url)) = rest.split_once("]: ")
                && url.starts_with("http")
            {
                anchors.insert(Kind::Label, label);
            }
        }
        anchors
    }

    fn insert(&mut self, kind: Kind, id: &str) {
        self.0.insert((kind, id.to_string()));
    }

    fn defines(&self, citation: &Citation) -> bool {
        self.0.contains(&(citation.kind, citation.id.clone()))
    }

    fn count(&self, kind: Kind) -> usize {
        self.0.iter().filter(|(k, _)| *k == kind).count()
    }
}

/// A file's text with comment markers taken off each line and the lines joined by spaces, so a
/// citation broken over two comment lines (`rule` / `/// 10c`) reads as one; `lines[i]` is the
/// offset in the joined text where line `i + 1` starts.
struct Joined {
    text: String,
    lines: Vec<usize>,
}

impl Joined {
    fn new(source: &str) -> Self {
        let mut text = String::new();
        let mut lines = Vec::new();
        for line in source.lines() {
            lines.push(text.len());
            let mut content = line.trim_start();
            for marker in ["//!", "///", "//", "#"] {
                if let Some(rest) = content.strip_prefix(marker) {
                    content = rest.trim_start();
                    break;
                }
            }
            text.push_str(content);
            text.push(' ');
        }
        Self { text, lines }
    }

    fn line_of(&self, offset: usize) -> usize {
        self.lines.partition_point(|start| *start <= offset)
    }
}

/// Every citation in `source` (a file that cites docs/dialects.md).
fn citations(source: &str) -> Vec<Citation> {
    let joined = Joined::new(source);
    let text = joined.text.as_str();
    let mut found = Vec::new();
    let mut cite = |kind, id: &str, at| {
        found.push(Citation {
            kind,
            id: id.to_string(),
            line: joined.line_of(at),
        });
    };
    for (at, c) in text.char_indices() {
        let before = &text[..at];
        let after = &text[at + c.len_utf8()..];
        let starts_word = !before.ends_with(|p: char| p.is_alphanumeric() || "._-§".contains(p));
        match c {
            '§' if !cites_an_rfc(before) => {
                let id: String = after
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '.')
                    .collect();
                let id = id.trim_end_matches('.');
                if !id.is_empty() {
                    cite(Kind::Section, id, at);
                }
            }
            'A'..='D' if starts_word => {
                if let Some(id) = bare_section(c, after) {
                    cite(Kind::Section, &id, at);
                }
            }
            'r' | 'R' | 'f' | 'F' if starts_word => {
                let lower = after.to_ascii_lowercase();
                let (kind, rest) = if let Some(rest) = lower.strip_prefix("ule") {
                    (Kind::Rule, rest)
                } else if let Some(rest) = lower.strip_prefix("inding") {
                    (Kind::Finding, rest)
                } else {
                    continue;
                };
                let rest = rest.strip_prefix('s').unwrap_or(rest);
                for id in numbered_ids(rest) {
                    cite(kind, &id, at);
                }
            }
            '[' => {
                if let Some(label) = label(after) {
                    cite(Kind::Label, label, at);
                }
            }
            _ => {}
        }
    }
    found
}

/// Whether the `§` that follows `before` is a section of an RFC (`RFC 2046 §5.1.1`).
fn cites_an_rfc(before: &str) -> bool {
    let mut words = before.split_whitespace().rev();
    let number = words.next().unwrap_or_default();
    !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()) && words.next() == Some("RFC")
}

/// `A.9` (letter already read, `after` the rest): a section id standing alone, not `A.9.1` or
/// `A.9x`.
fn bare_section(letter: char, after: &str) -> Option<String> {
    let digits: String = after
        .strip_prefix('.')?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let next = after[1 + digits.len()..].chars().next();
    let continues = next.is_some_and(|n| n.is_alphanumeric() || n == '_')
        || (next == Some('.') && after[2 + digits.len()..].starts_with(|d: char| d.is_ascii_digit()));
    (!digits.is_empty() && !continues).then(|| format!("{letter}.{digits}"))
}

/// The ids after `rule`/`rules`/`finding`/`findings`: ` 10c`, ` 14 and 15`, ` 11–12`,
/// ` 24, 25`. Anything else (`rule of thumb`, `rules and`) is prose and yields none.
fn numbered_ids(mut rest: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut separator = " ";
    while let Some(tail) = rest.strip_prefix(separator) {
        let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            break;
        }
        let mut end = digits;
        let mut suffixed = tail[digits..].chars();
        if let (Some(letter), next) = (suffixed.next(), suffixed.next())
            && letter.is_ascii_lowercase()
            && !next.is_some_and(char::is_alphanumeric)
        {
            end += 1;
        }
        if tail[end..].starts_with(|c: char| c.is_alphanumeric()) {
            break;
        }
        ids.push(tail[..end].to_string());
        rest = &tail[end..];
        let Some(next) = [", ", " and ", " or ", "–", "-", "/"]
            .into_iter()
            .find(|s| rest.starts_with(s))
        else {
            break;
        };
        separator = next;
    }
    ids
}

/// A source label after `[`: lowercase words joined by hyphens, then `]`, and not a Markdown
/// link's text (`](`) or a reference definition (`]:`).
fn label(after: &str) -> Option<&str> {
    let (label, tail) = after.split_once(']')?;
    let well_formed = label.contains('-')
        && label.starts_with(|c: char| c.is_ascii_lowercase())
        && label
            .split('-')
            .all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
    (well_formed && !tail.starts_with(['(', ':'])).then_some(label)
}

/// The files whose citations are checked, relative to the repository: src/ and tests/ (this
/// file aside), README.md and docs/*.md.
fn files_to_check(root: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, files: &mut Vec<PathBuf>) {
        let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                walk(&path, files);
            } else {
                files.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&root.join("src"), &mut files);
    walk(&root.join("tests"), &mut files);
    files.push(root.join("README.md"));
    for entry in std::fs::read_dir(root.join("docs")).expect("docs/") {
        let path = entry.expect("directory entry").path();
        if path.extension().is_some_and(|e| e == "md") {
            files.push(path);
        }
    }
    files.retain(|f| !f.ends_with(file!()));
    files.sort();
    files
}

#[test]
fn every_dialects_md_citation_names_an_anchor_the_document_defines() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let document = std::fs::read_to_string(root.join(DOCUMENT)).expect(DOCUMENT);
    let anchors = Anchors::read(&document);
    for kind in [Kind::Section, Kind::Rule, Kind::Finding, Kind::Label] {
        assert!(
            anchors.count(kind) > 0,
            "{DOCUMENT} defines no {kind:?} anchors: has its form changed?"
        );
    }

    let mut checked = 0;
    let mut checked_outside_the_document = 0;
    let mut citing_files = 0;
    let mut dangling = Vec::new();
    for path in files_to_check(root) {
        let Ok(source) = std::fs::read_to_string(&path) else {
            continue; // not text
        };
        let relative = path.strip_prefix(root).expect("under the root").display().to_string();
        if !source.contains("dialects.md") && relative != DOCUMENT {
            continue;
        }
        citing_files += 1;
        for citation in citations(&source) {
            checked += 1;
            if relative != DOCUMENT {
                checked_outside_the_document += 1;
            }
            if !anchors.defines(&citation) {
                dangling.push(format!("{relative}:{}: {citation}", citation.line));
            }
        }
    }
    println!(
        "{checked} citations of {DOCUMENT} checked in {citing_files} files \
         ({checked_outside_the_document} outside the document)"
    );
    assert!(
        dangling.is_empty(),
        "{} citation(s) of {DOCUMENT} name nothing it defines (a `§` heading, `**Rule N.**`, \
         `**Finding N.**` or `[label]: url`):\n{}",
        dangling.len(),
        dangling.join("\n")
    );
    // The code cites the document in over a hundred places in some twenty files; far fewer
    // means the scanner stopped seeing them.
    assert!(citing_files >= 15, "only {citing_files} files cite {DOCUMENT}");
    assert!(
        checked_outside_the_document >= 100,
        "only {checked_outside_the_document} citations of {DOCUMENT} found outside it"
    );
}

#[test]
fn citation_scanner_reads_every_form_the_code_uses_and_skips_prose() {
    let source = "\
/// a trailer (docs/dialects.md rule
/// 10c); see §D.2, rules 14 and 15, rules 11–12 and finding 2.
// A.9: no CRC64NVME; Rule 26: private; A.5 / rule 30, finding 7 ([iceberg-go-1423]).
// RFC 2046 §5.1.1, version 1.2, A.9.1, DATA.1, a rule of thumb, the rules, rule 5th,
// [u8], [the link](https://example.com), [x]: https://example.com.
";
    let found: Vec<String> = citations(source).iter().map(|c| format!("{}:{c}", c.line)).collect();
    assert_eq!(
        found,
        [
            "1:rule 10c",
            "2:§D.2",
            "2:rule 14",
            "2:rule 15",
            "2:rule 11",
            "2:rule 12",
            "2:finding 2",
            "3:§A.9",
            "3:rule 26",
            "3:§A.5",
            "3:rule 30",
            "3:finding 7",
            "3:[iceberg-go-1423]",
        ]
    );

    let anchors =
        Anchors::read("## §A.9 Garage\n### §1a Wire\n**Rule 10c.** x\n- **Finding 2.** y\n[a-b]: https://x\n");
    let defined = |kind, id: &str| {
        anchors.defines(&Citation {
            kind,
            id: id.into(),
            line: 0,
        })
    };
    assert!(defined(Kind::Section, "A.9") && defined(Kind::Section, "1a"));
    assert!(defined(Kind::Rule, "10c") && defined(Kind::Finding, "2") && defined(Kind::Label, "a-b"));
    assert!(!defined(Kind::Rule, "10") && !defined(Kind::Section, "A"));
}
