//! NATS subjects: tokens separated by `.`; in a pattern `*` stands for one token and a final
//! `>` for one or more.

/// Whether `subject` matches `pattern`.
pub fn matches(pattern: &str, subject: &str) -> bool {
    let mut wanted = pattern.split('.');
    let mut given = subject.split('.');
    loop {
        match (wanted.next(), given.next()) {
            (Some(">"), Some(_)) => return wanted.next().is_none(),
            (Some("*"), Some(_)) => {}
            (Some(w), Some(g)) if w == g => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn wildcards_match_as_nats_matches_them() {
        let cases = [
            ("cti.hq.sw1.events", "cti.hq.sw1.events", true),
            ("cti.hq.sw1.events", "cti.hq.sw2.events", false),
            ("cti.*.sw1.events", "cti.hq.sw1.events", true),
            ("cti.*.events", "cti.hq.sw1.events", false),
            ("hq.>", "hq.00ff", true),
            ("hq.>", "hq", false),
            ("hq.>", "hq.a.b", true),
            ("hq", "hq.a", false),
            ("hq.a", "hq", false),
            (">", "anything.at.all", true),
        ];
        for (pattern, subject, expected) in cases {
            assert_eq!(matches(pattern, subject), expected, "{pattern} ~ {subject}");
        }
    }
}
