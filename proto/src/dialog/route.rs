//! Route sets (RFC 3261 §12.1, §12.2.1.1): reading them from Record-Route, turning them into a
//! request's Request-URI and Route headers with loose or strict routing, and the next hop
//! (§8.1.2).

use crate::sip::{HeaderName, Headers, NameAddr, ParseError, Request, Uri};

/// Every Record-Route value of a message, in order.
pub(super) fn record_route(headers: &Headers) -> Result<Vec<NameAddr>, ParseError> {
    headers
        .get_all(HeaderName::RecordRoute)
        .map(|v| NameAddr::parse(v).map_err(|e| e.in_header(HeaderName::RecordRoute)))
        .collect()
}

/// The Request-URI and Route values of a request sent on a dialog (§12.2.1.1).
///
/// With no route set, or one whose first URI has `lr` (loose routing), the Request-URI is the
/// remote target and the Route values are the route set in order. When the first URI lacks `lr`
/// it names a strict router: it becomes the Request-URI, and the rest of the route set follows
/// as Route values with the remote target last.
pub(super) fn request_target(route_set: &[NameAddr], remote_target: &Uri) -> (Uri, Vec<String>) {
    match route_set.split_first() {
        Some((first, rest)) if !first.uri.params.has("lr") => {
            let mut routes: Vec<String> = rest.iter().map(NameAddr::to_string).collect();
            routes.push(format!("<{remote_target}>"));
            (request_uri_form(&first.uri), routes)
        }
        _ => (request_uri_form(remote_target), route_set.iter().map(NameAddr::to_string).collect()),
    }
}

/// The URI with what a Request-URI may not carry removed (§19.1.1 table 1): the `method`
/// parameter and the `?headers` part.
fn request_uri_form(uri: &Uri) -> Uri {
    let mut uri = uri.clone();
    uri.params.remove("method");
    uri.headers = None;
    uri
}

/// Where a request goes first (§8.1.2): the URI of its first Route, else its Request-URI.
///
/// This is right for requests outside a dialog and for dialogs that route loosely. A request
/// built for a strict router carries that router in its Request-URI, which only the route set
/// reveals: for requests on a dialog ask [`Dialog::next_hop`](super::Dialog::next_hop), which
/// knows.
pub fn next_hop(request: &Request) -> Result<Uri, ParseError> {
    match request.headers.get(HeaderName::Route) {
        Some(route) => Ok(NameAddr::parse(route).map_err(|e| e.in_header(HeaderName::Route))?.uri),
        None => Ok(request.uri.clone()),
    }
}
