//! Request routing as a pure function: which part of the gateway answers a path, and for funko
//! routes, which funko and what path the instance sees.
//!
//! `/funko/<name>/<rest>?<query>` and `/faaso/<name>/<rest>?<query>` go to funko `<name>` as
//! `/<rest>?<query>`; `/funko/<name>` alone becomes `/`.

/// What a request path is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route<'a> {
    /// A funko request.
    Funko(FunkoRoute<'a>),
    /// An async call of a funko: stored, answered 202, run later.
    Async(FunkoRoute<'a>),
    /// `/healthz`: the process is alive.
    Healthz,
    /// `/readyz`: the first Docker sync is done.
    Readyz,
    /// `/admin` and below: the admin API and web UI.
    Admin,
    /// Anything else.
    NotFound,
}

/// A funko request: the funko's name, and the prefix that was stripped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunkoRoute<'a> {
    /// The funko name as it appears in the path (not yet checked against the naming rule).
    pub name: &'a str,
    /// The stripped prefix, `/funko/<name>` or `/faaso/<name>` (sent as `X-Forwarded-Prefix`).
    pub prefix: &'a str,
    /// Which of the two forms the prefix has.
    pub form: PrefixForm,
    /// What follows the prefix in the request target: empty, `?query`, or `/rest...`.
    pub upstream: &'a str,
}

/// The two spellings of a funko route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrefixForm {
    /// `/funko/<name>`
    Funko = 0,
    /// `/faaso/<name>` (the original FaaSO's documented form)
    Faaso = 1,
    /// No prefix: the request came for one of the funko's custom domains, whole path and all.
    Domain = 2,
}

impl FunkoRoute<'_> {
    /// The upstream path and query, with `/` for an empty rest.
    pub fn upstream_path_and_query(&self) -> std::borrow::Cow<'_, str> {
        upstream_target(self.upstream)
    }
}

/// The target an instance sees for what followed the prefix (`rest` is
/// [`FunkoRoute::upstream`], found again by its offset in the request target): `rest` itself,
/// or `/` before it when it was empty or only a query.
pub fn upstream_target(rest: &str) -> std::borrow::Cow<'_, str> {
    if rest.starts_with('/') {
        rest.into()
    } else {
        format!("/{rest}").into()
    }
}

/// Classifies a request target (path and query, as received).
pub fn route(path_and_query: &str) -> Route<'_> {
    let path = path_and_query
        .split_once('?')
        .map_or(path_and_query, |(p, _)| p);
    for (prefix, form, call) in [
        ("/funko/", PrefixForm::Funko, false),
        ("/faaso/", PrefixForm::Faaso, false),
        ("/async/funko/", PrefixForm::Funko, true),
        ("/async-function/", PrefixForm::Funko, true),
    ] {
        if let Some(rest) = path_and_query.strip_prefix(prefix) {
            let end = rest.find(['/', '?']).unwrap_or(rest.len());
            let name = &rest[..end];
            if name.is_empty() {
                return Route::NotFound;
            }
            let prefix_len = prefix.len() + end;
            let funko = FunkoRoute {
                name,
                prefix: &path_and_query[..prefix_len],
                form,
                upstream: &path_and_query[prefix_len..],
            };
            return if call {
                Route::Async(funko)
            } else {
                Route::Funko(funko)
            };
        }
    }
    match path {
        "/healthz" => Route::Healthz,
        "/readyz" => Route::Readyz,
        "/admin" => Route::Admin,
        p if p.starts_with("/admin/") => Route::Admin,
        _ => Route::NotFound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn funko(target: &str) -> (String, String, String) {
        match route(target) {
            Route::Funko(r) => (
                r.name.to_string(),
                r.prefix.to_string(),
                r.upstream_path_and_query().into_owned(),
            ),
            other => panic!("{target} routed to {other:?}"),
        }
    }

    fn owned(name: &str, prefix: &str, upstream: &str) -> (String, String, String) {
        (name.into(), prefix.into(), upstream.into())
    }

    #[test]
    fn funko_paths_strip_the_prefix_and_keep_the_query() {
        assert_eq!(
            funko("/funko/hello/a/b?x=1"),
            owned("hello", "/funko/hello", "/a/b?x=1")
        );
        assert_eq!(funko("/funko/hello/"), owned("hello", "/funko/hello", "/"));
        assert_eq!(funko("/funko/hello"), owned("hello", "/funko/hello", "/"));
        assert_eq!(
            funko("/funko/hello?x=1"),
            owned("hello", "/funko/hello", "/?x=1")
        );
        assert_eq!(
            funko("/faaso/hello/ping"),
            owned("hello", "/faaso/hello", "/ping")
        );
        assert_eq!(
            funko("/funko/hello//x"),
            owned("hello", "/funko/hello", "//x")
        );
    }

    #[test]
    fn async_calls_route_like_funko_requests() {
        for target in ["/async/funko/work/a?x=1", "/async-function/work/a?x=1"] {
            let Route::Async(r) = route(target) else {
                panic!("{target} is not an async call");
            };
            assert_eq!(r.name, "work");
            assert_eq!(r.upstream_path_and_query(), "/a?x=1");
            assert_eq!(format!("{}{}", r.prefix, r.upstream), target);
        }
        assert_eq!(route("/async/funko/"), Route::NotFound);
        assert_eq!(route("/async/x"), Route::NotFound);
    }

    #[test]
    fn other_paths() {
        assert_eq!(route("/healthz"), Route::Healthz);
        assert_eq!(route("/readyz?verbose"), Route::Readyz);
        assert_eq!(route("/admin/api/version"), Route::Admin);
        assert_eq!(route("/admin"), Route::Admin);
        assert_eq!(route("/administrator"), Route::NotFound);
        assert_eq!(route("/funko/"), Route::NotFound);
        assert_eq!(route("/funko"), Route::NotFound);
        assert_eq!(route("/"), Route::NotFound);
        assert_eq!(route("/funkos/x"), Route::NotFound);
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any request target routes without panicking; a funko route splits the target
        /// exactly into prefix and rest, names a funko without `/` or `?`, and gives the
        /// instance a target that starts with `/`.
        #[test]
        fn funko_routes_split_the_target(target in "/\\PC{0,80}|/(funko|faaso)/\\PC{0,60}") {
            if let Route::Funko(r) = route(&target) {
                prop_assert!(!r.name.is_empty());
                prop_assert!(!r.name.contains(['/', '?']));
                let joined = format!("{}{}", r.prefix, r.upstream);
                prop_assert_eq!(joined.as_str(), target.as_str());
                prop_assert!(r.upstream_path_and_query().starts_with('/'));
                let expected_prefix = match r.form {
                    PrefixForm::Funko => "/funko/",
                    PrefixForm::Faaso => "/faaso/",
                    PrefixForm::Domain => unreachable!("the router never routes by host"),
                };
                prop_assert!(r.prefix.starts_with(expected_prefix));
            }
        }

        /// The rest of a funko path reaches the instance unchanged.
        #[test]
        fn the_rest_is_kept(name in "[a-z0-9][a-z0-9_]{0,20}", rest in "(/[A-Za-z0-9._~%-]{0,10}){0,4}(\\?[a-z=&0-9]{0,12})?") {
            let target = format!("/funko/{name}{rest}");
            let Route::Funko(r) = route(&target) else {
                panic!("{target} is not a funko route");
            };
            prop_assert_eq!(r.name, name.as_str());
            let upstream = r.upstream_path_and_query();
            if rest.starts_with('/') {
                prop_assert_eq!(upstream.as_ref(), rest.as_str());
            } else {
                let expected = format!("/{rest}");
                prop_assert_eq!(upstream.as_ref(), expected.as_str());
            }
        }
    }
}
