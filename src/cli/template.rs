//! The part of Go's text/template that `--format` users rely on: field
//! chains (`.Labels.app`), `range`/`if`/`with`/`else`/`end`, pipelines, and
//! the functions json, index, len, join, upper, lower, print, println,
//! printf, eq, ne, not, and, or. Values are JSON values.

use serde_json::Value;

/// A template that could not be parsed or run, with the reason.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("template: {0}")]
pub struct TemplateError(String);

fn err<T>(s: impl Into<String>) -> Result<T, TemplateError> {
    Err(TemplateError(s.into()))
}

#[derive(Debug, Clone)]
enum Arg {
    Field(Vec<String>),
    Str(String),
    Num(f64),
    Bool(bool),
    Func(String),
}

type Pipeline = Vec<Vec<Arg>>;

#[derive(Debug)]
enum Node {
    Text(String),
    Out(Pipeline),
    If(Pipeline, Vec<Node>, Vec<Node>),
    Range(Pipeline, Vec<Node>, Vec<Node>),
    With(Pipeline, Vec<Node>, Vec<Node>),
}

/// A parsed template.
#[derive(Debug)]
pub struct Template(Vec<Node>);

enum Tok {
    Text(String),
    Action(String),
}

fn lex(src: &str) -> Result<Vec<Tok>, TemplateError> {
    let mut toks = vec![];
    let mut rest = src;
    while let Some(start) = rest.find("{{") {
        let mut text = rest[..start].to_string();
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| TemplateError("unclosed action".into()))?;
        let mut inner = &after[..end];
        if let Some(s) = inner.strip_prefix("- ") {
            text = text.trim_end().to_string();
            inner = s;
        }
        let mut trim_after = false;
        if let Some(s) = inner.strip_suffix(" -") {
            trim_after = true;
            inner = s;
        }
        toks.push(Tok::Text(text));
        toks.push(Tok::Action(inner.trim().to_string()));
        rest = &after[end + 2..];
        if trim_after {
            rest = rest.trim_start();
        }
    }
    toks.push(Tok::Text(rest.to_string()));
    Ok(toks)
}

fn words(s: &str) -> Result<Vec<String>, TemplateError> {
    let mut out = vec![];
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '"' || c == '`' {
            chars.next();
            let mut w = String::from("\"");
            loop {
                match chars.next() {
                    None => return err("unterminated string"),
                    Some(q) if q == c => break,
                    Some('\\') if c == '"' => match chars.next() {
                        Some('n') => w.push('\n'),
                        Some('t') => w.push('\t'),
                        Some(o) => w.push(o),
                        None => return err("unterminated string"),
                    },
                    Some(o) => w.push(o),
                }
            }
            out.push(w);
        } else if c == '|' {
            chars.next();
            out.push("|".into());
        } else {
            let w: String = std::iter::from_fn(|| chars.next_if(|c| !c.is_whitespace() && *c != '|')).collect();
            out.push(w);
        }
    }
    Ok(out)
}

fn parse_pipeline(s: &str) -> Result<Pipeline, TemplateError> {
    let mut cmds: Pipeline = vec![vec![]];
    for w in words(s)? {
        if w == "|" {
            cmds.push(vec![]);
            continue;
        }
        let arg = if let Some(lit) = w.strip_prefix('"') {
            Arg::Str(lit.to_string())
        } else if w == "." {
            Arg::Field(vec![])
        } else if let Some(path) = w.strip_prefix('.') {
            Arg::Field(path.split('.').map(str::to_string).collect())
        } else if w == "true" || w == "false" {
            Arg::Bool(w == "true")
        } else if let Ok(n) = w.parse::<f64>() {
            Arg::Num(n)
        } else if w.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            Arg::Func(w)
        } else {
            return err(format!("unexpected {w:?} in action"));
        };
        if let Some(last) = cmds.last_mut() {
            last.push(arg);
        }
    }
    if cmds.iter().any(Vec::is_empty) {
        return err(format!("missing value in pipeline {s:?}"));
    }
    Ok(cmds)
}

fn parse_nodes(
    toks: &mut std::iter::Peekable<std::vec::IntoIter<Tok>>,
    depth: usize,
) -> Result<(Vec<Node>, Option<String>), TemplateError> {
    let mut nodes = vec![];
    while let Some(tok) = toks.next() {
        match tok {
            Tok::Text(t) => {
                if !t.is_empty() {
                    nodes.push(Node::Text(t));
                }
            }
            Tok::Action(a) => {
                if a.starts_with("/*") {
                    continue;
                }
                let (kw, rest) = a.split_once(char::is_whitespace).unwrap_or((&a, ""));
                match kw {
                    "end" | "else" if depth == 0 => return err(format!("unexpected {{{{{kw}}}}}")),
                    "end" | "else" => return Ok((nodes, Some(kw.to_string()))),
                    "if" | "range" | "with" => {
                        let p = parse_pipeline(rest)?;
                        let (body, stop) = parse_nodes(toks, depth + 1)?;
                        let alt = match stop.as_deref() {
                            Some("else") => match parse_nodes(toks, depth + 1)? {
                                (alt, Some(s)) if s == "end" => alt,
                                _ => return err(format!("missing {{{{end}}}} for {kw}")),
                            },
                            Some("end") => vec![],
                            _ => return err(format!("missing {{{{end}}}} for {kw}")),
                        };
                        nodes.push(match kw {
                            "if" => Node::If(p, body, alt),
                            "range" => Node::Range(p, body, alt),
                            _ => Node::With(p, body, alt),
                        });
                    }
                    _ => nodes.push(Node::Out(parse_pipeline(&a)?)),
                }
            }
        }
    }
    if depth > 0 {
        return err("unexpected end of template: missing {{end}}");
    }
    Ok((nodes, None))
}

impl Template {
    /// Parse `src`.
    pub fn parse(src: &str) -> Result<Template, TemplateError> {
        let mut toks = lex(src)?.into_iter().peekable();
        Ok(Template(parse_nodes(&mut toks, 0)?.0))
    }

    /// Render with `dot` as the data.
    pub fn render(&self, dot: &Value) -> Result<String, TemplateError> {
        let mut out = String::new();
        render_nodes(&self.0, dot, &mut out)?;
        Ok(out)
    }
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// Print a value as Go's fmt does for the common cases.
pub fn go_print(v: &Value) -> String {
    match v {
        Value::Null => "<no value>".into(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(a) => format!("[{}]", a.iter().map(go_print).collect::<Vec<_>>().join(" ")),
        Value::Object(o) => {
            let mut keys: Vec<_> = o.keys().collect();
            keys.sort();
            format!(
                "map[{}]",
                keys.iter()
                    .map(|k| format!("{k}:{}", go_print(&o[*k])))
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        }
    }
}

fn render_nodes(nodes: &[Node], dot: &Value, out: &mut String) -> Result<(), TemplateError> {
    for n in nodes {
        match n {
            Node::Text(t) => out.push_str(t),
            Node::Out(p) => out.push_str(&go_print(&eval(p, dot)?)),
            Node::If(p, body, alt) => render_nodes(if truthy(&eval(p, dot)?) { body } else { alt }, dot, out)?,
            Node::With(p, body, alt) => {
                let v = eval(p, dot)?;
                if truthy(&v) {
                    render_nodes(body, &v, out)?;
                } else {
                    render_nodes(alt, dot, out)?;
                }
            }
            Node::Range(p, body, alt) => {
                let items: Vec<Value> = match eval(p, dot)? {
                    Value::Array(a) => a,
                    Value::Object(o) => {
                        let mut keys: Vec<_> = o.keys().cloned().collect();
                        keys.sort();
                        keys.into_iter().map(|k| o[&k].clone()).collect()
                    }
                    Value::Null => vec![],
                    other => return err(format!("range can't iterate over {}", go_print(&other))),
                };
                if items.is_empty() {
                    render_nodes(alt, dot, out)?;
                }
                for item in &items {
                    render_nodes(body, item, out)?;
                }
            }
        }
    }
    Ok(())
}

fn field(dot: &Value, path: &[String]) -> Value {
    let mut v = dot;
    for p in path {
        match v.get(p) {
            Some(x) => v = x,
            None => return Value::Null,
        }
    }
    v.clone()
}

fn eval(p: &Pipeline, dot: &Value) -> Result<Value, TemplateError> {
    let mut prev: Option<Value> = None;
    for cmd in p {
        let mut args: Vec<Value> = vec![];
        let (head, rest) = cmd.split_first().ok_or_else(|| TemplateError("empty command".into()))?;
        let value_of = |a: &Arg| -> Result<Value, TemplateError> {
            Ok(match a {
                Arg::Field(path) => field(dot, path),
                Arg::Str(s) => Value::String(s.clone()),
                Arg::Num(n) => serde_json::Number::from_f64(*n)
                    .map(Value::Number)
                    .unwrap_or(Value::Null),
                Arg::Bool(b) => Value::Bool(*b),
                Arg::Func(f) => call(f, vec![])?,
            })
        };
        for a in rest {
            args.push(value_of(a)?);
        }
        if let Some(v) = prev.take() {
            args.push(v);
        }
        prev = Some(match head {
            Arg::Func(f) => call(f, args)?,
            other if args.is_empty() => value_of(other)?,
            _ => return err("can't give an argument to a non-function"),
        });
    }
    Ok(prev.unwrap_or(Value::Null))
}

fn call(f: &str, args: Vec<Value>) -> Result<Value, TemplateError> {
    let n = args.len();
    let want = |k: usize| {
        if n == k {
            Ok(())
        } else {
            err(format!("wrong number of args for {f}: want {k} got {n}"))
        }
    };
    let s = |v: &Value| go_print(v);
    Ok(match f {
        "json" => {
            want(1)?;
            Value::String(serde_json::to_string(&args[0]).map_err(|e| TemplateError(e.to_string()))?)
        }
        "len" => {
            want(1)?;
            let l = match &args[0] {
                Value::Array(a) => a.len(),
                Value::Object(o) => o.len(),
                Value::String(s) => s.len(),
                Value::Null => 0,
                _ => return err("len of a non-collection"),
            };
            Value::from(l)
        }
        "index" => {
            let (first, keys) = args
                .split_first()
                .ok_or_else(|| TemplateError("index needs arguments".into()))?;
            let mut v = first.clone();
            for k in keys {
                v = match (&v, k) {
                    (Value::Object(o), Value::String(k)) => o.get(k).cloned().unwrap_or(Value::Null),
                    (Value::Array(a), Value::Number(i)) => a
                        .get(i.as_f64().unwrap_or(-1.0) as usize)
                        .cloned()
                        .ok_or_else(|| TemplateError(format!("index {i} out of range")))?,
                    (Value::Null, _) => Value::Null,
                    _ => return err(format!("can't index {} with {}", s(&v), s(k))),
                };
            }
            v
        }
        "join" => {
            want(2)?;
            let parts: Vec<String> = match &args[0] {
                Value::Array(a) => a.iter().map(s).collect(),
                Value::Null => vec![],
                other => vec![s(other)],
            };
            Value::String(parts.join(&s(&args[1])))
        }
        "upper" => {
            want(1)?;
            Value::String(s(&args[0]).to_uppercase())
        }
        "lower" => {
            want(1)?;
            Value::String(s(&args[0]).to_lowercase())
        }
        "print" => Value::String(args.iter().map(s).collect::<Vec<_>>().join(" ")),
        "println" => Value::String(format!("{}\n", args.iter().map(s).collect::<Vec<_>>().join(" "))),
        "printf" => {
            let (fmt, rest) = args
                .split_first()
                .ok_or_else(|| TemplateError("printf needs a format".into()))?;
            let fmt = s(fmt);
            let mut out = String::new();
            let mut it = rest.iter();
            let mut chars = fmt.chars();
            while let Some(c) = chars.next() {
                if c != '%' {
                    out.push(c);
                    continue;
                }
                match chars.next() {
                    Some('%') => out.push('%'),
                    Some('s' | 'v' | 'd') => out.push_str(&it.next().map(s).unwrap_or_else(|| "%!(MISSING)".into())),
                    Some('q') => out.push_str(&it.next().map(|v| format!("{:?}", s(v))).unwrap_or_default()),
                    Some(o) => return err(format!("printf verb %{o} is not supported")),
                    None => out.push('%'),
                }
            }
            Value::String(out)
        }
        "eq" | "ne" => {
            if n < 2 {
                return err(format!("{f} needs two arguments"));
            }
            let eq = args[1..].iter().any(|a| *a == args[0]);
            Value::Bool(if f == "eq" { eq } else { !eq })
        }
        "not" => {
            want(1)?;
            Value::Bool(!truthy(&args[0]))
        }
        "and" => args
            .iter()
            .find(|a| !truthy(a))
            .or(args.last())
            .cloned()
            .unwrap_or(Value::Null),
        "or" => args
            .iter()
            .find(|a| truthy(a))
            .or(args.last())
            .cloned()
            .unwrap_or(Value::Null),
        other => return err(format!("function {other:?} not defined")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn r(t: &str, v: &Value) -> String {
        Template::parse(t).unwrap().render(v).unwrap()
    }

    #[test]
    fn fields_functions_and_control() {
        let v = json!({"Name": "reg/app", "Digest": "sha256:1", "RepoTags": ["a", "b"], "Labels": {"x": "1", "y.z": "2"}, "Env": null});
        assert_eq!(r("{{.Name}}@{{.Digest}}", &v), "reg/app@sha256:1");
        assert_eq!(r("{{range .RepoTags}}{{.}},{{end}}", &v), "a,b,");
        assert_eq!(r("{{json .RepoTags}}", &v), r#"["a","b"]"#);
        assert_eq!(r(r#"{{index .Labels "y.z"}}"#, &v), "2");
        assert_eq!(r("{{.Labels.x}}", &v), "1");
        assert_eq!(r("{{len .RepoTags}}", &v), "2");
        assert_eq!(r(r#"{{join .RepoTags ", "}}"#, &v), "a, b");
        assert_eq!(r("{{if .Env}}yes{{else}}no{{end}}", &v), "no");
        assert_eq!(r("{{.Name | upper}}", &v), "REG/APP");
        assert_eq!(r("{{.Labels}}", &v), "map[x:1 y.z:2]");
        assert_eq!(r("{{.Missing}}", &v), "<no value>");
        assert_eq!(r(r#"{{printf "%s-%s" .Name .Digest}}"#, &v), "reg/app-sha256:1");
        assert_eq!(r("{{with .Labels}}{{.x}}{{end}}", &v), "1");
        assert_eq!(r("a  {{- .Name -}}  b", &v), "areg/appb");
    }

    #[test]
    fn errors_are_reported() {
        assert!(Template::parse("{{.Name").is_err());
        assert!(Template::parse("{{range .X}}").is_err());
        assert!(Template::parse("{{end}}").is_err());
        assert!(Template::parse("{{nope .X}}").unwrap().render(&json!({})).is_err());
    }
}
