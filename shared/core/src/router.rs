//! Spin's HTTP route matching: exact routes (`/health`), named segments (`/api/files/:id`)
//! and trailing wildcards (`/static/...`). The most specific match wins: more literal
//! segments first, then a route without a wildcard over one with it.

#[derive(Clone, Debug, PartialEq)]
enum Segment {
    Literal(String),
    Param(String),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Route {
    /// As written in the manifest.
    pub raw: String,
    segments: Vec<Segment>,
    wildcard: bool,
    pub target: usize,
}

#[derive(Debug, PartialEq)]
pub struct Match<'a> {
    pub route: &'a Route,
    pub params: Vec<(String, String)>,
    /// The part of the path the wildcard matched, with its leading `/` (Spin's `spin-path-info`).
    pub path_info: String,
}

impl Route {
    pub fn parse(raw: &str, target: usize) -> Result<Self, String> {
        if !raw.starts_with('/') {
            return Err(format!("route {raw:?} must start with /"));
        }
        let (body, wildcard) = match raw.strip_suffix("/...") {
            Some(prefix) => (prefix, true),
            None if raw == "/..." => ("", true),
            None => (raw, false),
        };
        let segments = body
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| match s.strip_prefix(':') {
                Some(name) if !name.is_empty() => Ok(Segment::Param(name.to_owned())),
                Some(_) => Err(format!("route {raw:?} has an unnamed parameter")),
                None if s.contains("...") => Err(format!("route {raw:?}: ... may only end a route")),
                None => Ok(Segment::Literal(s.to_owned())),
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { raw: raw.to_owned(), segments, wildcard, target })
    }

    /// The route without its wildcard (Spin's `spin-component-route`).
    pub fn base(&self) -> &str {
        self.raw.strip_suffix("/...").unwrap_or(&self.raw)
    }

    fn specificity(&self) -> (usize, bool, usize) {
        let literals = self.segments.iter().filter(|s| matches!(s, Segment::Literal(_))).count();
        (literals, !self.wildcard, self.segments.len())
    }

    /// Whether the route matches the path's segments (compared in place: every request is
    /// tried against every route, so this allocates nothing).
    fn fits(&self, parts: &[&str]) -> bool {
        if parts.len() < self.segments.len() || (!self.wildcard && parts.len() != self.segments.len()) {
            return false;
        }
        self.segments.iter().zip(parts).all(|(segment, part)| match segment {
            Segment::Literal(l) => l == part,
            Segment::Param(_) => true,
        })
    }

    /// The parameters and the wildcard's part of a path the route [fits](Self::fits).
    fn capture(&self, parts: &[&str]) -> Match<'_> {
        let params = self
            .segments
            .iter()
            .zip(parts)
            .filter_map(|(segment, part)| match segment {
                Segment::Param(name) => Some((name.clone(), (*part).to_owned())),
                Segment::Literal(_) => None,
            })
            .collect();
        let rest = &parts[self.segments.len()..];
        let path_info = if rest.is_empty() { String::new() } else { format!("/{}", rest.join("/")) };
        Match { route: self, params, path_info }
    }
}

#[derive(Debug, Default)]
pub struct Router {
    routes: Vec<Route>,
}

impl Router {
    pub fn new(routes: Vec<Route>) -> Self {
        Self { routes }
    }

    pub fn route(&self, path: &str) -> Option<Match<'_>> {
        let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let best = self.routes.iter().filter(|r| r.fits(&parts)).max_by_key(|r| r.specificity())?;
        Some(best.capture(&parts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(raw: &[&str]) -> Router {
        Router::new(raw.iter().enumerate().map(|(i, r)| Route::parse(r, i).unwrap()).collect())
    }

    fn target(r: &Router, path: &str) -> Option<usize> {
        r.route(path).map(|m| m.route.target)
    }

    #[test]
    fn the_most_specific_route_wins() {
        let r = router(&["/...", "/api/files/:id", "/api/files/search", "/api/files/:id/chunks/:index", "/health"]);
        assert_eq!(target(&r, "/health"), Some(4));
        assert_eq!(target(&r, "/api/files/search"), Some(2));
        assert_eq!(target(&r, "/api/files/abc"), Some(1));
        assert_eq!(target(&r, "/api/files/abc/chunks/3"), Some(3));
        assert_eq!(target(&r, "/api/files/abc/versions"), Some(0));
        assert_eq!(target(&r, "/"), Some(0));
    }

    #[test]
    fn parameters_and_wildcards_are_captured() {
        let r = router(&["/api/files/:id/chunks/:index", "/static/..."]);
        let m = r.route("/api/files/f1/chunks/7").unwrap();
        assert_eq!(m.params, [("id".into(), "f1".into()), ("index".into(), "7".into())]);
        let m = r.route("/static/css/site.css").unwrap();
        assert_eq!(m.path_info, "/css/site.css");
        assert_eq!(m.route.base(), "/static");
        assert_eq!(r.route("/static").unwrap().path_info, "");
    }

    #[test]
    fn exact_routes_do_not_match_longer_paths() {
        let r = router(&["/health"]);
        assert!(r.route("/health/liveness").is_none());
        assert!(r.route("/healthz").is_none());
        assert!(r.route("/health/").is_some());
    }

    #[test]
    fn bad_routes_are_refused() {
        assert!(Route::parse("health", 0).is_err());
        assert!(Route::parse("/a/:/b", 0).is_err());
        assert!(Route::parse("/a/.../b", 0).is_err());
    }
}
