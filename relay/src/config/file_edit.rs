//! Saving a configuration changed through the admin interface into the operator's own file,
//! keeping its comments and layout: only the top-level sections whose value changed are
//! touched, and in a list (switches, users) only the entries that changed. An unchanged entry
//! keeps its text exactly; a changed one is written in its place on one line, in YAML's flow
//! form (`- { no: 2, address: 192.0.2.11, … }`); a new one goes after the last; a deleted
//! one's lines go. A section the file does not have is added at its end.
//!
//! The result is read back before it is used: when it does not give exactly the new
//! configuration (a layout this does not follow, such as a list written in flow form over
//! several lines), there is no edited text, and the caller rewrites the whole file instead.

use serde_yaml::{Mapping, Value};

use super::Config;

/// `original` (the text of the file in force) edited to hold `new`; `None` when it cannot be
/// done safely (the file does not parse, or the edit would not read back as `new`).
pub fn edited_text(original: &str, new: &Config) -> Option<String> {
    let old = Config::parse(original).ok()?;
    let (Value::Mapping(old_map), Value::Mapping(new_map)) = (
        serde_yaml::to_value(&old).ok()?,
        serde_yaml::to_value(new).ok()?,
    ) else {
        return None;
    };
    let mut lines: Vec<String> = original.lines().map(str::to_owned).collect();
    for (key, value) in &new_map {
        if old_map.get(key) == Some(value) {
            continue;
        }
        let Value::String(name) = key else {
            return None;
        };
        let old_value = old_map.get(key).unwrap_or(&Value::Null);
        replace_section(&mut lines, name, old_value, value);
    }
    let mut text = lines.join("\n");
    text.push('\n');
    (Config::parse(&text).ok().as_ref() == Some(new)).then_some(text)
}

/// Replaces the section `name` of `lines` (its key at column 0 and every line after it up to
/// the next line at column 0) with `value`, keeping what it can of `old`'s text.
fn replace_section(lines: &mut Vec<String>, name: &str, old: &Value, value: &Value) {
    let header = format!("{name}:");
    let Some(start) = lines.iter().position(|l| {
        l.strip_prefix(&header)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '#']))
    }) else {
        // Not in the file: added at its end.
        lines.push(String::new());
        lines.extend(section(name, value));
        return;
    };
    let mut end = start + 1;
    while end < lines.len() && !starts_at_column_0(&lines[end]) {
        end += 1;
    }
    // A flow collection may close at column 0 (`]`): the section takes lines until it reads
    // as YAML on its own.
    while end < lines.len() && serde_yaml::from_str::<Value>(&lines[start..end].join("\n")).is_err()
    {
        end += 1;
    }
    // Blank lines before the next section stay where they are.
    while end > start + 1 && lines[end - 1].trim().is_empty() {
        end -= 1;
    }
    let block = &lines[start..end];
    let kept = match (old, block[0][header.len()..].trim_start()) {
        // A block list: its entries' text, matched to the old entries.
        (Value::Sequence(old_items), rest) if rest.is_empty() || rest.starts_with('#') => {
            entries(&block[1..], old_items.len()).map(|(preamble, texts)| {
                (
                    preamble,
                    old_items.iter().cloned().zip(texts).collect::<Vec<_>>(),
                )
            })
        }
        _ => None,
    };
    let replacement = match (value, kept) {
        (Value::Sequence(items), Some((preamble, kept))) if !items.is_empty() => {
            let mut out = vec![block[0].clone()];
            out.extend(preamble);
            out.extend(list_entries(items, kept));
            out
        }
        _ => section(name, value),
    };
    lines.splice(start..end, replacement);
}

fn starts_at_column_0(line: &str) -> bool {
    line.starts_with(|c: char| !c.is_whitespace())
}

/// The lines before the first entry of a block list (indented comments), and the text of each
/// of its `count` entries (`block`: the lines after its key): an entry starts at a line whose
/// first non-space is `- ` at the first entry's indent, and takes the lines after it up to the
/// next. `None` when there are not exactly `count`.
fn entries(block: &[String], count: usize) -> Option<(Vec<String>, Vec<Vec<String>>)> {
    let first = block
        .iter()
        .position(|l| l.trim_start().starts_with("- "))?;
    let indent = block[first].len() - block[first].trim_start().len();
    let mut out: Vec<Vec<String>> = Vec::new();
    for line in &block[first..] {
        let bytes = line.as_bytes();
        let starts_entry = bytes.len() > indent
            && bytes[..indent].iter().all(|b| *b == b' ')
            && bytes[indent..].starts_with(b"- ");
        match out.last_mut() {
            Some(entry) if !starts_entry => entry.push(line.clone()),
            _ => out.push(vec![line.clone()]),
        }
    }
    (out.len() == count).then(|| (block[..first].to_vec(), out))
}

/// The lines of a list whose entries are `items`: an entry equal to an old one keeps that
/// one's text; one with the same identity (`no`, `ip` or `certificate`) as an old one is
/// written anew in its place, followed by the comment lines that followed the old one; the
/// rest follow, written anew, at the indent of the others.
fn list_entries(items: &[Value], mut kept: Vec<(Value, Vec<String>)>) -> Vec<String> {
    let indent = kept
        .first()
        .map(|(_, text)| text[0].len() - text[0].trim_start().len())
        .unwrap_or(2);
    let mut out = Vec::new();
    for item in items {
        if let Some(i) = kept.iter().position(|(old, _)| old == item) {
            out.extend(kept.remove(i).1);
            continue;
        }
        out.push(format!("{}- {}", " ".repeat(indent), flow(item)));
        if let Some(i) = kept
            .iter()
            .position(|(old, _)| identity(old).is_some() && identity(old) == identity(item))
        {
            // The comment lines that followed the entry stay with it.
            let (_, text) = kept.remove(i);
            out.extend(
                text.into_iter()
                    .skip(1)
                    .filter(|l| l.trim_start().starts_with('#')),
            );
        }
    }
    out
}

/// What names a list entry: a switch's `no`, a user's `ip` or `certificate`.
fn identity(item: &Value) -> Option<(&'static str, &Value)> {
    let Value::Mapping(m) = item else {
        return None;
    };
    ["no", "ip", "certificate"]
        .into_iter()
        .find_map(|k| m.get(k).filter(|v| !v.is_null()).map(|v| (k, v)))
}

/// A whole section written anew: a list as a block list of flow entries, anything else on
/// the key's line.
fn section(name: &str, value: &Value) -> Vec<String> {
    match value {
        Value::Sequence(items) if !items.is_empty() => std::iter::once(format!("{name}:"))
            .chain(items.iter().map(|item| format!("  - {}", flow(item))))
            .collect(),
        other => vec![format!("{name}: {}", flow(other))],
    }
}

/// `value` in YAML's flow form on one line. Absent options (null in a mapping) are left out;
/// a string is written plain when it reads back as the same string, and quoted otherwise.
pub fn flow(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => {
            let plain = !s.is_empty()
                && s.chars()
                    .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | ' '))
                && !s.starts_with(['-', ' '])
                && !s.ends_with(' ')
                && serde_yaml::from_str::<Value>(s).ok() == Some(Value::String(s.clone()));
            if plain {
                s.clone()
            } else {
                double_quoted(s)
            }
        }
        Value::Sequence(items) => {
            let items: Vec<String> = items.iter().map(flow).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Mapping(m) => flow_mapping(m),
        Value::Tagged(t) => format!("{} {}", t.tag, flow(&t.value)),
    }
}

/// `s` as a YAML double-quoted scalar: every character YAML does not allow in a file written
/// as an escape (`\t`, `\u007F`, `\u0098`…), so that it reads back as `s`.
fn double_quoted(s: &str) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            ' '..='~' | '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..
                if c != '\u{feff}' =>
            {
                out.push(c)
            }
            c if u32::from(c) <= 0xffff => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => {
                let _ = write!(out, "\\U{:08X}", u32::from(c));
            }
        }
    }
    out.push('"');
    out
}

fn flow_mapping(m: &Mapping) -> String {
    let fields: Vec<String> = m
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| format!("{}: {}", flow(k), flow(v)))
        .collect();
    if fields.is_empty() {
        "{}".into()
    } else {
        format!("{{ {} }}", fields.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{SwitchConfig, User};

    const EXAMPLE: &str = include_str!("../../../config/relay.example.yaml");

    /// The lines of `edited` that `original` does not have, and those of `original` that
    /// `edited` does not, each in its text's order (lines counted, so a repeated line counts).
    fn changed_lines(original: &str, edited: &str) -> (Vec<String>, Vec<String>) {
        fn missing(from: &str, other: &str) -> Vec<String> {
            let mut others: Vec<&str> = other.lines().collect();
            from.lines()
                .filter(|line| match others.iter().position(|o| o == line) {
                    Some(i) => {
                        others.remove(i);
                        false
                    }
                    None => true,
                })
                .map(str::to_owned)
                .collect()
        }
        (missing(edited, original), missing(original, edited))
    }

    #[test]
    fn an_edit_touches_only_the_entries_it_changes_and_keeps_every_comment() {
        let old = Config::parse(EXAMPLE).unwrap();
        let mut new = old.clone();
        // Switch 2 enabled, switch 3 added, a user added, the protocol-2 default changed.
        new.switches[1].enabled = true;
        new.switches
            .push(SwitchConfig::new(3, "192.0.2.12", 5002, "4321"));
        new.users.push(User {
            ip: "192.0.2.52".into(),
            name: "Reception, desk 2".into(),
            ..new.users[0].clone()
        });
        new.default_switch = 2;
        let edited = edited_text(EXAMPLE, &new).expect("the example can be edited in place");
        assert_eq!(Config::parse(&edited).unwrap(), new);
        let (added, removed) = changed_lines(EXAMPLE, &edited);
        assert_eq!(
            removed,
            [
                "  - { no: 2, address: 192.0.2.11, port: 5002, name: \"Branch office\",",
                "      type: officeserv, easyset_password: \"1234\", enabled: false }",
                "default_switch: 1",
            ]
        );
        assert_eq!(
            added,
            [
                "  - { no: 2, address: 192.0.2.11, port: 5002, name: Branch office, type: officeserv, easyset_password: \"1234\", enabled: true }",
                "  - { no: 3, address: 192.0.2.12, port: 5002, name: Switch 3, type: officeserv, easyset_password: \"4321\", enabled: true }",
                "default_switch: 2",
                "  - { ip: 192.0.2.52, name: \"Reception, desk 2\", info: Call user, switches: [1, 2], default_switch: 1, filtering: true }",
            ]
        );
        // Every comment is still there.
        for comment in EXAMPLE.lines().filter(|l| l.trim_start().starts_with('#')) {
            assert!(edited.contains(comment), "lost: {comment}");
        }
    }

    #[test]
    fn a_deleted_entry_takes_its_lines_with_it() {
        let old = Config::parse(EXAMPLE).unwrap();
        let mut new = old.clone();
        new.switches.remove(0);
        new.default_switch = 2;
        new.users.clear();
        let edited = edited_text(EXAMPLE, &new).unwrap();
        assert_eq!(Config::parse(&edited).unwrap(), new);
        let (added, removed) = changed_lines(EXAMPLE, &edited);
        assert_eq!(added, ["default_switch: 2", "users: []"]);
        assert_eq!(
            removed,
            [
                "  - { no: 1, address: 192.0.2.10, port: 5002, name: \"OfficeServ 7200\",",
                "      type: officeserv, easyset_password: \"1234\", enabled: true }",
                "default_switch: 1",
                "users:",
                "  - { ip: 192.0.2.51, name: Alex, info: \"Call user\", switches: [1, 2],",
                "      default_switch: 1, filtering: true }",
            ]
        );
    }

    #[test]
    fn a_section_the_file_lacks_is_added_at_its_end() {
        let original = "# Only a switch.\nswitches:\n  - { no: 1, address: 192.0.2.10 }\n";
        let mut new = Config::parse(original).unwrap();
        new.users
            .push(serde_yaml::from_str::<User>("{ ip: 192.0.2.51, name: Alex }").unwrap());
        let edited = edited_text(original, &new).unwrap();
        assert!(edited.starts_with(original), "{edited}");
        assert_eq!(Config::parse(&edited).unwrap(), new);
    }

    #[test]
    fn comments_inside_a_list_stay() {
        let original = "switches:\n  # the main site\n  - { no: 1, address: 192.0.2.10 }\n  # spare\n  - { no: 2, address: 192.0.2.11 }\n";
        let mut new = Config::parse(original).unwrap();
        new.switches[0].port = 5003;
        let edited = edited_text(original, &new).unwrap();
        assert_eq!(Config::parse(&edited).unwrap(), new);
        let (added, removed) = changed_lines(original, &edited);
        assert_eq!(removed, ["  - { no: 1, address: 192.0.2.10 }"]);
        assert_eq!(added.len(), 1, "{added:?}");
        assert!(
            added[0].starts_with("  - { no: 1, address: 192.0.2.10, port: 5003,"),
            "{added:?}"
        );
    }

    #[test]
    fn a_layout_it_cannot_follow_is_not_edited() {
        // A list in flow form over several lines: rewritten whole, which reads back right.
        let original = "switches: [\n  { no: 1, address: 192.0.2.10 }\n]\n";
        let mut new = Config::parse(original).unwrap();
        new.switches[0].port = 5003;
        let edited = edited_text(original, &new).unwrap();
        assert_eq!(Config::parse(&edited).unwrap(), new);
        // Text that is not a configuration: nothing to keep.
        assert_eq!(edited_text("switches: {", &new), None);
    }

    #[test]
    fn strings_are_quoted_when_plain_text_would_read_otherwise() {
        for (text, written) in [
            ("Alex", "Alex"),
            ("OfficeServ 7200", "OfficeServ 7200"),
            ("1234", "\"1234\""),
            ("true", "\"true\""),
            ("null", "\"null\""),
            ("", "\"\""),
            ("a, b", "\"a, b\""),
            ("x: y", "\"x: y\""),
            ("# not a comment", "\"# not a comment\""),
            ("quote \" inside", "\"quote \\\" inside\""),
            ("-leading", "\"-leading\""),
            ("tab\there", "\"tab\\there\""),
            (
                "del\u{7f} c1\u{98} nel\u{85} bom\u{feff}",
                "\"del\\u007F c1\\u0098 nel\\u0085 bom\\uFEFF\"",
            ),
            ("Grüße 안녕 🎉", "\"Grüße 안녕 🎉\""),
        ] {
            let value = Value::String(text.into());
            assert_eq!(flow(&value), written, "{text:?}");
            let back: Value = serde_yaml::from_str(&flow(&value)).unwrap();
            assert_eq!(back, value);
        }
    }

    /// Text that YAML cannot hold raw (control characters, as a fuzzing client sends) is
    /// written escaped: the edit keeps the file instead of rewriting it.
    #[test]
    fn an_entry_with_control_characters_keeps_the_file() {
        let mut config = Config::parse(EXAMPLE).unwrap();
        let mut switch = config.switches[0].clone();
        switch.no = 7;
        switch.address = "i\u{98}Ð;3#ç\u{7f}".into();
        switch.name = "\t\u{0}\u{1b}[31m".into();
        config.switches.push(switch);
        let edited = edited_text(EXAMPLE, &config).expect("the file is kept");
        assert_eq!(Config::parse(&edited).unwrap(), config);
        assert!(edited.contains("\\u0098"), "{edited}");
    }
}
