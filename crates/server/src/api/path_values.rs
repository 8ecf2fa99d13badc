//! The values a request's path gives its route's placeholders (`{tenant}`, `{key}` …): what the
//! router finds and a handler reads.

/// Segments a route can have (`{tenant}/export/{kind}/{key}/{version}` has 5).
pub(crate) const MAX_SEGMENTS: usize = 8;

/// The values of a routed path's placeholders.
#[derive(Debug)]
pub(crate) struct Params<'p> {
    /// The route's placeholder names, in path order.
    names: &'static [&'static str],
    values: [&'p str; MAX_SEGMENTS],
}

impl<'p> Params<'p> {
    /// `values[i]` is the value of placeholder `names[i]` (empty: an optional one left out).
    pub(crate) fn new(names: &'static [&'static str], values: [&'p str; MAX_SEGMENTS]) -> Self {
        Params { names, values }
    }

    /// The route's placeholder names, in path order.
    #[cfg(test)]
    pub(crate) fn names(&self) -> &'static [&'static str] {
        self.names
    }

    /// The value of placeholder `name`; `None` if the route has none, or an optional one was
    /// left out.
    pub(crate) fn get(&self, name: &str) -> Option<&'p str> {
        self.names
            .iter()
            .position(|n| *n == name)
            .map(|i| self.values[i])
            .filter(|value| !value.is_empty())
    }
}
