//! The import-cycle check: reads a crate's `src/` and finds modules that depend on each other.
//!
//! A module's dependencies are the `crate::…` and `super::…` paths in its code (test modules
//! and comments left out). Each dependency is looked at in the folder where the two modules
//! part ways: `routing::table` → `services::health` is an edge `routing` → `services` at the
//! top, `routing::table` → `routing::gate` an edge `table` → `gate` inside `routing/`. A
//! module's use of its own parent or children is not an edge. Two siblings that reach each
//! other, directly or through others, are a cycle, reported with the lines that make it.
//!
//! What it cannot see: a method called through `self` on a type whose `impl` blocks are spread
//! over sibling files names no path. Such files (the Swarm seam's `services`, `tasks` and
//! `secrets`) keep their shared helpers in the parent module, so that their uses of each other
//! point one way too.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

/// One dependency found in code: `from` uses `to`, at `file:line`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Use {
    pub from: Vec<String>,
    pub to: Vec<String>,
    pub file: PathBuf,
    pub line: usize,
}

/// Modules in one folder that depend on each other, and the uses that make it so.
#[derive(Debug, Clone)]
pub struct Cycle {
    /// The folder (module path) the siblings live in; empty for the crate's top level.
    pub folder: Vec<String>,
    pub members: BTreeSet<String>,
    pub uses: Vec<Use>,
}

impl fmt::Display for Cycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let folder = if self.folder.is_empty() {
            "the crate's top level".to_string()
        } else {
            format!("`{}`", self.folder.join("::"))
        };
        let members: Vec<&str> = self.members.iter().map(String::as_str).collect();
        writeln!(f, "cycle in {folder} between {}:", members.join(", "))?;
        for edge in &self.uses {
            writeln!(
                f,
                "  {} uses {} ({}:{})",
                edge.from.join("::"),
                edge.to.join("::"),
                edge.file.display(),
                edge.line
            )?;
        }
        Ok(())
    }
}

/// The cycles in the crate whose sources are under `src` (holding `lib.rs`).
pub fn cycles(src: &Path) -> std::io::Result<Vec<Cycle>> {
    let files = module_files(src)?;
    let modules: BTreeSet<Vec<String>> = files.iter().map(|(m, _)| m.clone()).collect();
    let mut uses = Vec::new();
    for (module, file) in &files {
        let text = std::fs::read_to_string(file)?;
        for (line, path) in paths_in(&code_only(&text)) {
            let Some(to) = resolve(module, &path, &modules) else {
                continue;
            };
            uses.push(Use {
                from: module.clone(),
                to,
                file: file.strip_prefix(src).unwrap_or(file).to_path_buf(),
                line,
            });
        }
    }
    Ok(cycles_in(&uses))
}

/// Within one folder: (sibling, sibling it uses) → the uses behind that edge.
type Edges = BTreeMap<(String, String), Vec<Use>>;

/// The cycles made by `uses`, folder by folder.
pub fn cycles_in(uses: &[Use]) -> Vec<Cycle> {
    let mut folders: BTreeMap<Vec<String>, Edges> = BTreeMap::new();
    for edge in uses {
        let common = edge
            .from
            .iter()
            .zip(&edge.to)
            .take_while(|(a, b)| a == b)
            .count();
        if common == edge.from.len() || common == edge.to.len() {
            continue; // parent and child
        }
        let key = (edge.from[common].clone(), edge.to[common].clone());
        folders
            .entry(edge.from[..common].to_vec())
            .or_default()
            .entry(key)
            .or_default()
            .push(edge.clone());
    }
    let mut found = Vec::new();
    for (folder, edges) in folders {
        let graph: BTreeMap<&str, BTreeSet<&str>> =
            edges.keys().fold(BTreeMap::new(), |mut graph, (a, b)| {
                graph.entry(a.as_str()).or_default().insert(b.as_str());
                graph.entry(b.as_str()).or_default();
                graph
            });
        for members in strongly_connected(&graph) {
            if members.len() < 2 {
                continue;
            }
            let uses = edges
                .iter()
                .filter(|((a, b), _)| members.contains(a) && members.contains(b))
                .flat_map(|(_, uses)| uses.iter().take(1).cloned())
                .collect();
            found.push(Cycle {
                folder: folder.clone(),
                members,
                uses,
            });
        }
    }
    found
}

/// Tarjan's strongly connected components, as sets of names.
fn strongly_connected(graph: &BTreeMap<&str, BTreeSet<&str>>) -> Vec<BTreeSet<String>> {
    struct Walk<'a> {
        graph: &'a BTreeMap<&'a str, BTreeSet<&'a str>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        found: Vec<BTreeSet<String>>,
    }
    impl<'a> Walk<'a> {
        fn visit(&mut self, node: &'a str) {
            let next = self.index.len();
            self.index.insert(node, next);
            self.low.insert(node, next);
            self.stack.push(node);
            self.on_stack.insert(node);
            for &other in &self.graph[node] {
                if !self.index.contains_key(other) {
                    self.visit(other);
                    let low = self.low[node].min(self.low[other]);
                    self.low.insert(node, low);
                } else if self.on_stack.contains(other) {
                    let low = self.low[node].min(self.index[other]);
                    self.low.insert(node, low);
                }
            }
            if self.low[node] == self.index[node] {
                let mut members = BTreeSet::new();
                while let Some(top) = self.stack.pop() {
                    self.on_stack.remove(top);
                    members.insert(top.to_string());
                    if top == node {
                        break;
                    }
                }
                self.found.push(members);
            }
        }
    }
    let mut walk = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for &node in graph.keys() {
        if !walk.index.contains_key(node) {
            walk.visit(node);
        }
    }
    walk.found
}

/// Every `.rs` file under `src` with its module path (`a/b.rs` and `a/b/mod.rs` are `a::b`).
/// `main.rs` and `bin/` are binaries that use the library by name, so they are left out.
fn module_files(src: &Path) -> std::io::Result<Vec<(Vec<String>, PathBuf)>> {
    let mut found = Vec::new();
    let mut folders = vec![src.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder)? {
            let path = entry?.path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "bin") {
                    folders.push(path);
                }
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(src).unwrap_or(&path);
            let mut module: Vec<String> = relative
                .iter()
                .map(|part| part.to_string_lossy().trim_end_matches(".rs").to_string())
                .collect();
            match module.last().map(String::as_str) {
                Some("main") if module.len() == 1 => continue,
                Some("lib") if module.len() == 1 => module.clear(),
                Some("mod") => {
                    module.pop();
                }
                _ => {}
            }
            found.push((module, path));
        }
    }
    found.sort();
    Ok(found)
}

/// The file's text with comments, string and char literals blanked (lines kept) and the test
/// module (`#[cfg(test)]` followed by `mod …`) cut off.
fn code_only(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut last = ' ';
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                    }
                    if last == '*' && c == '/' {
                        break;
                    }
                    last = c;
                }
            }
            '"' => {
                let mut escaped = false;
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                    }
                    if c == '"' && !escaped {
                        break;
                    }
                    escaped = c == '\\' && !escaped;
                }
                out.push_str("\"\"");
            }
            '\'' => {
                // A char literal ('x', '\n') or a lifetime ('a): skip only a literal.
                let ahead: String = chars.clone().take(3).collect();
                let literal = ahead.starts_with('\\') || ahead.chars().nth(1) == Some('\'');
                if literal {
                    let mut escaped = false;
                    for c in chars.by_ref() {
                        if c == '\'' && !escaped {
                            break;
                        }
                        escaped = c == '\\' && !escaped;
                    }
                    out.push_str("' '");
                } else {
                    out.push(c);
                }
            }
            _ => out.push(c),
        }
    }
    let mut kept = Vec::new();
    let mut lines = out.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim() == "#[cfg(test)]"
            && lines
                .peek()
                .is_some_and(|next| next.trim_start().starts_with("mod "))
        {
            break;
        }
        kept.push(line);
    }
    kept.join("\n")
}

/// The `crate::…`, `super::…` and `self::…` paths in `code` with their line numbers; a use
/// tree (`crate::a::{b, c::d}`) gives one path per leaf.
fn paths_in(code: &str) -> Vec<(usize, Vec<String>)> {
    let bytes = code.as_bytes();
    let mut found = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let starts_word = at == 0 || !is_ident(bytes[at - 1]) && bytes[at - 1] != b':';
        let head = ["crate::", "super::", "self::"]
            .into_iter()
            .find(|head| code[at..].starts_with(head));
        match head {
            Some(head) if starts_word => {
                let line = code[..at].matches('\n').count() + 1;
                let first = head.trim_end_matches("::").to_string();
                let mut leaves = Vec::new();
                let end = tree(code, at + head.len(), vec![first], &mut leaves);
                found.extend(leaves.into_iter().map(|path| (line, path)));
                at = end.max(at + 1);
            }
            _ => at += 1,
        }
    }
    found
}

/// Reads a use tree at `at` after `prefix::`, pushing each leaf path; returns where it ended.
fn tree(
    code: &str,
    mut at: usize,
    mut prefix: Vec<String>,
    leaves: &mut Vec<Vec<String>>,
) -> usize {
    let bytes = code.as_bytes();
    let skip_space = |at: &mut usize| {
        while *at < bytes.len() && bytes[*at].is_ascii_whitespace() {
            *at += 1;
        }
    };
    loop {
        skip_space(&mut at);
        if at < bytes.len() && bytes[at] == b'{' {
            at += 1;
            loop {
                skip_space(&mut at);
                if at >= bytes.len() {
                    return at;
                }
                match bytes[at] {
                    b'}' => return at + 1,
                    b',' => at += 1,
                    _ => {
                        let end = tree(code, at, prefix.clone(), leaves);
                        at = end.max(at + 1);
                    }
                }
            }
        }
        let start = at;
        while at < bytes.len() && is_ident(bytes[at]) {
            at += 1;
        }
        if start == at {
            leaves.push(prefix);
            return at;
        }
        prefix.push(code[start..at].to_string());
        if code[at..].starts_with("::") {
            at += 2;
            continue;
        }
        leaves.push(prefix);
        return at;
    }
}

fn is_ident(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_'
}

/// The module `path` names, seen from `module`: the longest known module it starts with.
fn resolve(
    module: &[String],
    path: &[String],
    modules: &BTreeSet<Vec<String>>,
) -> Option<Vec<String>> {
    let mut absolute: Vec<String> = Vec::new();
    let mut rest = path;
    match path.first().map(String::as_str) {
        Some("crate") => rest = &path[1..],
        Some("self") => {
            absolute = module.to_vec();
            rest = &path[1..];
        }
        Some("super") => {
            absolute = module.to_vec();
            while rest.first().is_some_and(|s| s == "super") {
                absolute.pop()?;
                rest = &rest[1..];
            }
        }
        _ => return None,
    }
    absolute.extend(rest.iter().cloned());
    (0..=absolute.len())
        .rev()
        .map(|n| absolute[..n].to_vec())
        .find(|candidate| modules.contains(candidate))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(path: &str) -> Vec<String> {
        if path.is_empty() {
            return Vec::new();
        }
        path.split("::").map(str::to_string).collect()
    }

    fn edge(from: &str, to: &str) -> Use {
        Use {
            from: names(from),
            to: names(to),
            file: PathBuf::from(format!("{}.rs", from.replace("::", "/"))),
            line: 1,
        }
    }

    #[test]
    fn a_use_tree_gives_one_path_per_leaf() {
        let code = "use crate::a::{b, c::{d, e}};\nfn f() { super::x::y(); }";
        let found = paths_in(code);
        let paths: Vec<(usize, String)> = found
            .into_iter()
            .map(|(line, path)| (line, path.join("::")))
            .collect();
        assert_eq!(
            paths,
            vec![
                (1, "crate::a::b".to_string()),
                (1, "crate::a::c::d".to_string()),
                (1, "crate::a::c::e".to_string()),
                (2, "super::x::y".to_string()),
            ]
        );
    }

    #[test]
    fn comments_strings_and_tests_are_not_code() {
        let code = "// crate::a\nlet s = \"crate::b\";\n/* crate::c */ let l: &'static str = \
                    \"\";\nlet q = '\"';\nuse crate::d;\n#[cfg(test)]\nmod tests { use crate::e; }\n";
        let paths: Vec<String> = paths_in(&code_only(code))
            .into_iter()
            .map(|(_, path)| path.join("::"))
            .collect();
        assert_eq!(paths, vec!["crate::d".to_string()]);
    }

    #[test]
    fn paths_resolve_to_the_longest_known_module() {
        let modules: BTreeSet<Vec<String>> =
            ["", "a", "a::b", "c"].into_iter().map(names).collect();
        let resolve_path = |from: &str, path: &str| {
            resolve(&names(from), &names(path), &modules).map(|m| m.join("::"))
        };
        assert_eq!(resolve_path("c", "crate::a::b::Type"), Some("a::b".into()));
        assert_eq!(resolve_path("a::b", "super::super::c::f"), Some("c".into()));
        assert_eq!(resolve_path("a::b", "super::Thing"), Some("a".into()));
        assert_eq!(resolve_path("a", "self::b::f"), Some("a::b".into()));
        assert_eq!(resolve_path("c", "crate::Routes"), Some("".into()));
    }

    #[test]
    fn a_cycle_is_found_in_the_folder_where_the_modules_part() {
        let uses = [
            edge("routing::table", "routing::gate"),
            edge("routing::gate", "routing::balancer"),
            edge("routing::balancer", "routing::table"),
            edge("proxy", "routing::table"),
            edge("routing", "routing::table"),
            edge("routing::table", "routing"),
        ];
        let found = cycles_in(&uses);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].folder, names("routing"));
        let members: Vec<&str> = found[0].members.iter().map(String::as_str).collect();
        assert_eq!(members, ["balancer", "gate", "table"]);
        assert_eq!(found[0].uses.len(), 3);
    }

    #[test]
    fn deep_uses_count_for_their_top_modules() {
        let uses = [
            edge("admin::ui::pages", "proxy::exchange"),
            edge("proxy", "admin::api"),
        ];
        let found = cycles_in(&uses);
        assert_eq!(found.len(), 1);
        assert!(found[0].folder.is_empty());
        assert!(
            found[0]
                .to_string()
                .contains("admin::ui::pages uses proxy::exchange")
        );
        assert!(cycles_in(&uses[..1]).is_empty());
    }

    fn assert_no_cycles(crate_dir: &str) {
        let src = crate::workspace_root().join(crate_dir).join("src");
        let found = cycles(&src).expect("read the crate's sources");
        let report: Vec<String> = found.iter().map(Cycle::to_string).collect();
        assert!(found.is_empty(), "{crate_dir}:\n{}", report.join(""));
    }

    #[test]
    fn the_gateway_has_no_import_cycles() {
        assert_no_cycles("gateway");
    }

    #[test]
    fn faaso_cli_has_no_import_cycles() {
        assert_no_cycles("faaso-cli");
    }

    #[test]
    fn the_check_sees_the_crates_modules() {
        // A check that reads nothing finds no cycle: make sure it reads the real tree.
        let src = crate::workspace_root().join("gateway/src");
        let files = module_files(&src).expect("list the gateway's sources");
        assert!(files.len() > 40, "{} files", files.len());
        let uses_of_routing = files
            .iter()
            .filter(|(_, file)| {
                let text = std::fs::read_to_string(file).unwrap_or_default();
                paths_in(&code_only(&text))
                    .iter()
                    .any(|(_, path)| path.get(1).is_some_and(|s| s == "routing"))
            })
            .count();
        assert!(uses_of_routing > 5, "{uses_of_routing}");
    }
}
