//! Template rendering: files ending in `.hbs` are Handlebars templates, rendered in strict mode
//! (a missing variable is an error naming the file and the variable) with HTML escaping off
//! (the output is Dockerfiles and code, not HTML), and written without the suffix.
//!
//! Templates see `{name, runtime, options}`; a `json` helper writes a value as JSON (for
//! exec-form Dockerfile instructions).

use handlebars::{
    Context, Handlebars, Helper, HelperResult, Output, RenderContext, RenderErrorReason,
};
use serde_json::Value;

/// A template that could not be rendered.
#[derive(Debug, thiserror::Error)]
#[error("template {file}: {message}")]
pub struct RenderError {
    pub file: String,
    pub message: String,
}

/// The renderer, configured once.
pub struct Renderer {
    handlebars: Handlebars<'static>,
}

impl Default for Renderer {
    fn default() -> Self {
        Self::new()
    }
}

impl Renderer {
    pub fn new() -> Renderer {
        let mut handlebars = Handlebars::new();
        handlebars.set_strict_mode(true);
        handlebars.register_escape_fn(handlebars::no_escape);
        handlebars.register_helper("json", Box::new(json_helper));
        Renderer { handlebars }
    }

    /// Renders one file when its name ends in `.hbs`: returns the output path and content.
    /// Other files pass through unchanged.
    pub fn file(
        &self,
        path: &str,
        content: &[u8],
        data: &Value,
    ) -> Result<(String, Vec<u8>), RenderError> {
        let Some(stripped) = path.strip_suffix(".hbs") else {
            return Ok((path.to_string(), content.to_vec()));
        };
        let fail = |message: String| RenderError {
            file: path.to_string(),
            message,
        };
        let template =
            std::str::from_utf8(content).map_err(|_| fail("not UTF-8 text".to_string()))?;
        let rendered = self
            .handlebars
            .render_template(template, data)
            .map_err(|err| fail(describe(&err)))?;
        Ok((stripped.to_string(), rendered.into_bytes()))
    }
}

/// A one-line description of a rendering error, naming the variable when one is missing.
fn describe(err: &handlebars::RenderError) -> String {
    let place = match (err.line_no, err.column_no) {
        (Some(line), Some(column)) => format!(" (line {line}, column {column})"),
        _ => String::new(),
    };
    match err.reason() {
        RenderErrorReason::MissingVariable(Some(variable)) => {
            format!("variable `{variable}` is not defined{place}")
        }
        reason => format!("{reason}{place}"),
    }
}

fn json_helper(
    helper: &Helper,
    _: &Handlebars,
    _: &Context,
    _: &mut RenderContext,
    out: &mut dyn Output,
) -> HelperResult {
    let value = helper
        .param(0)
        .ok_or(RenderErrorReason::ParamNotFoundForIndex("json", 0))?;
    out.write(&value.value().to_string())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn data() -> Value {
        json!({"name": "hello", "runtime": "flask", "options": {"workers": 2, "cmd": ["/funko", "--health"], "pkgs": []}})
    }

    #[test]
    fn renders_hbs_files_and_strips_the_suffix() {
        let renderer = Renderer::new();
        let (path, out) = renderer
            .file("Dockerfile.hbs", b"FROM x\n# {{name}} <{{options.workers}}>\nCMD {{json options.cmd}}\n{{#if options.pkgs}}RUN apt{{/if}}", &data())
            .unwrap();
        assert_eq!(path, "Dockerfile");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "FROM x\n# hello <2>\nCMD [\"/funko\",\"--health\"]\n"
        );
        let (path, out) = renderer
            .file("main.py", b"{{not rendered}}", &data())
            .unwrap();
        assert_eq!(
            (path.as_str(), out.as_slice()),
            ("main.py", &b"{{not rendered}}"[..])
        );
    }

    #[test]
    fn a_missing_variable_names_file_and_variable() {
        let err = Renderer::new()
            .file("Dockerfile.hbs", b"FROM x\nRUN {{options.nope}}\n", &data())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("template Dockerfile.hbs: variable `options.nope` is not defined"),
            "{err}"
        );
        let err = Renderer::new()
            .file("a.hbs", b"{{#if}}", &data())
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("template a.hbs: "), "{err}");
    }
}
