//! `.dockerignore` rules, with Docker's semantics: one pattern per line, `#` comments, `*` and
//! `?` within a path segment, `[...]` classes, `**` across segments, `!` to re-include; the last
//! matching rule wins, and a rule that matches a folder matches everything below it.
//!
//! Patterns are compiled by `globset` (regular-expression automata): matching takes time linear
//! in the path whatever the pattern (a hand-written backtracking matcher took exponential time
//! on patterns like `*a*a*a*a*a*a*a*b`).

use globset::{GlobBuilder, GlobMatcher};

/// The parsed rules of one `.dockerignore` file.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
struct Rule {
    matcher: GlobMatcher,
    /// Path segments in the pattern, and whether one of them is `**` (for re-inclusion).
    depth: usize,
    any_depth: bool,
    exclude: bool,
}

/// A pattern that cannot be compiled.
#[derive(Debug, thiserror::Error)]
#[error(".dockerignore line {line}: invalid pattern {pattern:?}: {message}")]
pub struct PatternError {
    pub line: usize,
    pub pattern: String,
    pub message: String,
}

impl Rules {
    pub fn parse(text: &str) -> Result<Rules, PatternError> {
        let mut rules = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (exclude, pattern) = match line.strip_prefix('!') {
                Some(rest) => (false, rest.trim()),
                None => (true, line),
            };
            // Docker cleans patterns: no leading `/` or `./`, no empty or `.` segments.
            let segments: Vec<&str> = pattern
                .split('/')
                .filter(|s| !s.is_empty() && *s != ".")
                .collect();
            if segments.is_empty() {
                continue;
            }
            let cleaned = segments.join("/");
            let matcher = GlobBuilder::new(&cleaned)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|err| PatternError {
                    line: number + 1,
                    pattern: pattern.to_string(),
                    message: err.kind().to_string(),
                })?
                .compile_matcher();
            rules.push(Rule {
                matcher,
                depth: segments.len(),
                any_depth: segments.contains(&"**"),
                exclude,
            });
        }
        Ok(Rules { rules })
    }

    /// Whether `path` (relative, `/`-separated) is left out of the build context.
    pub fn excludes(&self, path: &str) -> bool {
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        // The path itself and each of its parent folders, as a rule may match any of them.
        let prefixes: Vec<String> = (1..=segments.len())
            .map(|n| segments[..n].join("/"))
            .collect();
        let mut excluded = false;
        for rule in &self.rules {
            if prefixes.iter().any(|prefix| rule.matcher.is_match(prefix)) {
                excluded = rule.exclude;
            }
        }
        excluded
    }

    /// Whether some `!` rule could re-include something below `folder`: then the folder must
    /// be walked even when it is excluded.
    pub fn may_reinclude_below(&self, folder: &str) -> bool {
        let depth = folder.split('/').filter(|s| !s.is_empty()).count();
        self.rules
            .iter()
            .any(|rule| !rule.exclude && (rule.depth > depth || rule.any_depth))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_semantics() {
        let rules = Rules::parse(
            "# comment\n\ntarget\n*.log\n!keep.log\n/docs/*.md\n**/__pycache__\nsecret?.txt\n",
        )
        .unwrap();
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
        let rules = Rules::parse("data/\n!data/keep.csv\nfile[0-9].bin\n").unwrap();
        assert!(rules.excludes("data/a.csv"));
        assert!(!rules.excludes("data/keep.csv"));
        assert!(rules.may_reinclude_below("data"));
        assert!(rules.excludes("file7.bin"));
        assert!(!rules.excludes("filex.bin"));
        assert!(!Rules::parse("x\n").unwrap().may_reinclude_below("x"));
    }

    #[test]
    fn adversarial_patterns_match_in_linear_time() {
        let rules = Rules::parse("*a*a*a*a*a*a*a*a*a*a*a*a*b\n").unwrap();
        let path = "a".repeat(200);
        let started = std::time::Instant::now();
        assert!(!rules.excludes(&path));
        assert!(rules.excludes(&format!("{path}b")));
        // Backtracking needs ~200^12 steps here; an automaton a few microseconds.
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn bad_patterns_name_their_line() {
        let err = Rules::parse("ok\nfile[0-9.bin\n").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.to_string().contains("file[0-9.bin"), "{err}");
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// A file name that is not `.` or `..` (those are cleaned away, as Docker does).
    fn segment() -> impl Strategy<Value = String> {
        "[a-z0-9_-][a-z0-9._-]{0,7}"
    }

    fn path() -> impl Strategy<Value = Vec<String>> {
        proptest::collection::vec(segment(), 1..5)
    }

    proptest! {
        /// A literal path excludes itself and everything below; a later `!` rule for it
        /// brings it back; a folder rule never excludes a sibling.
        #[test]
        fn literal_rules(path in path(), below in segment(), sibling in segment()) {
            let text = path.join("/");
            let rules = Rules::parse(&text).unwrap();
            let inside = format!("{text}/{below}");
            prop_assert!(rules.excludes(&text));
            prop_assert!(rules.excludes(&inside));
            let mut other = path.clone();
            let last = other.pop().unwrap();
            if sibling != last {
                other.push(sibling);
                prop_assert!(!rules.excludes(&other.join("/")));
            }
            let back = Rules::parse(&format!("{text}\n!{text}\n")).unwrap();
            prop_assert!(!back.excludes(&text));
        }

        /// `*` stays within a segment, `**` crosses them.
        #[test]
        fn stars(dir in segment(), sub in segment(), file in "[a-z]{1,6}") {
            let rules = Rules::parse(&format!("{dir}/*.log\n")).unwrap();
            let here = format!("{dir}/{file}.log");
            let deeper = format!("{dir}/{sub}/{file}.log");
            prop_assert!(rules.excludes(&here));
            prop_assert!(!rules.excludes(&deeper));
            let deep = Rules::parse(&format!("{dir}/**/*.log\n")).unwrap();
            prop_assert!(deep.excludes(&deeper));
        }

        /// Any text parses or is refused with its line; matching never panics.
        #[test]
        fn arbitrary_files(text in "\\PC{0,200}", probe in "\\PC{0,40}") {
            if let Ok(rules) = Rules::parse(&text) {
                let _ = rules.excludes(&probe);
                let _ = rules.may_reinclude_below(&probe);
            }
        }
    }
}
