//! `.dockerignore` rules, with Docker's semantics: one pattern per line, `#` comments, `*` and
//! `?` within a path segment, `**` across segments, `!` to re-include; the last matching rule
//! wins, and a rule that matches a folder matches everything below it.

/// The parsed rules of one `.dockerignore` file.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
struct Rule {
    segments: Vec<String>,
    exclude: bool,
}

impl Rules {
    pub fn parse(text: &str) -> Rules {
        let rules = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .filter_map(|line| {
                let (exclude, pattern) = match line.strip_prefix('!') {
                    Some(rest) => (false, rest.trim()),
                    None => (true, line),
                };
                let segments: Vec<String> = pattern
                    .split('/')
                    .filter(|s| !s.is_empty() && *s != ".")
                    .map(str::to_string)
                    .collect();
                (!segments.is_empty()).then_some(Rule { segments, exclude })
            })
            .collect();
        Rules { rules }
    }

    /// Whether `path` (relative, `/`-separated) is left out of the build context.
    pub fn excludes(&self, path: &str) -> bool {
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let mut excluded = false;
        for rule in &self.rules {
            // A rule matches the path itself or any of its parent folders.
            let matched =
                (1..=segments.len()).any(|n| match_segments(&rule.segments, &segments[..n]));
            if matched {
                excluded = rule.exclude;
            }
        }
        excluded
    }

    /// Whether some `!` rule could re-include something below `folder`: then the folder must
    /// be walked even when it is excluded.
    pub fn may_reinclude_below(&self, folder: &str) -> bool {
        let depth = folder.split('/').filter(|s| !s.is_empty()).count();
        self.rules.iter().any(|rule| {
            !rule.exclude
                && (rule.segments.len() > depth || rule.segments.iter().any(|s| s == "**"))
        })
    }
}

fn match_segments(pattern: &[String], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((first, rest)) if first == "**" => {
            (0..=path.len()).any(|skip| match_segments(rest, &path[skip..]))
        }
        Some((first, rest)) => match path.split_first() {
            Some((segment, path_rest)) => {
                match_glob(first.as_bytes(), segment.as_bytes()) && match_segments(rest, path_rest)
            }
            None => false,
        },
    }
}

/// `*` any run of characters, `?` one character, `[abc]`/`[a-z]` a class, `\x` a literal.
fn match_glob(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|skip| match_glob(rest, &text[skip..])),
        Some((b'?', rest)) => !text.is_empty() && match_glob(rest, &text[1..]),
        Some((b'[', rest)) => {
            let Some(end) = rest.iter().position(|b| *b == b']') else {
                return text.first() == Some(&b'[') && match_glob(rest, &text[1..]);
            };
            let Some((c, text_rest)) = text.split_first() else {
                return false;
            };
            let (negate, class) = match rest[..end].split_first() {
                Some((b'^' | b'!', class)) => (true, class),
                _ => (false, &rest[..end]),
            };
            let mut found = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == b'-' {
                    found |= (class[i]..=class[i + 2]).contains(c);
                    i += 3;
                } else {
                    found |= class[i] == *c;
                    i += 1;
                }
            }
            found != negate && match_glob(&rest[end + 1..], text_rest)
        }
        Some((b'\\', rest)) if !rest.is_empty() => {
            text.first() == Some(&rest[0]) && match_glob(&rest[1..], &text[1..])
        }
        Some((c, rest)) => text.first() == Some(c) && match_glob(rest, &text[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_semantics() {
        let rules = Rules::parse(
            "# comment\n\ntarget\n*.log\n!keep.log\n/docs/*.md\n**/__pycache__\nsecret?.txt\n",
        );
        assert!(rules.excludes("target"));
        assert!(
            rules.excludes("target/debug/x"),
            "a folder rule covers what is below"
        );
        assert!(rules.excludes("app.log"));
        assert!(!rules.excludes("keep.log"), "the last matching rule wins");
        assert!(!rules.excludes("sub/app.log"), "* does not cross folders");
        assert!(rules.excludes("docs/a.md"));
        assert!(!rules.excludes("docs/sub/a.md"));
        assert!(rules.excludes("a/b/__pycache__/x.pyc"));
        assert!(rules.excludes("__pycache__"));
        assert!(rules.excludes("secret1.txt"));
        assert!(!rules.excludes("secret12.txt"));
        assert!(!rules.excludes("main.py"));
    }

    #[test]
    fn classes_and_reinclusion() {
        let rules = Rules::parse("data/\n!data/keep.csv\nfile[0-9].bin\n");
        assert!(rules.excludes("data/a.csv"));
        assert!(!rules.excludes("data/keep.csv"));
        assert!(rules.may_reinclude_below("data"));
        assert!(rules.excludes("file7.bin"));
        assert!(!rules.excludes("filex.bin"));
        assert!(!Rules::parse("x\n").may_reinclude_below("x"));
    }
}
